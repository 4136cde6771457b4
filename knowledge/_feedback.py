"""Feedback on predictions: validated in full before anything is written.

A submission is checked against the store first: the prediction must exist, a label must be
in that prediction's label set, and (prediction, source, author) must be new. Only when every
item passes is anything inserted, in one savepoint, with one audit entry per feedback row; a
rejected submission raises a ``FeedbackError`` subclass and leaves the database as it was.

A batch costs two queries to validate (its predictions, and the feedback they already have)
and one INSERT ... RETURNING for the rows plus one for their audit entries, whatever its size.
Between the checks and the insert another process can commit a conflicting row (PostgreSQL
runs at READ COMMITTED; SQLite's BEGIN IMMEDIATE already serializes writers); the unique
constraint catches that, the savepoint undoes the insert, and the batch is validated again so
the caller gets the precise error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._audit import audit_rows
from knowledge._bulk import insert_ids
from knowledge._dto import Feedback, FeedbackIn, FeedbackSource, PredictionIn
from knowledge._errors import (
    DuplicateFeedbackError,
    FeedbackError,
    InvalidLabelError,
    UnknownPredictionError,
)
from knowledge._predictions import record_predictions
from knowledge._redact import redactor_for

__all__ = ["IMPORTED", "feedback_for", "import_labels", "submit_feedback", "submit_feedback_many"]

IMPORTED = "imported"  # the model version of predictions that only carry imported labels

# Ids per ``IN (...)`` query: SQLite allows 32,766 parameters per statement, and a batch of
# the recommended 1,000 items stays one query.
QUERY_CHUNK = 5000
# Problems listed in a rejected batch's message; all of them are on ``.problems``.
LISTED = 10

Key = tuple[int, str, str]  # prediction id, source, author


class _Target(NamedTuple):
    """What validation needs to know about a prediction."""

    agent: str
    labels: frozenset[str] | None
    label_list: list[str] | None


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), QUERY_CHUNK):
        yield ordered[start : start + QUERY_CHUNK]


def _targets(session: Session, ids: set[int]) -> dict[int, _Target]:
    """The agent and label set of every prediction in ``ids`` that exists."""
    found: dict[int, _Target] = {}
    # An agent's predictions share one label set: fetch it as text and parse each distinct
    # text once (parsing 1,000 copies of a 77-label list was a quarter of a batch's time).
    parsed: dict[str | None, tuple[frozenset[str], list[str]] | None] = {None: None}
    cols = (orm.Prediction.id, orm.Prediction.agent, cast(orm.Prediction.label_set, Text))
    for chunk in _chunks(ids):
        for id_, agent, text in session.execute(select(*cols).where(orm.Prediction.id.in_(chunk))):
            if text not in parsed:
                labels = json.loads(text)
                parsed[text] = None if labels is None else (frozenset(labels), labels)
            label_set = parsed[text]
            found[id_] = _Target(agent, *(label_set or (None, None)))
    return found


def _taken(session: Session, ids: set[int]) -> set[Key]:
    """The (prediction, source, author) keys that already have feedback."""
    taken: set[Key] = set()
    cols = (orm.Feedback.prediction_id, orm.Feedback.source, orm.Feedback.author)
    for chunk in _chunks(ids):
        query = select(*cols).where(orm.Feedback.prediction_id.in_(chunk))
        taken.update((p, s, a) for p, s, a in session.execute(query))
    return taken


def _problem(
    item: FeedbackIn, target: _Target | None, taken: set[Key], at: int | None
) -> FeedbackError | None:
    """What is wrong with one item, or None."""
    if target is None:
        return UnknownPredictionError(item.prediction_id, index=at)
    # A prediction recorded without a label set (an extractor, a generator) takes any label.
    if item.label is not None and target.labels is not None and item.label not in target.labels:
        return InvalidLabelError(
            item.prediction_id,
            agent=target.agent,
            label=item.label,
            valid_labels=list(target.label_list or ()),
            index=at,
        )
    if (item.prediction_id, item.source, item.author) in taken:
        return DuplicateFeedbackError(
            item.prediction_id, source=item.source, author=item.author, index=at
        )
    return None


def _validate(session: Session, items: Sequence[FeedbackIn], batch: bool) -> list[FeedbackError]:
    """Every problem of the submission, in item order (two queries)."""
    ids = {item.prediction_id for item in items}
    targets = _targets(session, ids)
    taken = _taken(session, ids)
    problems = []
    for index, item in enumerate(items):
        problem = _problem(item, targets.get(item.prediction_id), taken, index if batch else None)
        if problem is not None:
            problems.append(problem)
        # A later item with the same key duplicates this one, even within the batch.
        taken.add((item.prediction_id, item.source, item.author))
    return problems


def _rejection(problems: list[FeedbackError], total: int, batch: bool) -> FeedbackError:
    """The error to raise: the first problem, its message covering them all."""
    first = problems[0]
    first.problems = tuple(problems)
    if not batch:
        first.args = (f"Feedback rejected, nothing was stored. {first}",)
        return first
    listed = "\n".join(f"  {problem}" for problem in problems[:LISTED])
    more = f"\n  ... and {len(problems) - LISTED} more" if len(problems) > LISTED else ""
    first.args = (
        f"Feedback batch rejected, nothing was stored: {len(problems)} of {total} items are "
        f"invalid. Fix or drop them and submit the batch again.\n{listed}{more}",
    )
    return first


def _insert(session: Session, items: Sequence[FeedbackIn]) -> list[Feedback]:
    """Insert validated items and their audit entries; return the stored feedback."""
    redactor = redactor_for(session)
    now = time.time()
    rows: list[dict[str, Any]] = [
        {
            "prediction_id": item.prediction_id,
            "label": item.label,
            "correction": redactor.json(item.correction),
            "source": item.source,
            "author": item.author,
            "status": "new",
            "shown": redactor.json(item.shown),
            "created_at": now,
        }
        for item in items
    ]
    with session.begin_nested():
        ids = insert_ids(session, orm.Feedback, rows)
        audit_rows(
            session,
            [
                {
                    "at": now,
                    "actor": row["author"],
                    "action": "feedback.submit",
                    "entity": "feedback",
                    "entity_id": str(id_),
                    "details": {
                        "prediction_id": row["prediction_id"],
                        "source": row["source"],
                        "label": row["label"],
                    },
                }
                for row, id_ in zip(rows, ids, strict=True)
            ],
        )
    # Built without re-validation: every value was just validated by FeedbackIn.
    return [Feedback.model_construct(**row, id=id_) for row, id_ in zip(rows, ids, strict=True)]


def _submit(session: Session, items: Sequence[FeedbackIn], batch: bool) -> list[Feedback]:
    if not items:
        return []
    problems = _validate(session, items, batch)
    if problems:
        raise _rejection(problems, len(items), batch)
    try:
        return _insert(session, items)
    except IntegrityError as exc:
        # Another writer committed a duplicate or deleted a prediction after our checks.
        problems = _validate(session, items, batch)
        if problems:
            raise _rejection(problems, len(items), batch) from exc
        raise FeedbackError(
            f"Feedback rejected, nothing was stored: the database refused it ({exc.orig}). "
            "Submit it again; if this repeats, check the schema with `taskloom db upgrade`."
        ) from exc


def submit_feedback(session: Session, feedback: FeedbackIn) -> Feedback:
    """Validate and store one feedback, with an audit entry; the caller commits.

    Args:
        session: The session to write in.
        feedback: The feedback.

    Returns:
        The stored feedback (status ``new``).

    Raises:
        UnknownPredictionError: No prediction has ``feedback.prediction_id``.
        InvalidLabelError: The label is not in the prediction's label set.
        DuplicateFeedbackError: The prediction already has feedback from this source and
            author.
    """
    return _submit(session, [feedback], batch=False)[0]


def submit_feedback_many(session: Session, items: Iterable[FeedbackIn]) -> list[Feedback]:
    """Validate every item, then store them all (or, if any is invalid, none).

    Batches of about 1,000 items are the sweet spot: validation and insertion cost a fixed
    four statements per batch.

    Args:
        session: The session to write in.
        items: The feedback items.

    Returns:
        The stored feedback, in the order given.

    Raises:
        FeedbackError: The first invalid item's error (its subclass says which check
            failed); its message lists the first few problems and ``.problems`` holds all.
            Items repeating an earlier item's (prediction, source, author) are duplicates.
    """
    return _submit(session, list(items), batch=True)


def import_labels(
    session: Session,
    agent: str,
    examples: Sequence[tuple[str, str]],
    *,
    author: str,
    label_set: Sequence[str] | None = None,
    source: FeedbackSource = "human",
) -> list[Feedback]:
    """Record already-labelled texts as ``agent``'s labelled examples; the caller commits.

    This seeds an agent from an existing labelled file before it has a model: each text
    becomes a prediction of model version ``imported`` (no label or probabilities, so the
    review queue never offers it) whose label arrives as feedback, which
    ``finetune.build_dataset`` reads like any other.

    Args:
        session: The session to write in.
        agent: The agent the labels are for.
        examples: ``(text, label)`` pairs.
        author: Who labelled them (one feedback per prediction, source and author).
        label_set: Every label the agent may predict; default: the labels given.
        source: The feedback source (``human`` for reviewed labels).

    Returns:
        The stored feedback, in the order given.

    Raises:
        FeedbackError: A label outside ``label_set`` (nothing is stored).
    """
    names = sorted(label_set if label_set is not None else {label for _, label in examples})
    predictions = record_predictions(
        session,
        [
            PredictionIn(
                agent=agent,
                model_version=IMPORTED,
                input={"text": text},
                output={},
                label_set=names,
            )
            for text, _ in examples
        ],
    )
    return submit_feedback_many(
        session,
        [
            FeedbackIn(prediction_id=p.id, label=label, source=source, author=author)
            for p, (_, label) in zip(predictions, examples, strict=True)
        ],
    )


def feedback_for(session: Session, prediction_id: int) -> list[Feedback]:
    """Return the feedback on one prediction, oldest first.

    Args:
        session: A session.
        prediction_id: The prediction.

    Returns:
        Its feedback (empty when there is none, or no such prediction).
    """
    query = (
        select(orm.Feedback)
        .where(orm.Feedback.prediction_id == prediction_id)
        .order_by(orm.Feedback.id)
    )
    return [Feedback.model_validate(row) for row in session.scalars(query)]
