"""The feedback loop on Banking77: labels chosen by the review queue vs chosen at random.

Both arms start from the same recorded first round (a seed of labels per intent, trained
and promoted through ``finetune.run_round``), copied into two SQLite knowledge bases. Each
round then:

1. the serving ``TextClassifier`` (``from_registry``) answers a fresh slice of unseen
   "traffic" from the training split, recording every prediction with its probabilities;
2. a simulated reviewer labels ``budget`` of the still-unlabelled predictions from ground
   truth: the most uncertain first (``enqueue_uncertain`` + ``review_queue``, least
   confidence) or a seeded random sample;
3. ``run_round`` snapshots the feedback, trains a candidate from the serving encoder, and
   promotes it only when it beats the serving model on the frozen holdout by the gate's
   margin.

After each round the serving model is scored on the test split, which no round ever sees.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from finetune import Example, GateConfig, TrainConfig, evaluate, run_round
from knowledge import (
    Database,
    FeedbackIn,
    enqueue_uncertain,
    import_labels,
    mark_done,
    review_queue,
    serving_version,
    submit_feedback_many,
)

__all__ = ["AGENT", "ARMS", "run_loop"]

AGENT = "intent"
ARMS: tuple[Literal["uncertainty", "random"], ...] = ("uncertainty", "random")
REVIEWER = "simulated-reviewer"


def _label(database: Database, labels: dict[int, str]) -> None:
    """The reviewer's answers, from ground truth: one human label per prediction."""
    with database.transaction() as session:
        submit_feedback_many(
            session,
            [
                FeedbackIn.model_validate(
                    {"prediction_id": pid, "label": label, "source": "human", "author": REVIEWER}
                )
                for pid, label in labels.items()
            ],
        )


def _seed(database: Database, seed_rows: Sequence[Example]) -> None:
    """Labelled examples without a model yet, imported as the agent's feedback."""
    with database.transaction() as session:
        import_labels(session, AGENT, [(e.text, str(e.label)) for e in seed_rows], author=REVIEWER)


def _answer(database: Database, traffic: Sequence[Example]) -> dict[int, str]:
    """The serving model answers the traffic; returns its prediction ids -> true labels."""
    from agents import ClassifierInput, RunContext, TextClassifier  # noqa: PLC0415 - torch

    agent = TextClassifier.from_registry(database, AGENT, batch_size=64)
    agent.warm_up()
    stamp = time.time_ns()
    contexts = [
        RunContext(f"traffic-{stamp}-{i}", "perceive", knowledge=database)
        for i in range(len(traffic))
    ]
    outputs = agent.run_batch([ClassifierInput(text=e.text) for e in traffic], contexts)
    return {
        int(o.prediction_id): str(e.label)
        for o, e in zip(outputs, traffic, strict=True)
        if o.prediction_id is not None
    }


def _choose(
    database: Database, arm: str, pending: dict[int, str], budget: int, rng: random.Random
) -> dict[int, str]:
    """``budget`` of the unlabelled predictions (id -> true label), as the arm picks them.

    The queue ranks every unlabelled prediction, earlier rounds' leftovers included (scored
    by the model of their day), as it would in production; the random arm draws from the
    same set."""
    if arm == "random":
        chosen = rng.sample(sorted(pending), min(budget, len(pending)))
        return {pid: pending.pop(pid) for pid in chosen}
    with database.transaction() as session:
        enqueue_uncertain(session, AGENT, strategy="least_confidence")
        items = review_queue(session, AGENT, limit=budget, strategy="least_confidence")
        for item in items:
            mark_done(session, item.id)
    return {item.prediction_id: pending.pop(item.prediction_id) for item in items}


def _test_accuracy(database: Database, test: Sequence[Example]) -> tuple[str, float]:
    with database.session() as session:
        version = serving_version(session, AGENT)
    assert version is not None  # the seed round promoted a first model
    report = evaluate(version.artifact_path, [e.text for e in test], [e.label for e in test])
    return version.version, report.accuracy


def _round_row(
    database: Database, result: Any, test: Sequence[Example], seconds: float
) -> dict[str, Any]:
    """What a round did: the gate's verdict on the holdout, the serving model on test."""
    decision = result.decision
    version, accuracy = _test_accuracy(database, test)
    metric = "" if decision is None else decision.config.metric
    return {
        "job": result.job.id,
        "status": result.job.status,
        "promoted": result.job.status == "succeeded",
        "gate_metric": metric,
        "candidate_holdout": None if decision is None else decision.candidate.get(metric),
        "serving_holdout": (
            None if decision is None or decision.serving is None else decision.serving.get(metric)
        ),
        "serving_version": version,
        "test_accuracy": accuracy,
        "seconds": seconds,
    }


def run_loop(
    *,
    seed_rows: Sequence[Example],
    traffic: Sequence[Sequence[Example]],
    test: Sequence[Example],
    budget: int,
    config: TrainConfig,
    seed_config: TrainConfig,
    out: Path,
) -> dict[str, Any]:
    """The seed round, then ``len(traffic)`` rounds per arm; one row per round and arm."""
    seed_db = out / "seed.db"
    with Database(f"sqlite:///{seed_db}") as database:
        _seed(database, seed_rows)
        started = time.perf_counter()
        first = run_round(database, AGENT, config=seed_config, gate_config=GateConfig())
        if first.job.status != "succeeded":
            raise RuntimeError(f"The seed round did not promote a model: {first.job.error}")
        seed_row = _round_row(database, first, test, time.perf_counter() - started)
    arms: dict[str, list[dict[str, Any]]] = {}
    for arm in ARMS:
        path = out / f"{arm}.db"
        shutil.copyfile(seed_db, path)
        rng, pending = random.Random(0), {}
        rows = arms.setdefault(arm, [])
        with Database(f"sqlite:///{path}") as database:
            for number, slice_ in enumerate(traffic, start=1):
                started = time.perf_counter()
                pending.update(_answer(database, slice_))
                chosen = _choose(database, arm, pending, budget, rng)
                _label(database, chosen)
                round_config = dataclasses.replace(config, out_dir=str(out / arm / f"r{number}"))
                result = run_round(database, AGENT, config=round_config)
                row = _round_row(database, result, test, time.perf_counter() - started)
                rows.append({"round": number, "labels": len(chosen), **row})
    return {"seed": seed_row, "arms": arms, "budget": budget}
