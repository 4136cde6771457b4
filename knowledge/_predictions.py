"""Predictions: what a model-backed agent saw and said, the row feedback attaches to."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._bulk import insert_ids
from knowledge._dto import Prediction, PredictionIn
from knowledge._errors import UnknownPredictionError
from knowledge._redact import Redactor, redactor_for

__all__ = ["get_prediction", "record_prediction", "record_predictions"]


def _row(prediction: PredictionIn, redactor: Redactor, now: float) -> dict[str, Any]:
    """The column values of one prediction, its input and output redacted."""
    return {
        "run_id": prediction.run_id,
        "step": prediction.step,
        "agent": prediction.agent,
        "model_version": prediction.model_version,
        "input": redactor.json(prediction.input),
        "output": redactor.json(prediction.output),
        "label": prediction.label,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
        "label_set": prediction.label_set,
        "multi_label": prediction.multi_label,
        "created_at": now,
    }


def existing_runs(session: Session, run_ids: Iterable[str]) -> set[str]:
    """The ids among ``run_ids`` that have a row in ``runs`` (recorded by ``SqlRunStore``).

    A prediction may only reference a stored run; callers whose runs live in another store
    (the in-memory one) record such predictions without a run id.
    """
    wanted = set(run_ids)
    if not wanted:
        return set()
    return set(session.scalars(select(orm.Run.id).where(orm.Run.id.in_(wanted))))


def record_predictions(session: Session, predictions: Sequence[PredictionIn]) -> list[Prediction]:
    """Record many predictions in one INSERT; the caller commits.

    Args:
        session: The session to write in.
        predictions: The predictions, validated by ``PredictionIn``.

    Returns:
        The stored predictions with their ids, in the order given.
    """
    if not predictions:
        return []
    redactor = redactor_for(session)
    now = time.time()
    rows = [_row(p, redactor, now) for p in predictions]
    ids = insert_ids(session, orm.Prediction, rows)
    return [
        Prediction.model_validate({**row, "id": id_}) for row, id_ in zip(rows, ids, strict=True)
    ]


def record_prediction(session: Session, prediction: PredictionIn) -> Prediction:
    """Record one prediction; the caller commits.

    Args:
        session: The session to write in.
        prediction: The prediction.

    Returns:
        The stored prediction with its id.
    """
    return record_predictions(session, [prediction])[0]


def get_prediction(session: Session, prediction_id: int) -> Prediction:
    """Return one prediction.

    Args:
        session: A session.
        prediction_id: The prediction's id.

    Returns:
        The prediction.

    Raises:
        UnknownPredictionError: No prediction has that id.
    """
    row = session.get(orm.Prediction, prediction_id)
    if row is None:
        raise UnknownPredictionError(prediction_id)
    return Prediction.model_validate(row)
