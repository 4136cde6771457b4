"""The in-memory run store: records, lookups, and bounded retention."""

from __future__ import annotations

import time

import pytest

from knowledge import (
    MemoryRunStore,
    RouteDecision,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    RunStore,
    StepRecord,
    StepStatus,
)


def run(run_id: str, workflow: str = "wf") -> RunRecord:
    return RunRecord(run_id, workflow, {"text": run_id}, RunStatus.RUNNING, time.time())


def step(run_id: str, seq: int) -> StepRecord:
    decision = RouteDecision("end", None, (), None, "terminal step")
    return StepRecord(
        run_id, seq, "s", "fake", StepStatus.OK, 1, 1, None, None, None, 0.0, 0.0, decision
    )


def test_it_is_a_run_store() -> None:
    assert isinstance(MemoryRunStore(), RunStore)


def test_records_runs_and_steps_in_order() -> None:
    store = MemoryRunStore()
    store.create_run(run("a"))
    store.record_step(step("a", 0))
    store.record_step(step("a", 1))
    assert [s.seq for s in store.steps("a")] == [0, 1]
    assert store.unfinished() == ["a"]
    store.finish_run("a", RunStatus.FAILED, "boom")
    finished = store.get_run("a")
    assert (finished.status, finished.error) == (RunStatus.FAILED, "boom")
    assert finished.finished_at is not None
    assert store.unfinished() == []


def test_unknown_runs_are_clear_errors() -> None:
    store = MemoryRunStore()
    with pytest.raises(RunNotFoundError, match="Run 'x' is not in the run store"):
        store.get_run("x")
    with pytest.raises(RunNotFoundError):
        store.record_step(step("x", 0))
    with pytest.raises(RunNotFoundError):
        store.steps("x")


def test_unfinished_filters_by_workflow_oldest_first() -> None:
    store = MemoryRunStore()
    for run_id, wf in (("a", "one"), ("b", "two"), ("c", "one")):
        store.create_run(run(run_id, wf))
    assert store.unfinished("one") == ["a", "c"]
    assert store.unfinished() == ["a", "b", "c"]


def test_keeps_only_the_newest_finished_runs_and_every_unfinished_one() -> None:
    store = MemoryRunStore(max_finished=2)
    for run_id in "abcde":
        store.create_run(run(run_id))
    for run_id in "abcd":  # e stays unfinished
        store.finish_run(run_id, RunStatus.SUCCEEDED)
    with pytest.raises(RunNotFoundError):
        store.get_run("a")
    with pytest.raises(RunNotFoundError):
        store.steps("b")
    assert store.get_run("c").status is RunStatus.SUCCEEDED
    assert store.get_run("d").status is RunStatus.SUCCEEDED
    assert store.unfinished() == ["e"]


def test_finishing_twice_counts_once_and_unbounded_keeps_all() -> None:
    store = MemoryRunStore(max_finished=None)
    for run_id in "ab":
        store.create_run(run(run_id))
        store.finish_run(run_id, RunStatus.SUCCEEDED)
        store.finish_run(run_id, RunStatus.SUCCEEDED)
    assert [store.get_run(r).status for r in "ab"] == [RunStatus.SUCCEEDED] * 2
    with pytest.raises(ValueError, match="max_finished must be >= 0"):
        MemoryRunStore(max_finished=-1)
