"""Feedback ingest throughput: rows per second through ``submit_feedback_many``, in batches.

Each row is realistic: a Banking77 query recorded as a prediction of a 77-way intent
classifier (its full label set and probability vector), then a human label carrying what the
reviewer was shown (the query, the suggested intent, the confidence). Timed, per batch: building
the ``FeedbackIn`` items from plain dicts (what a service receives), validating them against
the store, redacting the shown text, inserting the rows and their audit entries, committing
(one transaction per batch). Not timed: recording the predictions beforehand.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from knowledge import Database, FeedbackIn, PredictionIn, record_predictions, submit_feedback_many
from knowledge import _models as orm

__all__ = ["measure_feedback_ingest"]

DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "banking77"
TOP = 0.6  # the probability of the predicted intent; the rest is spread evenly
REVIEWERS = 7


def _banking77(rows: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The 77 intents, and ``rows`` (query, intent) pairs, cycling through the file."""
    labels: list[str] = json.loads((DATA / "categories.json").read_text())
    with (DATA / "train.csv").open(newline="") as handle:
        pairs = [(row["text"], row["category"]) for row in csv.DictReader(handle)]
    return labels, list(itertools.islice(itertools.cycle(pairs), rows))


def _predict(
    database: Database, labels: list[str], queries: list[tuple[str, str]], batch: int
) -> list[int]:
    """Record one prediction per query; return their ids."""
    rest = (1.0 - TOP) / (len(labels) - 1)
    ids: list[int] = []
    for start in range(0, len(queries), batch):
        items = [
            PredictionIn(
                agent="bench_intent",
                model_version="v1",
                input={"text": text},
                output={"intent": intent},
                label=intent,
                confidence=TOP,
                probabilities=[TOP if label == intent else rest for label in labels],
                label_set=labels,
            )
            for text, intent in queries[start : start + batch]
        ]
        with database.transaction() as session:
            ids.extend(p.id for p in record_predictions(session, items))
    return ids


def _feedback_count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(orm.Feedback)) or 0)


def measure_feedback_ingest(database: Database, rows: int, batch: int = 1000) -> float:
    """Ingest ``rows`` feedback rows in batches of ``batch``; return rows per second.

    Args:
        database: Where to ingest (its schema at head); predictions to attach to are recorded
            first, untimed.
        rows: How many feedback rows to ingest.
        batch: Rows per ``submit_feedback_many`` call and transaction.

    Returns:
        Feedback rows ingested per second of wall time.

    Raises:
        RuntimeError: The database does not hold the rows afterwards (nothing to report).
    """
    labels, queries = _banking77(rows)
    ids = _predict(database, labels, queries, batch)
    payloads: list[dict[str, Any]] = [
        {
            "prediction_id": id_,
            "label": intent,
            "source": "human",
            "author": f"reviewer{n % REVIEWERS}",
            "shown": {"text": text, "suggested": intent, "confidence": TOP},
        }
        for n, (id_, (text, intent)) in enumerate(zip(ids, queries, strict=True))
    ]
    before = _feedback_count(database)
    started = time.perf_counter()
    for start in range(0, rows, batch):
        items = [FeedbackIn.model_validate(p) for p in payloads[start : start + batch]]
        with database.transaction() as session:
            submit_feedback_many(session, items)
    elapsed = time.perf_counter() - started
    stored = _feedback_count(database) - before
    if stored != rows:
        raise RuntimeError(f"Feedback ingest stored {stored} rows, not {rows}.")
    return rows / elapsed
