"""Eight processes write predictions and feedback at once; every row is accounted for.

Each worker (``concurrency_worker.py``, spawned, with its own ``Database`` on the same SQLite
file or PostgreSQL database) commits transactions as fast as it can for
``TASKLOOM_CONCURRENCY_SECONDS`` (default 20, what CI runs) and reports what it committed.
All start on one signal. Then the database must hold exactly the sum of the reports, every
worker must have committed, and no worker may have raised anything: a "database is locked" or
a serialization failure reaching a caller fails the test with its traceback.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from knowledge import Database
from knowledge import _models as orm

SECONDS = float(os.environ.get("TASKLOOM_CONCURRENCY_SECONDS", "20"))
WORKERS = 8
STARTUP_S = 120.0  # spawning 8 interpreters that import SQLAlchemy on a busy 2-core machine
REPORT_S = SECONDS + 120.0  # the last transaction, plus a 30 s busy timeout, with room


def _collect(queue: Any, kind: str, timeout: float) -> dict[int, Any]:
    """Wait for one ``kind`` message per worker; fail on the first error report."""
    reports: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(reports) < WORKERS:
        try:
            status, worker, payload = queue.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue_module.Empty:
            pytest.fail(f"only {sorted(reports)} of {WORKERS} workers reported '{kind}'")
        if status == "error":
            pytest.fail(f"worker {worker} raised:\n{payload}", pytrace=False)
        assert status == kind, (status, worker)
        reports[worker] = payload
    return reports


def _in_database(database: Database) -> dict[str, Any]:
    with database.session() as session:

        def count(model: type[orm.Base]) -> int:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

        per_agent = {
            agent: n
            for agent, n in session.execute(
                select(orm.Prediction.agent, func.count()).group_by(orm.Prediction.agent)
            )
        }
        return {
            "predictions": count(orm.Prediction),
            "feedback": count(orm.Feedback),
            "audit": count(orm.AuditEntry),
            "per_agent": per_agent,
        }


def test_eight_processes_write_at_once_and_every_row_is_accounted_for(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned children import the worker by name; they inherit the parent's sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import concurrency_worker  # noqa: PLC0415 -- importable only once the path is set

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = context.Event()
    processes = [
        context.Process(
            target=concurrency_worker.work, args=(database.url, w, SECONDS, queue, start)
        )
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        _collect(queue, "ready", STARTUP_S)
        start.set()
        reports = _collect(queue, "done", REPORT_S)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * WORKERS

    found = _in_database(database)
    slowest = max(r["slowest_s"] for r in reports.values())
    print(f"{database.dialect}: {found} written; slowest transaction {slowest:.2f} s")
    expected = {k: sum(r[k] for r in reports.values()) for k in ("predictions", "feedback")}
    assert found["predictions"] == expected["predictions"]
    assert found["feedback"] == expected["feedback"]
    assert found["audit"] == expected["feedback"]  # one audit entry per feedback row
    assert found["per_agent"] == {f"worker{w}": r["predictions"] for w, r in reports.items()}
    assert all(r["transactions"] > 0 for r in reports.values()), reports
