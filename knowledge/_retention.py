"""Retention: prune old step checkpoints of finished runs, keeping what still matters.

A finished run's checkpoints are only needed to explain it; once it is old enough, or
beyond the newest ``keep_last`` finished runs, ``prune`` deletes its step records except its
final state. What is never deleted:

- anything of an unfinished run (it may still be resumed from its checkpoints);
- a run's final state: its last record, plus every record where a branch ended (a terminal
  step, or a step that failed the run), so the run's outputs and error stay explainable;
- anything of a run with a prediction that has feedback (training data points at it);
- the run rows themselves, so predictions, audits and dashboards keep their links.

A pruned run cannot be replayed with ``Engine.resume`` any more (its history has gaps);
finished runs never need to be.
"""

from __future__ import annotations

import time
from typing import cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, FromClause, Table, and_, delete, exists, func, select
from sqlalchemy.orm import Session

from knowledge._models import Feedback, Prediction, Run, Step
from knowledge._records import RunStatus

__all__ = ["PruneReport", "prune"]

_RUNS = cast("Table", Run.__table__)  # typed as a FromClause
_STEPS = cast("Table", Step.__table__)  # typed as a FromClause
# Decision kinds that end a branch: the run's final state lives in these records.
_FINAL_KINDS = ("end", "fail")


class PruneReport(BaseModel):
    """What ``prune`` deleted and what it kept on purpose.

    Attributes:
        runs_pruned: Finished runs that lost at least one checkpoint.
        steps_deleted: Step records deleted.
        runs_kept_for_feedback: Finished runs the policy selected but kept whole because
            feedback points at their predictions.
        cutoff: Runs finished before this time (epoch seconds) were old enough, or None
            when no age was given.
    """

    model_config = ConfigDict(frozen=True)

    runs_pruned: int
    steps_deleted: int
    runs_kept_for_feedback: int
    cutoff: float | None


def prune(
    session: Session,
    *,
    older_than_s: float | None = None,
    keep_last: int | None = None,
    now: float | None = None,
) -> PruneReport:
    """Delete old checkpoints of finished runs (see the module docstring for what stays).

    With both limits, a run is pruned only if both select it: ``keep_last`` is a floor that
    age never cuts below. The caller commits; on SQLite the transaction holds the write lock
    until then, so commit promptly.

    Args:
        session: The session to delete through.
        older_than_s: Prune runs finished more than this many seconds before ``now``.
        keep_last: Keep the newest this-many finished runs whole; prune older ones.
        now: The reference time in epoch seconds (default: now).

    Returns:
        What was deleted and what was kept for feedback.

    Raises:
        ValueError: Neither limit was given, or one is negative.
    """
    if older_than_s is None and keep_last is None:
        raise ValueError(
            "prune needs a limit: older_than_s (seconds since a run finished) and/or "
            "keep_last (how many of the newest finished runs to keep)."
        )
    if (older_than_s is not None and older_than_s < 0) or (keep_last is not None and keep_last < 0):
        raise ValueError(
            f"prune limits must be >= 0, got older_than_s={older_than_s}, keep_last={keep_last}"
        )
    cutoff = None if older_than_s is None else (time.time() if now is None else now) - older_than_s
    selected = _selected(cutoff, keep_last)
    has_feedback = exists(
        select(Prediction.id)
        .join(Feedback, Feedback.prediction_id == Prediction.id)
        .where(Prediction.run_id == _RUNS.c.id)
    )
    protected = session.execute(
        select(func.count()).select_from(_RUNS).where(selected, has_feedback)
    ).scalar_one()
    prunable = select(_RUNS.c.id).where(selected, ~has_feedback)
    later = _STEPS.alias("later")
    last_seq = (
        select(func.max(later.c.seq)).where(later.c.run_id == _STEPS.c.run_id).scalar_subquery()
    )
    doomed = and_(
        _STEPS.c.run_id.in_(prunable),
        _STEPS.c.decision_kind.not_in(_FINAL_KINDS),
        _STEPS.c.seq < last_seq,
    )
    runs = session.execute(select(func.count(func.distinct(_STEPS.c.run_id))).where(doomed))
    runs_pruned = runs.scalar_one()
    deleted = session.execute(delete(_STEPS).where(doomed)).rowcount  # type: ignore[attr-defined]
    return PruneReport(
        runs_pruned=runs_pruned,
        steps_deleted=deleted,
        runs_kept_for_feedback=protected,
        cutoff=cutoff,
    )


def _selected(cutoff: float | None, keep_last: int | None) -> ColumnElement[bool]:
    """The condition on ``runs`` that the retention policy selects for pruning."""
    conditions = [_finished(_RUNS)]
    if cutoff is not None:
        conditions.append(_RUNS.c.finished_at < cutoff)
    if keep_last is not None:
        # An alias: the same table in the subquery would be correlated to the outer one.
        other = _RUNS.alias("newest")
        newest = (
            select(other.c.id)
            .where(_finished(other))
            .order_by(other.c.finished_at.desc(), other.c.id.desc())
            .limit(keep_last)
        )
        conditions.append(_RUNS.c.id.not_in(newest))
    return and_(*conditions)


def _finished(runs: FromClause) -> ColumnElement[bool]:
    return and_(runs.c.status != RunStatus.RUNNING.value, runs.c.finished_at.is_not(None))
