"""Analysts' verdicts on alerts: ``useful`` or ``noise``, which train the decision agent.

A verdict is outcome feedback on the decision's prediction (the ``alert_policy`` agent's
row for the tweet that raised the alert): ``useful`` labels it ``alert``, ``noise`` labels
it ``hold``. The next fine-tuning round of the alert policy trains on those labels, and the
promotion gate decides whether the result serves. The same function backs the CLI
(``python -m market_monitor mark``) and the service route (``market_monitor.service``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge import Database, Feedback, FeedbackIn, feedback_for, submit_feedback
from market_monitor.flow import DECISION_AGENT
from market_monitor.tables import Alert

__all__ = [
    "VERDICTS",
    "AlertNotFoundError",
    "AlertView",
    "list_alerts",
    "mark_alert",
    "verdict_of",
]

VERDICTS: dict[str, str] = {"useful": "alert", "noise": "hold"}  # verdict -> decision label
_LABELS = {label: verdict for verdict, label in VERDICTS.items()}


class AlertNotFoundError(LookupError):
    """No alert has the id given."""


class AlertView(BaseModel):
    """An alert as analysts see it: what was raised, delivery, and the verdict so far (the
    CLI's table rows and the service's answers)."""

    model_config = ConfigDict(frozen=True)

    id: int
    entity: str
    direction: str
    published_at: float
    decided_by: str
    mentions: int
    surge: float
    summary: str
    status: str
    verdict: str | None


def verdict_of(session: Session, prediction_id: int | None) -> str | None:
    """The newest analyst verdict on a decision, if any."""
    if prediction_id is None:
        return None
    outcomes = [f for f in feedback_for(session, prediction_id) if f.source == "outcome"]
    return _LABELS.get(outcomes[-1].label or "") if outcomes else None


def _view(session: Session, alert: Alert) -> AlertView:
    stored = {name: getattr(alert, name) for name in AlertView.model_fields if name != "verdict"}
    return AlertView(**stored, verdict=verdict_of(session, alert.prediction_id))


def list_alerts(
    database: Database,
    *,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[AlertView]:
    """Alerts published in ``[since, until)`` (event time), oldest first."""
    query = select(Alert).order_by(Alert.published_at, Alert.id).limit(limit)
    if since is not None:
        query = query.where(Alert.published_at >= since)
    if until is not None:
        query = query.where(Alert.published_at < until)
    with database.session(read_only=True) as session:
        return [_view(session, alert) for alert in session.scalars(query)]


def mark_alert(database: Database, alert_id: int, verdict: str, *, author: str) -> Feedback:
    """Record an analyst's verdict on an alert as outcome feedback on its decision.

    Raises:
        ValueError: ``verdict`` is not ``useful`` or ``noise``, or the alert has no decision
            prediction to attach it to.
        AlertNotFoundError: No alert ``alert_id``.
        knowledge.FeedbackError: ``author`` has marked this alert already.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"Unknown verdict '{verdict}': use one of {', '.join(VERDICTS)}.")
    with database.transaction() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise AlertNotFoundError(f"No alert {alert_id}.")
        if alert.prediction_id is None:
            raise ValueError(
                f"Alert {alert_id} has no recorded {DECISION_AGENT} decision to learn from."
            )
        return submit_feedback(
            session,
            FeedbackIn(
                prediction_id=alert.prediction_id,
                label=VERDICTS[verdict],
                source="outcome",
                author=author,
                shown={"alert_id": alert.id, "summary": alert.summary},
            ),
        )
