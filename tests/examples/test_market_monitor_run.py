"""The market monitor end to end: ``run_market_monitor.py --quick`` on the real model and data.

The runner trains the sentiment classifier and the alert policy, streams three days of
news, takes the simulated analyst's verdicts and delivers every alert to a webhook served
by this test, then writes the report, the plot and the digest.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
ROW = re.compile(
    r"^\| (\d+) \| (\S+) \| (\d+) \| ([\d.]+) \| (\d+) \((\d+)\) \| (\d+) \| ([\d.]+) \| "
    r"(\d+) / (\d+) \| ([\d.]+) \|"
)


class Receiver(BaseHTTPRequestHandler):
    """A webhook that records what it is sent."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_quick_monitor_runs_end_to_end(tmp_path: Path, webhook: str) -> None:
    out = tmp_path / "monitor"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "run_market_monitor.py"),
            "--quick",
            "--out",
            str(out),
            "--webhook",
            webhook,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    report = (out / "report.md").read_text("utf-8")
    rows = [m.groups() for line in report.splitlines() if (m := ROW.match(line))]
    assert [int(r[0]) for r in rows] == [1, 2]  # the days after calibration
    for row in rows:
        alerts, useful, caught, events = int(row[4]), int(row[6]), int(row[8]), int(row[9])
        assert 0 <= useful <= alerts
        assert 0 <= caught <= events == 5
        assert float(row[3]) > 0.6, "the sentiment classifier learnt little"
    assert sum(int(r[8]) for r in rows) > 0, "no event was caught"
    assert "Runs failed: 0." in report
    assert (out / "rounds.png").stat().st_size > 10_000
    digest = (out / "digest.md").read_text("utf-8")
    assert digest.startswith("# Market digest: 2026-01-07 00:00 to 2026-01-08 00:00 UTC")
    assert "## Alerts" in digest
    assert "### " in digest

    with sqlite3.connect(out / "monitor.db") as db:
        keys = [k for (k,) in db.execute("SELECT dedup_key FROM mm_alerts")]
        statuses = {s for (s,) in db.execute("SELECT status FROM mm_alerts")}
        outcomes = db.execute(
            "SELECT count(*) FROM feedback WHERE source = 'outcome' AND author = 'analyst'"
        ).fetchone()[0]
    assert keys
    assert statuses == {"delivered"}
    assert sorted(k for k, _ in Receiver.received) == sorted(keys)  # each once
    assert outcomes > 0  # the analyst's verdicts, on the days before the last
