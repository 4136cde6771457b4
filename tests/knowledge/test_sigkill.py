"""Crash test: SIGKILL a process mid-batch, resume in a fresh one, check exactly-once.

A worker process (``sigkill_worker.py``) starts 40 runs at once through a 4-step workflow
whose execute step commits a side effect through ``run_once``. The test watches the
database and kills the worker with SIGKILL once some runs have finished and at least one
run has committed its side effect without its execute step being recorded yet (the hardest
moment to crash). A second, fresh process resumes every unfinished run. Then: every run
finished with exactly its 4 steps, every side effect happened exactly once, and no step
recorded before the kill was called again.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text

WORKER = Path(__file__).with_name("sigkill_worker.py")
RUNS = 40
STEPS = ["perceive", "reason", "decide", "execute"]
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only; this platform has none"
)


def load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sigkill_worker", WORKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scalar(database: Any, sql: str) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


# Runs whose side effect is committed while their execute step is not recorded yet.
EFFECT_WITHOUT_RECORD = """
    SELECT count(*) FROM effects e WHERE NOT EXISTS (
        SELECT 1 FROM steps s WHERE s.run_id = e.run_id AND s.step = 'execute')
"""


def kill_in_the_window(database: Any, worker: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until some runs finished and one is between its effect and its record; kill."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and worker.poll() is None:
        done = scalar(database, "SELECT count(*) FROM runs WHERE status = 'succeeded'")
        if done >= 5 and scalar(database, EFFECT_WITHOUT_RECORD):
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            return
        time.sleep(0.002)
    worker.kill()
    worker.wait()
    output = log.read_text(errors="replace")
    pytest.fail(f"the worker never reached the crash window (exit {worker.returncode}):\n{output}")


def snapshot(database: Any) -> dict[str, Any]:
    with database.engine.connect() as conn:
        runs = dict(conn.execute(text("SELECT id, status FROM runs")).all())
        steps = conn.execute(text("SELECT run_id, step, seq FROM steps ORDER BY seq")).all()
        calls = conn.execute(text("SELECT run_id, step, phase FROM agent_calls")).all()
        effects = conn.execute(text("SELECT run_id FROM effects")).scalars().all()
    seqs = collections.defaultdict(list)
    for run_id, _, seq in steps:
        seqs[run_id].append(seq)
    return {
        "runs": runs,
        "steps": collections.Counter((r, s) for r, s, _ in steps),
        "seqs": seqs,
        "calls": collections.Counter((r, s, p) for r, s, p in calls),
        "effects": collections.Counter(effects),
        "in_window": scalar(database, EFFECT_WITHOUT_RECORD),
    }


def test_sigkill_mid_batch_then_resume_runs_every_effect_once(
    database: Any, tmp_path: Path
) -> None:
    load_worker().METADATA.create_all(database.engine)
    url = database.engine.url.render_as_string(hide_password=False)
    python = [sys.executable, str(WORKER)]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*python, "start", url, str(RUNS)], stdout=out, stderr=subprocess.STDOUT
        )
        kill_in_the_window(database, worker, log)
    assert worker.returncode == -signal.SIGKILL

    before = snapshot(database)
    finished = [r for r, status in before["runs"].items() if status == "succeeded"]
    assert len(before["runs"]) == RUNS  # every run was created before the kill
    assert 5 <= len(finished) < RUNS  # killed mid-batch
    assert before["in_window"] >= 1  # an effect committed, its step not recorded

    resumed = subprocess.run(
        [*python, "resume", url], capture_output=True, text=True, timeout=DEADLINE_S, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    statuses = json.loads(resumed.stdout.splitlines()[-1])
    assert sorted(statuses) == sorted(set(before["runs"]) - set(finished))
    assert set(statuses.values()) == {"succeeded"}

    after = snapshot(database)
    assert set(after["runs"].values()) == {"succeeded"}
    for run_id in after["runs"]:
        assert [after["steps"][run_id, s] for s in STEPS] == [1, 1, 1, 1], run_id
        assert after["seqs"][run_id] == [0, 1, 2, 3], run_id
        assert after["effects"][run_id] == 1, f"run {run_id}: side effect not exactly once"
    recorded_before = set(before["steps"])
    rerun = [
        (r, s)
        for (r, s, phase) in after["calls"]
        if phase == "resume" and (r, s) in recorded_before
    ]
    assert rerun == [], f"steps with a record before the kill were called again: {rerun}"
    called = {(r, s) for (r, s, _) in after["calls"]}
    assert called == {(r, s) for r in after["runs"] for s in STEPS}
