"""One round of the feedback loop, recorded as a job: snapshot, train, gate, promote.

A round, off the request path (``taskloom finetune run|watch``)::

    start job (running) -> build_dataset (frozen holdout) -> train a candidate from the
    serving model's encoder (the base model for a first round) -> register it
    -> evaluate candidate and serving on the same holdout -> promote_if_better
    -> job succeeded (promoted) | rejected (serving kept)

Anything that goes wrong marks the job ``failed`` (``diverged`` for a non-finite loss) with
its error. The serving alias moves only in the last transaction, so a failed, crashed or
diverged round never touches the serving model. ``resume_round`` continues such a job from
its run folder's checkpoint with the recorded settings (the same dataset version only).

The candidate starts from the serving model's encoder weights with a new head: the label set
may change between rounds, and a fresh head is what ``train`` builds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from finetune._config import TrainConfig
from finetune._data import Example
from finetune._errors import FinetuneError, TrainingDivergedError
from finetune._feedback_data import DatasetSplit, LabelledExample, build_dataset
from finetune._gate import GateConfig, GateDecision, evaluate_and_gate, promote_if_better
from finetune._joblock import job_lock
from finetune._loop import train
from finetune._metrics import EvalReport, evaluate
from finetune._run_files import encoder_folder
from knowledge import (
    Database,
    FinetuneJob,
    ModelVersion,
    ModelVersionIn,
    finish_job,
    get_job,
    new_labels_since_last_job,
    register_model_version,
    serving_version,
    start_job,
    update_job,
)
from knowledge._jobs import JobStatus

__all__ = ["JobResult", "resume_round", "run_round", "watch"]

RUN, BASE = "run", "base"  # a job folder's training run and warm-start encoder
RESUMABLE = ("failed", "diverged", "running")  # running: its process crashed


@dataclass(frozen=True)
class JobResult:
    """How a round ended.

    Attributes:
        job: The job as recorded (``status``: succeeded, rejected, failed or diverged).
        decision: The gate's decision; None when the round stopped before gating.
    """

    job: FinetuneJob
    decision: GateDecision | None = None

    @property
    def promoted(self) -> bool:
        """The candidate serves now."""
        return self.job.status == "succeeded"


def run_round(
    database: Database,
    agent: str,
    *,
    config: TrainConfig,
    gate_config: GateConfig | None = None,
    actor: str = "finetune",
    trigger: str = "manual",
    min_per_class: int = 5,
) -> JobResult:
    """Run one recorded round for ``agent``; never raises for a failed round.

    Args:
        database: The knowledge base with the agent's feedback and model versions.
        agent: The agent to fine-tune.
        config: Training settings; ``out_dir`` is the folder under which each job gets
            ``job-<id>/`` (``base_model`` is used only for the agent's first model).
        gate_config: What the candidate must achieve (default ``GateConfig()``).
        actor: Who promotes (the alias history and audit log).
        trigger: Why the round runs (``manual``, ``labels``...), recorded on the job.
        min_per_class: Fewest examples each label needs.

    Returns:
        The job and the gate's decision.
    """
    gate_config = gate_config or GateConfig()
    settings: dict[str, JsonValue] = {
        "train": config.to_dict(),
        "gate": {**vars(gate_config), "guarded_labels": list(gate_config.guarded_labels)},
        "min_per_class": min_per_class,
        "actor": actor,
    }
    with database.transaction() as session:
        job = start_job(session, agent, trigger=trigger, out_dir=config.out_dir, config=settings)
        job = update_job(session, job.id, out_dir=str(Path(config.out_dir) / f"job-{job.id}"))
    with job_lock(job.out_dir, job.id):
        return _guarded_run(database, job, resume=False)


def resume_round(database: Database, job_id: int) -> JobResult:
    """Continue a failed, diverged or crashed job from its checkpoint, same settings.

    A ``running`` job is resumed only when no process still runs it (``job_lock``).

    Raises:
        UnknownJobError: No such job.
        FinetuneError: The job finished already (succeeded or rejected), or another
            process is running it.
    """
    with database.session() as session:
        out_dir = get_job(session, job_id).out_dir
    with job_lock(out_dir, job_id):
        with database.transaction() as session:
            job = get_job(session, job_id)
            if job.status not in RESUMABLE:
                raise FinetuneError(
                    f"Job {job_id} of agent '{job.agent}' is {job.status}: only a job that is "
                    f"{', '.join(RESUMABLE)} can be resumed. Start a new round instead."
                )
            job = finish_job(session, job_id, "running")
        return _guarded_run(database, job, resume=True)


def _guarded_run(database: Database, job: FinetuneJob, *, resume: bool) -> JobResult:
    """Run the round; record any failure on the job instead of raising it."""
    status: JobStatus = "failed"
    error = ""
    try:
        return _execute(database, job, resume=resume)
    except TrainingDivergedError as exc:
        status, error = "diverged", str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    with database.transaction() as session:
        return JobResult(finish_job(session, job.id, status, error=error))


def _execute(database: Database, job: FinetuneJob, *, resume: bool) -> JobResult:
    settings = job.config
    gate_config = GateConfig(
        **{**settings["gate"], "guarded_labels": tuple(settings["gate"]["guarded_labels"])}
    )
    with database.transaction() as session:
        serving = serving_version(session, job.agent)
        split = _dataset(session, job, serving, resume=resume)
    config = _job_config(TrainConfig(**settings["train"]), job, serving)
    result = train(config, _rows(split.train), _rows(split.validation), resume=resume)
    texts = [example.text for example in split.holdout]
    truths = [example.label for example in split.holdout]

    def score(model_dir: str, _: object) -> EvalReport:
        return evaluate(model_dir, texts, truths)

    serving_dir = None if serving is None else serving.artifact_path
    decision = evaluate_and_gate(score, str(result.model_dir), serving_dir, None, gate_config)
    version = f"job-{job.id}"
    with database.transaction() as session:
        register_model_version(
            session,
            ModelVersionIn(
                agent=job.agent,
                version=version,
                artifact_path=str(result.model_dir),
                sha256=result.sha256,
                metrics={"holdout": dict(decision.candidate), "best_metric": result.best_metric},
                dataset_id=split.dataset.id,
            ),
        )
        update_job(session, job.id, candidate_version=version)
        promotion = promote_if_better(
            session, job.agent, version, decision, actor=str(settings["actor"])
        )
        status: JobStatus = "succeeded" if promotion.promoted else "rejected"
        done = finish_job(session, job.id, status, result=decision.to_json())
    return JobResult(done, decision)


def _dataset(
    session: Any, job: FinetuneJob, serving: ModelVersion | None, *, resume: bool
) -> DatasetSplit:
    """Snapshot this round's data; a resumed job must find the dataset version it started on."""
    from agents._artifact import read_artifact  # noqa: PLC0415 - torch-free, cycle-free

    serving_labels = None if serving is None else read_artifact(serving.artifact_path)[0].labels
    split = build_dataset(
        session,
        job.agent,
        seed=int(job.config["train"]["seed"]),
        min_per_class=int(job.config["min_per_class"]),
        serving_labels=serving_labels,
    )
    if resume and job.dataset_version not in (None, split.dataset.version):
        raise FinetuneError(
            f"Cannot resume job {job.id}: it trained on dataset version {job.dataset_version} "
            f"but the feedback now gives version {split.dataset.version} (labels changed). "
            "Start a new round with 'taskloom finetune run'."
        )
    update_job(session, job.id, dataset_version=split.dataset.version)
    return split


def _job_config(config: TrainConfig, job: FinetuneJob, serving: ModelVersion | None) -> TrainConfig:
    """The job's own run folder, starting from the serving model's encoder if there is one."""
    folder = Path(job.out_dir)
    base = config.base_model
    if serving is not None:
        base_dir = folder / BASE
        if not base_dir.exists():
            encoder_folder(serving.artifact_path, base_dir)
        base = str(base_dir)
    return dataclasses.replace(config, out_dir=str(folder / RUN), base_model=base)


def _rows(examples: Sequence[LabelledExample]) -> list[Example]:
    return [Example(example.text, example.label) for example in examples]


def watch(
    database: Database,
    agent: str,
    *,
    config: TrainConfig,
    gate_config: GateConfig | None = None,
    min_labels: int = 100,
    interval_s: float = 3600.0,
    once: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobResult]:
    """Run a round whenever ``min_labels`` new labels have arrived since the last job.

    Checks every ``interval_s`` seconds, forever unless ``once`` (one check, for tests and
    cron). Returns the rounds run (when ``once``).
    """
    results: list[JobResult] = []
    while True:
        with database.session() as session:
            fresh = new_labels_since_last_job(session, agent)
        if fresh >= min_labels:
            results.append(
                run_round(database, agent, config=config, gate_config=gate_config, trigger="labels")
            )
        if once:
            return results
        sleep(interval_s)
