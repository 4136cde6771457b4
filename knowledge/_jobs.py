"""Fine-tuning jobs: one row per training round of an agent, so rounds can be listed,
triggered by new labels, and resumed after a failure.

A job is started ``running`` and finished once with its outcome:

- ``succeeded``: the candidate was promoted; ``rejected``: the gate refused it (serving kept);
- ``failed``: an exception stopped the round (``error`` says which); ``diverged``: the
  training loss became non-finite. Neither touches the serving model, and both can be
  resumed from their ``out_dir`` checkpoint.

Store functions take the session first; the caller commits.
"""

from __future__ import annotations

import time
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, JsonValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._errors import KnowledgeError

__all__ = [
    "FinetuneJob",
    "JobStatus",
    "UnknownJobError",
    "finish_job",
    "get_job",
    "list_jobs",
    "new_labels_since_last_job",
    "start_job",
    "update_job",
]

JobStatus = Literal["queued", "running", "succeeded", "rejected", "failed", "diverged"]
FINAL: tuple[str, ...] = ("succeeded", "rejected", "failed", "diverged")
USABLE_FEEDBACK = ("new", "used")  # rejected feedback is never trained on
LABEL_SOURCES = ("human", "outcome")


class UnknownJobError(KnowledgeError, LookupError):
    """No fine-tuning job has that id."""


class FinetuneJob(BaseModel):
    """A recorded fine-tuning round (see the module docstring for the statuses).

    Attributes:
        id: The job id (``taskloom finetune run --resume ID``).
        agent: The agent trained.
        status: queued, running, succeeded, rejected, failed or diverged.
        trigger: Why it ran: ``manual``, ``labels`` (enough new labels), ``interval``...
        dataset_version: The train/validation snapshot it trained on, once built.
        candidate_version: The model version it registered, once trained.
        out_dir: The run folder (artifact, metrics, checkpoint to resume from).
        config: The training and gate settings, so a resume repeats the same run.
        started_at: Epoch seconds.
        finished_at: Epoch seconds; None while running.
        error: Why it failed or diverged.
        result: The gate's decision and the candidate's scores.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    agent: str
    status: JobStatus
    trigger: str
    dataset_version: int | None
    candidate_version: str | None
    out_dir: str
    config: dict[str, Any]
    started_at: float
    finished_at: float | None
    error: str | None
    result: dict[str, Any] | None


def start_job(
    session: Session, agent: str, *, trigger: str, out_dir: str, config: dict[str, JsonValue]
) -> FinetuneJob:
    """Record a round as ``running`` and return it (flushed, so it has an id).

    Args:
        session: The session to write in.
        agent: The agent to train.
        trigger: Why the round runs (``manual``, ``labels``...).
        out_dir: The run folder.
        config: The settings of the round (JSON values).

    Returns:
        The job.
    """
    row = orm.FinetuneJob(
        agent=agent,
        status="running",
        trigger=trigger,
        out_dir=out_dir,
        config=config,
        started_at=time.time(),
    )
    session.add(row)
    session.flush()
    return FinetuneJob.model_validate(row)


def _row(session: Session, job_id: int) -> orm.FinetuneJob:
    row = session.get(orm.FinetuneJob, job_id)
    if row is None:
        raise UnknownJobError(
            f"No fine-tuning job {job_id}. List an agent's jobs with "
            "'taskloom finetune jobs --agent NAME'."
        )
    return row


def update_job(
    session: Session,
    job_id: int,
    *,
    dataset_version: int | None = None,
    candidate_version: str | None = None,
    out_dir: str | None = None,
) -> FinetuneJob:
    """Record what a running round has produced so far (None leaves a field as it is)."""
    row = _row(session, job_id)
    if out_dir is not None:
        row.out_dir = out_dir
    if dataset_version is not None:
        row.dataset_version = dataset_version
    if candidate_version is not None:
        row.candidate_version = candidate_version
    session.flush()
    return FinetuneJob.model_validate(row)


def finish_job(
    session: Session,
    job_id: int,
    status: JobStatus,
    *,
    error: str | None = None,
    result: dict[str, JsonValue] | None = None,
) -> FinetuneJob:
    """Record a round's outcome, or put a failed one back to ``running`` (a resume).

    Args:
        session: The session to write in.
        job_id: The job.
        status: A final status, or ``running`` to restart a failed or diverged job.
        error: Why it failed or diverged.
        result: The gate's decision and scores.

    Returns:
        The job.

    Raises:
        UnknownJobError: No such job.
        ValueError: ``status`` is not a job status.
    """
    if status not in get_args(JobStatus):
        raise ValueError(f"Unknown job status '{status}'. Valid: {', '.join(get_args(JobStatus))}.")
    row = _row(session, job_id)
    row.status, row.error, row.result = status, error, result
    row.finished_at = time.time() if status in FINAL else None
    session.flush()
    return FinetuneJob.model_validate(row)


def get_job(session: Session, job_id: int) -> FinetuneJob:
    """Return a job.

    Raises:
        UnknownJobError: No such job.
    """
    return FinetuneJob.model_validate(_row(session, job_id))


def list_jobs(session: Session, agent: str, *, limit: int = 50) -> list[FinetuneJob]:
    """Return an agent's jobs, newest first."""
    query = (
        select(orm.FinetuneJob)
        .where(orm.FinetuneJob.agent == agent)
        .order_by(orm.FinetuneJob.id.desc())
        .limit(limit)
    )
    return [FinetuneJob.model_validate(row) for row in session.scalars(query)]


def new_labels_since_last_job(session: Session, agent: str) -> int:
    """Count an agent's usable labels given since its last job started (all, if none).

    A usable label is human or outcome feedback with a label, not rejected: what
    ``finetune.build_dataset`` trains on. ``taskloom finetune watch`` starts a round when
    this reaches its threshold.
    """
    since = session.scalar(
        select(func.max(orm.FinetuneJob.started_at)).where(orm.FinetuneJob.agent == agent)
    )
    query = (
        select(func.count(orm.Feedback.id))
        .join(orm.Prediction, orm.Feedback.prediction_id == orm.Prediction.id)
        .where(
            orm.Prediction.agent == agent,
            orm.Feedback.status.in_(USABLE_FEEDBACK),
            orm.Feedback.source.in_(LABEL_SOURCES),
            orm.Feedback.label.is_not(None),
        )
    )
    if since is not None:
        query = query.where(orm.Feedback.created_at > since)
    return int(session.scalar(query) or 0)
