"""The service load benchmark reads wrk's report right and its Lua scripts send what it means.

The benchmark itself (``python -m benchmarks.service_load``) is not run here: it takes
minutes. These tests pin the parts whose mistakes would silently corrupt its numbers.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

# benchmarks/ is not installed; import it from the checkout (as the examples' tests do),
# hence the imports below this (noqa: E402).
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._service_wrk import lua_script, parse_wrk, require_wrk, run_wrk  # noqa: E402
from benchmarks.service_load import main, summarize  # noqa: E402

CLEAN = """\
Running 15s test @ http://127.0.0.1:41233/api/review/intent?limit=20
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    97.21ms   21.03ms 312.40ms   81.20%
    Req/Sec   257.38     40.11   340.00     70.33%
  Latency Distribution
     50%   94.10ms
     75%  104.33ms
     90%  118.02ms
     99%  201.50ms
  7700 requests in 15.02s, 9.41MB read
Requests/sec:    512.66
Transfer/sec:    641.62KB
"""

WITH_ERRORS = """\
Running 3s test @ http://127.0.0.1:41233/api/workflows/triage/runs?wait=true
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.42s   310.20ms   2.00s    70.00%
    Req/Sec    60.12     30.00   120.00     65.00%
  Latency Distribution
     50%  850.00us
     75%    1.20s
     90%    1.50s
     99%    1.05m
  343 requests in 3.01s, 1.02MB read
  Socket errors: connect 0, read 2, write 1, timeout 7
  Non-2xx or 3xx responses: 4
Requests/sec:    113.95
Transfer/sec:    347.00KB
"""


def test_a_clean_report_has_no_errors_and_its_percentiles_in_ms() -> None:
    result = parse_wrk(CLEAN)
    assert result.requests == 7700
    assert result.seconds == pytest.approx(15.02)
    assert result.requests_per_s == pytest.approx(512.66)
    assert result.latency_ms == pytest.approx({"50": 94.1, "75": 104.33, "90": 118.02, "99": 201.5})
    assert result.non_2xx == 0
    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.errors == 0


def test_error_lines_are_counted_and_every_time_unit_converted() -> None:
    result = parse_wrk(WITH_ERRORS)
    assert result.latency_ms == pytest.approx({"50": 0.85, "75": 1200, "90": 1500, "99": 63000})
    assert result.non_2xx == 4
    assert result.socket_errors == {"connect": 0, "read": 2, "write": 1, "timeout": 7}
    assert result.errors == 14
    assert result.to_json()["errors"] == 14


def test_a_report_without_the_latency_distribution_is_refused() -> None:
    without = "\n".join(line for line in CLEAN.splitlines() if "%  " not in line)
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(without)
    with pytest.raises(ValueError, match="'N requests in T'"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused")


def test_the_summary_names_the_scenarios_with_errors_and_lost_runs() -> None:
    clean, broken = parse_wrk(CLEAN).to_json(), parse_wrk(WITH_ERRORS).to_json()
    runs = {"recorded": 340, "accepted": 339, "failed": 0, "lost": 0, "cut_off": 1}
    rows = [
        {"scenario": "review queue", "connections": 50, **clean},
        {"scenario": "submit wait=true", "connections": 200, **broken, "runs": runs},
    ]
    summary = summarize(rows, {"succeeded": 340})
    assert summary["scenarios_with_errors"] == ["submit wait=true @200"]
    assert list(summary["targets"].values()) == [False, True, True, True]
    rows[1]["runs"] = {**runs, "recorded": 300, "lost": 39, "cut_off": 0}
    assert list(summarize(rows, {})["targets"].values()) == [False, False, True, True]
    rows[1] = {**rows[1], **clean, "runs": {**runs, "recorded": 600, "cut_off": 261}}
    assert summarize(rows, {})["targets"] == dict.fromkeys(summary["targets"], True) | {
        "no more runs than accepted + in flight at the end (one per connection)": False
    }


def test_without_wrk_the_benchmark_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick"], which=lambda: None) == 2
    assert "apt-get install wrk" in capsys.readouterr().err


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.command, self.headers["Authorization"], json.loads(body)))
        self.send_response(202 if len(self.seen) % 2 else 404)  # every other one an error
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/runs"
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(require_wrk() is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_sends_the_scripted_bodies_with_the_key_and_counts_error_statuses(
    recorder: str, tmp_path: Path
) -> None:
    bodies = [{"text": "refund"}, {"text": 'quote " and caf\u00e9'}]
    script = tmp_path / "post.lua"
    script.write_text(lua_script("tlk_ab_secret", "POST", bodies))
    result = run_wrk(recorder, script, connections=2, threads=1, duration_s=1, timeout_s=5)
    seen = _Recorder.seen
    assert result.requests > 0
    assert {method for method, _, _ in seen} == {"POST"}
    assert {auth for _, auth, _ in seen} == {"Bearer tlk_ab_secret"}
    sent = [body for _, _, body in seen]
    assert all(body in bodies for body in sent)  # decoded back intact, quote and accent too
    assert abs(sent.count(bodies[0]) - sent.count(bodies[1])) <= 2  # in turn
    # wrk may stop before reading the last responses the server sent.
    assert result.non_2xx == pytest.approx(len(seen) // 2, abs=2)
    assert result.cpu_s is not None
