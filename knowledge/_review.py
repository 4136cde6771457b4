"""The review queue: the predictions a person should label first (uncertainty sampling).

Uncertainty is computed from each prediction's stored probability vector ``p`` (K labels,
sorted so that ``p1 >= p2 >= ...``), with every measure scaled to [0, 1] so one threshold
means the same under each:

- ``least_confidence``: ``1 - p1``, how far the top label is from certain;
- ``margin``: ``1 - (p1 - p2)``, how close the runner-up is (``1 - p1`` when K is 1);
- ``entropy``: ``-sum(p log p) / log K``, how spread out the whole vector is (0 when K is 1).

A multi-label prediction (``multi_label``: one independent sigmoid per label) is a set of
yes/no decisions, so each label's ``(p, 1 - p)`` pair is measured as above and the most
uncertain label decides: the prediction is as uncertain as its closest call.

Higher is more uncertain and is reviewed first; ties go to the older prediction.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal, cast, get_args

from sqlalchemy import Table, exists, func, insert, select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._dto import Prediction, ReviewItem, Strategy
from knowledge._errors import ReviewItemNotFoundError

__all__ = [
    "enqueue_uncertain",
    "labelling_budget",
    "mark_done",
    "review_counts",
    "review_queue",
    "uncertainty",
]

STRATEGIES: tuple[str, ...] = get_args(Strategy)
SCAN_BATCH = 1000  # predictions fetched per round trip when scanning for uncertain ones


def uncertainty(
    probabilities: Sequence[float],
    strategy: Strategy = "least_confidence",
    *,
    multi_label: bool = False,
) -> float:
    """How uncertain a probability vector is, in [0, 1] (see the module docstring).

    Args:
        probabilities: One probability per label, summing to 1 unless ``multi_label``.
        strategy: ``least_confidence``, ``margin`` or ``entropy``.
        multi_label: The values are independent per-label probabilities.

    Returns:
        The uncertainty; higher means label it sooner.

    Raises:
        ValueError: An unknown strategy or an empty vector.
    """
    if not probabilities:
        raise ValueError("uncertainty needs a probability vector with at least one value.")
    if multi_label:
        _check_strategy(strategy)
        # Each label is a 2-label vector (p, 1 - p), measured on the same scale as above.
        return max(uncertainty([p, 1.0 - p], strategy) for p in probabilities)
    if strategy == "least_confidence":
        return 1.0 - max(probabilities)
    if strategy == "margin":
        first, *rest = heapq.nlargest(2, probabilities)
        return 1.0 - (first - rest[0]) if rest else 1.0 - first
    if strategy == "entropy":
        if len(probabilities) == 1:
            return 0.0
        spread = -math.fsum(p * math.log(p) for p in probabilities if p > 0.0)
        return min(1.0, spread / math.log(len(probabilities)))
    raise ValueError(f"Unknown strategy '{strategy}'. Strategies: {', '.join(STRATEGIES)}.")


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy '{strategy}'. Strategies: {', '.join(STRATEGIES)}.")


def _labelled(prediction_id: Any) -> Any:
    """SQL condition: the prediction already has feedback of any source."""
    return exists().where(orm.Feedback.prediction_id == prediction_id)


def _scan(session: Session, agent: str) -> Iterator[tuple[int, list[float] | None, bool]]:
    """Predictions of ``agent`` neither queued nor labelled yet, oldest first: id, vector
    and whether it is multi-label."""
    queued = exists().where(orm.ReviewItem.prediction_id == orm.Prediction.id)
    query = (
        select(orm.Prediction.id, orm.Prediction.probabilities, orm.Prediction.multi_label)
        .where(orm.Prediction.agent == agent, ~queued, ~_labelled(orm.Prediction.id))
        .order_by(orm.Prediction.id)
        .execution_options(yield_per=SCAN_BATCH)
    )
    yield from session.execute(query)


def enqueue_uncertain(
    session: Session,
    agent: str,
    *,
    strategy: Strategy = "least_confidence",
    threshold: float | None = None,
    limit: int | None = None,
) -> int:
    """Queue ``agent``'s most uncertain predictions for review; the caller commits.

    Predictions already queued, already labelled, or stored without a probability vector are
    skipped, so calling this again only adds what is new.

    Args:
        session: The session to write in.
        agent: The agent whose predictions to consider.
        strategy: The uncertainty measure (see the module docstring).
        threshold: Queue only predictions at least this uncertain (in [0, 1]).
        limit: Queue at most this many, the most uncertain first.

    Returns:
        How many predictions were queued.
    """
    _check_strategy(strategy)
    scored = (
        (uncertainty(probabilities, strategy, multi_label=multi_label), id_)
        for id_, probabilities, multi_label in _scan(session, agent)
        if probabilities
    )
    if threshold is not None:
        scored = (pair for pair in scored if pair[0] >= threshold)
    # Ties go to the older prediction (smaller id), as in the queue's order.
    chosen = (
        heapq.nsmallest(limit, scored, key=lambda pair: (-pair[0], pair[1]))
        if limit is not None
        else list(scored)
    )
    now = time.time()
    rows = [
        {
            "prediction_id": id_,
            "agent": agent,
            "priority": priority,
            "strategy": strategy,
            "status": "open",
            "created_at": now,
        }
        for priority, id_ in chosen
    ]
    if rows:
        session.execute(insert(cast(Table, orm.ReviewItem.__table__)), rows)
    return len(chosen)


def _item(item: orm.ReviewItem, prediction: orm.Prediction, **override: Any) -> ReviewItem:
    fields = {c.key: getattr(item, c.key) for c in orm.ReviewItem.__table__.columns}
    return ReviewItem.model_validate(
        {**fields, **override, "prediction": Prediction.model_validate(prediction)}
    )


def review_queue(
    session: Session,
    agent: str,
    *,
    limit: int = 50,
    strategy: Strategy | None = None,
) -> list[ReviewItem]:
    """Return the open review items of ``agent``, most uncertain first.

    Items whose prediction has received feedback in the meantime (from any source) are left
    out: they need no reviewer.

    Args:
        session: A session.
        agent: The agent.
        limit: At most this many items.
        strategy: Rank by this measure, computed from the probability vectors now; None
            ranks by the priority stored when each item was queued. The returned items'
            ``priority`` and ``strategy`` are the ones ranked by.

    Returns:
        The items, each with its prediction.
    """
    query = (
        select(orm.ReviewItem, orm.Prediction)
        .join(orm.Prediction, orm.Prediction.id == orm.ReviewItem.prediction_id)
        .where(
            orm.ReviewItem.agent == agent,
            orm.ReviewItem.status == "open",
            ~_labelled(orm.ReviewItem.prediction_id),
        )
    )
    if strategy is None:
        query = query.order_by(orm.ReviewItem.priority.desc(), orm.ReviewItem.prediction_id)
        return [_item(item, pred) for item, pred in session.execute(query.limit(limit))]
    _check_strategy(strategy)
    ranked = [
        (
            uncertainty(pred.probabilities or [1.0], strategy, multi_label=pred.multi_label),
            item,
            pred,
        )
        for item, pred in session.execute(query)
    ]
    best = heapq.nsmallest(limit, ranked, key=lambda r: (-r[0], r[1].prediction_id))
    return [_item(item, pred, priority=p, strategy=strategy) for p, item, pred in best]


def review_counts(session: Session) -> dict[str, int]:
    """Count the open review items of every agent that has some, by agent name.

    Counts what ``review_queue`` would return: open items whose prediction has no feedback.
    """
    query = (
        select(orm.ReviewItem.agent, func.count(orm.ReviewItem.id))
        .where(orm.ReviewItem.status == "open", ~_labelled(orm.ReviewItem.prediction_id))
        .group_by(orm.ReviewItem.agent)
        .order_by(orm.ReviewItem.agent)
    )
    return {agent: int(count) for agent, count in session.execute(query)}


def mark_done(
    session: Session, item_id: int, *, status: Literal["done", "skipped"] = "done"
) -> ReviewItem:
    """Close a review item; the caller commits.

    Args:
        session: The session to write in.
        item_id: The item's id.
        status: ``done`` (labelled) or ``skipped`` (the reviewer could not tell).

    Returns:
        The updated item.

    Raises:
        ReviewItemNotFoundError: No review item has that id.
        ValueError: Another status.
    """
    if status not in ("done", "skipped"):
        raise ValueError(f"Unknown review status '{status}'. Statuses: done, skipped.")
    item = session.get(orm.ReviewItem, item_id)
    if item is None:
        raise ReviewItemNotFoundError(item_id)
    item.status = status
    session.flush()
    prediction = session.get_one(orm.Prediction, item.prediction_id)
    return _item(item, prediction)


def labelling_budget(session: Session, agent: str, *, per_round: int, since: float) -> int:
    """How many more human labels this round may ask for: ``per_round`` minus those given.

    A round is the time since ``since`` (the last fine-tuning, say); pass the result as
    ``review_queue(..., limit=...)`` so reviewers are never asked for more than the budget.

    Args:
        session: A session.
        agent: The agent.
        per_round: Human labels allowed per round.
        since: When the round started (epoch seconds).

    Returns:
        The labels left this round, never below 0.
    """
    given = session.scalar(
        select(func.count())
        .select_from(orm.Feedback)
        .join(orm.Prediction, orm.Prediction.id == orm.Feedback.prediction_id)
        .where(
            orm.Prediction.agent == agent,
            orm.Feedback.source == "human",
            orm.Feedback.created_at >= since,
        )
    )
    return max(0, per_round - (given or 0))
