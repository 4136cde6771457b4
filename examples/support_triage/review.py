"""The simulated review team, and what each batch of tickets shows.

A real team labels the intent classifier's most uncertain predictions first, within a
budget per round. Here the "reviewer" knows each ticket's true intent (Banking77's label)
and goes through the knowledge base's review queue exactly as a person would: queue the
uncertain predictions (``enqueue_uncertain``), take the budget's worth from the top
(``labelling_budget`` + ``review_queue``), submit a label for each and close the item
(``submit_feedback_many``, ``mark_done``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from knowledge import (
    Database,
    FeedbackIn,
    enqueue_uncertain,
    labelling_budget,
    mark_done,
    review_queue,
    submit_feedback_many,
)
from support_triage.training import INTENT_AGENT, REVIEWER
from workflow import RunResult

Strategy = Literal["least_confidence", "margin", "entropy"]

__all__ = ["BatchStats", "ReviewStats", "batch_stats", "review"]


@dataclass(frozen=True)
class ReviewStats:
    """One round of reviewing.

    Attributes:
        queued: Predictions newly queued for review.
        labelled: Labels given (at most the budget).
        corrected: Of those, how many the classifier had wrong.
    """

    queued: int
    labelled: int
    corrected: int


def review(
    database: Database,
    truth: Mapping[str, str],
    *,
    budget: int,
    since: float,
    strategy: Strategy = "margin",
) -> ReviewStats:
    """Label the most uncertain intent predictions from ground truth, within the budget.

    Args:
        database: The knowledge base.
        truth: The true intent of each run, by run id.
        budget: Labels allowed this round.
        since: When the round began (labels given since then count against the budget).
        strategy: How uncertainty is measured.
    """
    with database.transaction() as session:
        queued = enqueue_uncertain(session, INTENT_AGENT, strategy=strategy)
        left = labelling_budget(session, INTENT_AGENT, per_round=budget, since=since)
        items = review_queue(session, INTENT_AGENT, limit=left) if left else []
        labels, corrected = [], 0
        for item in items:
            said = item.prediction
            right = truth.get(said.run_id or "")
            if right is None or right not in (said.label_set or []):
                mark_done(session, item.id, status="skipped")  # not one of ours to judge
                continue
            labels.append(
                FeedbackIn(
                    prediction_id=said.id,
                    label=right,
                    source="human",
                    author=REVIEWER,
                    shown={"label": said.label, "confidence": said.confidence},
                )
            )
            corrected += said.label != right
            mark_done(session, item.id)
        submit_feedback_many(session, labels)
    return ReviewStats(queued, len(labels), corrected)


@dataclass(frozen=True)
class BatchStats:
    """What one batch of tickets shows.

    Attributes:
        tickets: Tickets run.
        failed: Runs that did not succeed.
        accuracy: Share whose intent was recognised.
        auto_resolved: Share answered automatically (an article reply).
        wrong_replies: Automatic replies sent for the wrong intent.
        clarifications: Clarifying questions asked.
        escalations: Tickets handed to a person.
        cards_frozen: Cards frozen by the card-at-risk rule.
    """

    tickets: int
    failed: int
    accuracy: float
    auto_resolved: float
    wrong_replies: int
    clarifications: int
    escalations: int
    cards_frozen: int


def batch_stats(results: Sequence[RunResult], intents: Sequence[str]) -> BatchStats:
    """Score a batch of runs against the tickets' true intents (in the same order)."""
    done = [(r, i) for r, i in zip(results, intents, strict=True) if r.status.value == "succeeded"]
    right = sum(r.outputs["intent"].label == i for r, i in done)  # type: ignore[attr-defined]
    decisions = [r.outputs["decide"].decision for r, _ in done]  # type: ignore[attr-defined]
    wrong = sum(
        r.outputs["intent"].label != i  # type: ignore[attr-defined]
        for r, i in done
        if "reply" in r.outputs
    )
    count = max(1, len(done))
    return BatchStats(
        tickets=len(results),
        failed=len(results) - len(done),
        accuracy=right / count,
        auto_resolved=decisions.count("reply") / count,
        wrong_replies=wrong,
        clarifications=decisions.count("clarify"),
        escalations=decisions.count("escalate"),
        cards_frozen=sum("freeze" in r.outputs for r, _ in done),
    )
