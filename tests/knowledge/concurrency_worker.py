"""One writer of test_concurrency.py, run in a spawned process with its own ``Database``.

The worker says it is ready, waits for the start signal (so all of them write at once), then
for ``seconds`` commits transactions as fast as it can, each holding a batch of predictions,
a batch of human feedback on them, and one observed-outcome feedback on a prediction another
worker made (so feedback validation reads rows other processes are writing). It counts only
what was committed and reports the counts, or its traceback, through the queue.
"""

from __future__ import annotations

import random
import time
import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from sqlalchemy import func, select

from knowledge import (
    Database,
    FeedbackIn,
    PredictionIn,
    record_predictions,
    submit_feedback,
    submit_feedback_many,
)
from knowledge import _models as orm

LABELS = ["balance", "card_lost", "refund"]
BATCH = 5  # predictions per transaction


def _predictions(worker: int, n: int) -> list[PredictionIn]:
    return [
        PredictionIn(
            agent=f"worker{worker}",
            model_version="v1",
            input={"text": f"query {n + i} from worker {worker}"},
            output={"label": "refund"},
            label="refund",
            confidence=0.5,
            probabilities=[0.2, 0.3, 0.5],
            label_set=LABELS,
        )
        for i in range(BATCH)
    ]


def _transaction(database: Database, worker: int, n: int, rng: random.Random) -> tuple[int, int]:
    """One transaction; returns (predictions, feedback) written."""
    with database.transaction() as session:
        made = record_predictions(session, _predictions(worker, n))
        author = f"reviewer{worker}"
        items = [
            FeedbackIn(prediction_id=p.id, label=rng.choice(LABELS), source="human", author=author)
            for p in made
        ]
        submit_feedback_many(session, items)
        # An outcome on someone else's latest prediction, unless this worker already gave one.
        other = session.scalar(
            select(func.max(orm.Prediction.id)).where(orm.Prediction.agent != f"worker{worker}")
        )
        taken = session.scalar(
            select(orm.Feedback.id).where(
                orm.Feedback.prediction_id == other,
                orm.Feedback.source == "outcome",
                orm.Feedback.author == author,
            )
        )
        if other is None or taken is not None:
            return len(made), len(items)
        submit_feedback(
            session,
            FeedbackIn(prediction_id=other, label="balance", source="outcome", author=author),
        )
        return len(made), len(items) + 1


def work(url: str, worker: int, seconds: float, queue: Queue[Any], start: Event) -> None:
    """Write until ``seconds`` after the start signal; report counts or the traceback."""
    try:
        database = Database(url)
        counts: dict[str, float] = {"predictions": 0, "feedback": 0, "transactions": 0}
        slowest = 0.0
        rng = random.Random(worker)
        queue.put(("ready", worker, None))
        if not start.wait(timeout=300):
            raise TimeoutError("no start signal within 300 s")
        deadline = time.monotonic() + seconds
        while (began := time.monotonic()) < deadline:
            predictions, feedback = _transaction(database, worker, int(counts["predictions"]), rng)
            slowest = max(slowest, time.monotonic() - began)
            # Counted after the commit: only what is in the database.
            counts["predictions"] += predictions
            counts["feedback"] += feedback
            counts["transactions"] += 1
        database.dispose()
        queue.put(("done", worker, {**counts, "slowest_s": slowest}))
    except BaseException:  # every failure goes to the test, with its traceback
        queue.put(("error", worker, traceback.format_exc()))
