"""The simulated analyst, who knows the ground truth, and the scores of each day.

A real analyst reads the alerts and says which were useful; here the "analyst" knows the
bursts injected into the stream (``data.build_stream``) and judges exactly as the scores
do: an alert is **useful** when an event burst about its entity is under way (until half an
hour after its last tweet) and the alert's direction is the burst's; anything else is
**noise**. The analyst goes through the knowledge base as a person would:

- every alert of the day gets a verdict (``outcomes.mark_alert``: outcome feedback);
- the review queue's most uncertain decisions, within a budget, get the decision that was
  right (human feedback): this is how missed events teach the model, as no alert was
  raised for them;
- before the first policy model exists, a calibration day's candidate decisions (those the
  rules leave to the model) are labelled to train it (``calibration_labels``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents import policy_text
from knowledge import (
    Database,
    FeedbackIn,
    enqueue_uncertain,
    mark_done,
    review_queue,
    submit_feedback_many,
)
from market_monitor.data import DAY_S, START, Burst, Item, truth_for
from market_monitor.flow import DECISION_AGENT, AlertRules, decide_input
from market_monitor.history import HistoryOutput
from market_monitor.outcomes import AlertView, list_alerts, mark_alert
from market_monitor.training import ANALYST
from workflow import RunResult

__all__ = [
    "DayScore",
    "Ran",
    "Seen",
    "calibration_labels",
    "mark_day",
    "review_uncertain",
    "score_day",
    "seen_in",
]

WATCHLIST = "watchlist"  # the rule's name: its alerts are wanted by definition


@dataclass(frozen=True)
class Seen:
    """What a decision was about: the entity, when, and the direction its window showed."""

    entity: str
    at: float
    direction: str


def _wanted(bursts: Sequence[Burst], seen: Seen) -> bool:
    burst = truth_for(bursts, seen.entity, seen.at)
    return burst is not None and burst.direction == seen.direction


def _useful(bursts: Sequence[Burst], alert: AlertView) -> bool:
    return _wanted(bursts, Seen(alert.entity, alert.published_at, alert.direction))


Ran = tuple[Item, RunResult]  # a tweet of the stream and its run


def seen_in(runs: Sequence[Ran]) -> dict[str, Seen]:
    """Each run's decision subject, by run id (runs that reached the history step)."""
    seen = {}
    for item, result in runs:
        history = result.outputs.get("history")
        if isinstance(history, HistoryOutput):
            seen[result.run_id] = Seen(history.entity, item.published_at, history.direction)
    return seen


def _day_alerts(database: Database, day: int) -> list[AlertView]:
    since = START + day * DAY_S
    return list_alerts(database, since=since, until=since + DAY_S, limit=100_000)


def mark_day(database: Database, bursts: Sequence[Burst], day: int) -> tuple[int, int]:
    """Give every alert of ``day`` a verdict; return (useful, noise)."""
    useful = noise = 0
    for alert in _day_alerts(database, day):
        if alert.verdict is not None:
            continue
        good = _useful(bursts, alert)
        mark_alert(database, alert.id, "useful" if good else "noise", author=ANALYST)
        useful += good
        noise += not good
    return useful, noise


def review_uncertain(
    database: Database, seen: Mapping[str, Seen], bursts: Sequence[Burst], *, budget: int
) -> tuple[int, int]:
    """Label the most uncertain decisions within ``budget``; return (labelled, wanted alerts)."""
    with database.transaction() as session:
        enqueue_uncertain(session, DECISION_AGENT, strategy="margin")
        labels = []
        for item in review_queue(session, DECISION_AGENT, limit=budget):
            said = item.prediction
            subject = seen.get(said.run_id or "")
            if subject is None:
                mark_done(session, item.id, status="skipped")  # not a run of this stream
                continue
            right = "alert" if _wanted(bursts, subject) else "hold"
            labels.append(
                FeedbackIn(
                    prediction_id=said.id,
                    label=right,
                    source="human",
                    author=ANALYST,
                    shown={"label": said.label, "confidence": said.confidence},
                )
            )
            mark_done(session, item.id)
        submit_feedback_many(session, labels)
    return len(labels), sum(f.label == "alert" for f in labels)


@dataclass(frozen=True)
class DayScore:
    """How a day's alerts measure against the ground truth.

    Attributes:
        alerts: Alerts raised by the model and the rules, watchlist alerts left out.
        useful: Of those, how many an analyst wanted.
        watchlist: Alerts the watchlist rule raised (wanted by definition; not scored).
        events: Event bursts that day.
        caught: Events with at least one useful alert.
    """

    alerts: int
    useful: int
    watchlist: int
    events: int
    caught: int

    @property
    def precision(self) -> float:
        return self.useful / self.alerts if self.alerts else 0.0

    @property
    def recall(self) -> float:
        return self.caught / self.events if self.events else 0.0


def score_day(database: Database, bursts: Sequence[Burst], day: int) -> DayScore:
    """Precision and recall of ``day``'s alerts against the injected events."""
    alerts = _day_alerts(database, day)
    scored = [a for a in alerts if a.decided_by != WATCHLIST]
    useful = [a for a in scored if _useful(bursts, a)]
    since = START + day * DAY_S
    events = [b for b in bursts if b.kind == "event" and since <= b.start < since + DAY_S]
    caught = sum(
        any(truth_for(bursts, a.entity, a.published_at) == event for a in useful)
        for event in events
    )
    return DayScore(len(scored), len(useful), len(alerts) - len(scored), len(events), caught)


def calibration_labels(
    runs: Sequence[Ran],
    bursts: Sequence[Burst],
    rules: AlertRules,
    *,
    limit: int,
    seed: int,
) -> list[tuple[str, str]]:
    """The first policy labels: a calibration day's decisions the rules leave to the model.

    Each is the text the policy model reads (``policy_text`` of the decision's input)
    with the decision that was right. At most ``limit``, both decisions kept in proportion.
    """
    examples = []
    for item, result in runs:
        history = result.outputs.get("history")
        if not isinstance(history, HistoryOutput) or history.watchlist:
            continue
        if history.mentions < rules.min_mentions or history.surge < rules.min_surge:
            continue
        text = policy_text(**decide_input(history))
        seen = Seen(history.entity, item.published_at, history.direction)
        right = "alert" if _wanted(bursts, seen) else "hold"
        examples.append((text, right))
    rng = random.Random(seed)
    rng.shuffle(examples)
    return examples[:limit]
