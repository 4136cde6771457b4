"""The HTTP service under load: wrk on loopback against task submission and the review queue.

    python -m benchmarks.service_load [--quick] [--json PATH]

The service runs in its own process (one uvicorn worker on 127.0.0.1) over a fresh SQLite
knowledge base in a temporary folder, serving a 3-step workflow of fake agents (classify,
then refund by a rule or reply by default) so the time measured is the service's: HTTP,
authentication, validation, the engine and the SQL run store. The review queue is seeded
with predictions over 10 labels. wrk, a separate C process, drives each scenario at 50 and
200 connections (2 threads, ``--timeout 30s``):

- ``submit wait=true``: ``POST /api/workflows/triage/runs?wait=true``, answered when the run
  has finished (200);
- ``submit wait=false``: the same with ``?wait=false``, answered once the run is recorded
  (202) while it goes on in the background;
- ``review queue``: ``GET /api/review/intent?limit=20``, the 20 most uncertain items.

An error is any response with status >= 400 or any socket error (connect, read, write,
timeout), as wrk counts them. After each submit scenario the benchmark waits until no run is
still running, then counts the runs recorded in the knowledge base: every accepted
submission must be there (``lost`` 0). A few more runs than wrk's responses are expected:
requests still in flight when wrk's time runs out are not counted by wrk but were served.

wrk and the server share the machine's cores, so the client competes with the server for
CPU; the table shows the CPU seconds each used.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _service_server as server_side
from benchmarks._report import write_json
from benchmarks._service_wrk import WrkResult, lua_script, require_wrk, run_wrk
from knowledge import Database

CONNECTIONS = (50, 200)
THREADS = 2
SUBMIT = f"/api/workflows/{server_side.WORKFLOW}/runs"
# name -> (method, path, bodies, whether each accepted request records a run)
SCENARIOS: dict[str, tuple[str, str, tuple[Any, ...], bool]] = {
    "submit wait=true": ("POST", SUBMIT + "?wait=true", server_side.TASKS, True),
    "submit wait=false": ("POST", SUBMIT + "?wait=false", server_side.TASKS, True),
    "review queue": ("GET", f"/api/review/{server_side.REVIEW_AGENT}?limit=20", (), False),
}
SETTLE_TIMEOUT_S = 300.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(database: Database) -> tuple[dict[str, int], float]:
    """Wait until no run is still running; return the run counts and how long that took."""
    start = time.perf_counter()
    while True:
        counts = server_side.count_runs(database)
        if counts.get("running", 0) == 0:
            return counts, time.perf_counter() - start
        if time.perf_counter() - start > SETTLE_TIMEOUT_S:
            raise RuntimeError(
                f"{counts['running']} runs still running {SETTLE_TIMEOUT_S:g} s after the load "
                "stopped; the server is stuck or far behind (see its log above)."
            )
        time.sleep(0.2)


def _runs_check(before: dict[str, int], after: dict[str, int], wrk: WrkResult) -> dict[str, int]:
    """Runs the scenario recorded vs the submissions wrk saw accepted."""
    recorded = sum(after.values()) - sum(before.values())
    accepted = wrk.requests - wrk.non_2xx
    return {
        "recorded": recorded,
        "accepted": accepted,
        "failed": after.get("failed", 0) - before.get("failed", 0),
        "lost": max(0, accepted - recorded),
        "cut_off": max(0, recorded - accepted),  # served after wrk's time ran out
    }


def measure(
    base: str, token: str, database: Database, pid: int, duration_s: int, folder: Path
) -> list[dict[str, Any]]:
    """Run every scenario at every connection count; one result dict per run of wrk."""
    scripts = {}
    for name, (method, _, bodies, _) in SCENARIOS.items():
        scripts[name] = folder / f"{name.replace(' ', '_').replace('=', '_')}.lua"
        scripts[name].write_text(lua_script(token, method, bodies))
    warm = SCENARIOS["submit wait=true"][1]  # imports, pools and caches warmed, not measured
    run_wrk(base + warm, scripts["submit wait=true"], connections=10, duration_s=1)
    _settle(database)
    results = []
    for name, (_, path, _, records_runs) in SCENARIOS.items():
        for connections in CONNECTIONS:
            before = server_side.count_runs(database)
            cpu = _cpu_seconds(pid)
            wrk = run_wrk(base + path, scripts[name], connections=connections,
                          duration_s=duration_s, threads=THREADS)  # fmt: skip
            server_cpu = _cpu_seconds(pid) - cpu
            after, settle_s = _settle(database)
            row: dict[str, Any] = {
                "scenario": name,
                "connections": connections,
                **wrk.to_json(),
                "server_cpu_s": round(server_cpu, 2),
                "server_cpu_ms_per_request": round(server_cpu * 1e3 / max(1, wrk.requests), 2),
                "settle_s": round(settle_s, 2),
            }
            if records_runs:
                row["runs"] = _runs_check(before, after, wrk)
            results.append(row)
            print(_row(row), file=sys.stderr, flush=True)
    return results


def summarize(rows: list[dict[str, Any]], final_runs: dict[str, int]) -> dict[str, Any]:
    """The rows, which scenarios had errors, the run-count check and the targets."""
    with_errors = [f"{r['scenario']} @{r['connections']}" for r in rows if r["errors"]]
    checked = [r["runs"] for r in rows if "runs" in r]
    lost = sum(c["lost"] for c in checked)
    # wrk leaves at most one request in flight per connection when its time runs out.
    surplus_ok = all(r["runs"]["cut_off"] <= r["connections"] for r in rows if "runs" in r)
    failed = sum(c["failed"] for c in checked)
    return {
        "scenarios": rows,
        "scenarios_with_errors": with_errors,
        "runs": {
            "in_knowledge_base": final_runs,
            "recorded_by_scenarios": sum(c["recorded"] for c in checked),
            "accepted_by_wrk": sum(c["accepted"] for c in checked),
            "lost": lost,
            "failed": failed,
        },
        "targets": {
            "zero errors (non-2xx or socket) in every scenario": not with_errors,
            "every accepted submission recorded in the knowledge base": lost == 0,
            "every run succeeded": failed == 0,
            "no more runs than accepted + in flight at the end (one per connection)": surplus_ok,
        },
    }


def _row(r: dict[str, Any]) -> str:
    runs = r.get("runs")
    recorded = f"{runs['recorded']} ({runs['lost']} lost)" if runs else "-"
    latency = r["latency_ms"]
    cells = [
        r["scenario"], str(r["connections"]), f"{r['requests_per_s']:.0f}",
        f"{latency['50']:.1f}", f"{latency['99']:.1f}", str(r["requests"]), str(r["errors"]),
        f"{r['server_cpu_s']:.1f} / {r['cpu_s']:.1f}", f"{r['server_cpu_ms_per_request']:.1f}",
        recorded,
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def render(summary: dict[str, Any], duration_s: int, predictions: int) -> str:
    """The results as a Markdown table with the machine caveat and the targets."""
    lines = [
        "| scenario | connections | req/s | p50 ms | p99 ms | requests | errors "
        "| CPU s server / wrk | server CPU ms/req | runs recorded |",
        "|" + "---|" * 10,
        *(_row(r) for r in summary["scenarios"]),
        "",
        f"{duration_s:g} s per scenario, wrk -t {THREADS} --timeout 30s, one uvicorn worker, "
        f"SQLite file, review queue of {predictions} items. {os.cpu_count()} CPU cores shared "
        "by the server and wrk: the client competes with the server for CPU.",
        "errors = responses with status >= 400 + socket errors (connect/read/write/timeout); "
        f"scenarios with errors: {', '.join(summary['scenarios_with_errors']) or 'none'}.",
    ]
    runs = summary["runs"]
    lines.append(
        f"runs: {runs['recorded_by_scenarios']} recorded for {runs['accepted_by_wrk']} "
        f"submissions wrk saw accepted ({runs['lost']} lost, {runs['failed']} failed; the "
        "surplus were in flight when wrk stopped, at most one per connection)."
    )
    lines += [f"- [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in summary["targets"].items()]
    return "\n".join(lines)


def run(quick: bool) -> tuple[dict[str, Any], int, int]:
    """Seed, serve, load; return the summary, the duration per scenario and the seed size."""
    duration_s, predictions = (3, 100) if quick else (15, 500)
    with tempfile.TemporaryDirectory(prefix="taskloom-load-") as tmp:
        folder = Path(tmp)
        database = Database(f"sqlite:///{folder / 'kb.db'}")
        token = server_side.seed(database, predictions)
        process, base = server_side.start_server(database.url, folder / "jobs")
        try:
            rows = measure(base, token, database, process.pid, duration_s, folder)
        finally:
            server_side.stop(process)
        final = server_side.count_runs(database)
        database.dispose()
    return summarize(rows, final), duration_s, predictions


def main(argv: list[str] | None = None, which: Callable[[], str | None] = require_wrk) -> int:
    """Run the benchmark, print the table, optionally write JSON; 2 without wrk."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per scenario (< 1 min)")
    parser.add_argument("--json", type=Path, help="write results as JSON to this path")
    args = parser.parse_args(argv)
    if which() is None:
        print(
            "wrk, the load generator, is not installed: apt-get install wrk (Debian/Ubuntu) "
            "or brew install wrk (macOS), then run this again.",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    load_before = os.getloadavg()  # other work on the machine skews every number
    summary, duration_s, predictions = run(args.quick)
    print(render(summary, duration_s, predictions))
    if args.json:
        meta = {
            "benchmark": "service_load",
            "quick": args.quick,
            "duration_s": duration_s,
            "connections": list(CONNECTIONS),
            "wrk_threads": THREADS,
            "review_items": predictions,
            "server": "uvicorn, 1 worker, SQLite file",
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        }
        write_json(args.json, meta, summary, started)
    return 0 if all(summary["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
