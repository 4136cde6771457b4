"""Retention: old checkpoints go; unfinished runs, final states and feedback's runs stay."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from knowledge import (
    PruneReport,
    RouteDecision,
    RunRecord,
    RunStatus,
    SqlRunStore,
    StepRecord,
    StepStatus,
    prune,
)
from knowledge._models import Feedback, Prediction, Run, Step

NOW = 100_000.0
END = ("end", "fail")


def add_run(
    database: Any,
    run_id: str,
    kinds: str = "rule rule rule end",
    *,
    finished_at: float | None = 1_000.0,
    status: RunStatus = RunStatus.SUCCEEDED,
) -> None:
    """A run with one step record per decision kind; finished at ``finished_at`` (or not)."""
    store = SqlRunStore(database)
    store.create_run(RunRecord(run_id, "wf", {"text": run_id}, RunStatus.RUNNING, 10.0))
    for seq, kind in enumerate(kinds.split()):
        decision = RouteDecision(kind, None, () if kind in END else ("x",), None, kind)
        store.record_step(
            StepRecord(
                run_id, seq, f"s{seq}", "fake", StepStatus.OK, 1, 1, {"text": "in"},
                {"text": "out"}, None, 10.0 + seq, 0.1, decision,
            )
        )  # fmt: skip
    if finished_at is not None:
        store.finish_run(run_id, status)
        with database.transaction() as session:
            session.execute(update(Run).where(Run.id == run_id).values(finished_at=finished_at))


def add_prediction(database: Any, run_id: str, *, with_feedback: bool) -> None:
    with database.transaction() as session:
        prediction = Prediction(
            run_id=run_id, step="s0", agent="fake", model_version="v1", input={"text": "in"},
            output={"label": "a"}, label="a", confidence=0.4, created_at=1.0,
        )  # fmt: skip
        session.add(prediction)
        session.flush()
        if with_feedback:
            session.add(
                Feedback(
                    prediction_id=prediction.id, label="b", source="human", author="ann",
                    status="new", created_at=2.0,
                )
            )  # fmt: skip


def seqs(database: Any) -> dict[str, list[int]]:
    with database.engine.connect() as conn:
        rows = conn.execute(select(Step.run_id, Step.seq).order_by(Step.run_id, Step.seq))
        found: dict[str, list[int]] = {}
        for run_id, seq in rows:
            found.setdefault(run_id, []).append(seq)
        return found


def pruned(database: Any, **limits: Any) -> PruneReport:
    with database.transaction() as session:
        return prune(session, now=NOW, **limits)


def test_age_prunes_old_finished_runs_down_to_their_last_step(database: Any) -> None:
    add_run(database, "old", finished_at=1_000.0)
    add_run(database, "recent", finished_at=NOW - 10)
    add_run(database, "running", "rule rule", finished_at=None)  # created long ago
    report = pruned(database, older_than_s=3_600)
    assert report == PruneReport(
        runs_pruned=1, steps_deleted=3, runs_kept_for_feedback=0, cutoff=NOW - 3_600
    )
    assert seqs(database) == {"old": [3], "recent": [0, 1, 2, 3], "running": [0, 1]}
    again = pruned(database, older_than_s=3_600)
    assert (again.runs_pruned, again.steps_deleted) == (0, 0)
    assert seqs(database)["old"] == [3]


def test_keep_last_keeps_the_newest_finished_runs_whole(database: Any) -> None:
    for i in range(4):
        add_run(database, f"r{i}", finished_at=1_000.0 + i)
    add_run(database, "running", finished_at=None)
    report = pruned(database, keep_last=2)
    assert (report.runs_pruned, report.steps_deleted, report.cutoff) == (2, 6, None)
    assert seqs(database) == {
        "r0": [3], "r1": [3], "r2": [0, 1, 2, 3], "r3": [0, 1, 2, 3], "running": [0, 1, 2, 3],
    }  # fmt: skip
    assert pruned(database, keep_last=0).runs_pruned == 2


def test_with_both_limits_a_run_goes_only_if_both_select_it(database: Any) -> None:
    for i, at in enumerate((1_000.0, 2_000.0, NOW - 10)):
        add_run(database, f"r{i}", finished_at=at)
    # keep_last=1 selects r0 and r1; the age selects r0 only.
    report = pruned(database, keep_last=1, older_than_s=NOW - 1_500)
    assert report.runs_pruned == 1
    assert seqs(database) == {"r0": [3], "r1": [0, 1, 2, 3], "r2": [0, 1, 2, 3]}


def test_every_record_where_a_branch_ended_is_kept(database: Any) -> None:
    # Fan-out: seq 1 ended one branch, seq 3 the other; a failed branch keeps its failure.
    add_run(database, "fan", "rule end rule end")
    add_run(database, "failed", "rule fail error end", status=RunStatus.FAILED)
    add_run(database, "one", "end")
    report = pruned(database, older_than_s=0)
    assert (report.runs_pruned, report.steps_deleted) == (2, 4)
    assert seqs(database) == {"fan": [1, 3], "failed": [1, 3], "one": [0]}


def test_runs_that_feedback_points_at_are_kept_whole(database: Any) -> None:
    add_run(database, "labelled")
    add_run(database, "predicted")
    add_prediction(database, "labelled", with_feedback=True)
    add_prediction(database, "predicted", with_feedback=False)
    report = pruned(database, older_than_s=0)
    assert (report.runs_pruned, report.runs_kept_for_feedback) == (1, 1)
    assert seqs(database) == {"labelled": [0, 1, 2, 3], "predicted": [3]}
    with database.engine.connect() as conn:  # run rows and links stay
        assert sorted(conn.execute(select(Run.id)).scalars()) == ["labelled", "predicted"]
        assert sorted(conn.execute(select(Prediction.run_id)).scalars()) == [
            "labelled", "predicted",
        ]  # fmt: skip


def test_nothing_is_deleted_until_the_caller_commits(database: Any) -> None:
    add_run(database, "old")
    with database.session() as session:
        assert prune(session, older_than_s=0).steps_deleted == 3
        session.rollback()
    assert seqs(database) == {"old": [0, 1, 2, 3]}


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({}, "prune needs a limit"),
        ({"older_than_s": -1.0}, "must be >= 0"),
        ({"keep_last": -2}, "must be >= 0"),
    ],
)
def test_bad_limits_are_refused(database: Any, limits: dict[str, Any], message: str) -> None:
    with database.session() as session, pytest.raises(ValueError, match=message):
        prune(session, **limits)
