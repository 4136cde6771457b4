"""The monitor's routes on taskloom's service (the runner's ``--serve`` adds them).

Importing this module needs the ``service`` extra (FastAPI); import it only to serve.

``market_router(database)`` adds, next to the built-in routes (same keys, error format and
metrics):

- ``GET /api/market/alerts?since=&until=&limit=`` (viewer): alerts published in
  ``[since, until)`` (epoch seconds), oldest first, with delivery state and verdict;
- ``POST /api/market/alerts/{alert_id}/verdict`` (labeler) ``{"verdict": "useful"}``: the
  analyst's verdict, authored by the key's name; ``201`` with the feedback recorded (it is
  a new resource, as ``POST /api/feedback`` answers), ``404`` for an unknown alert, ``409``
  when this key has marked the alert already or the alert has no decision to learn from;
- ``GET /api/market/digest?since=&until=`` (viewer): the period's Markdown digest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from knowledge import ApiKey, Database, DuplicateFeedbackError
from market_monitor.outcomes import (
    VERDICTS,
    AlertNotFoundError,
    AlertView,
    list_alerts,
    mark_alert,
)
from workflow import require_role

__all__ = ["AlertsOut", "VerdictIn", "VerdictOut", "market_router"]

MAX_LIMIT = 1000
# Module level: FastAPI resolves the routes' (string) annotations in this module's globals.
Viewer = Annotated[ApiKey, Depends(require_role("viewer"))]
Labeler = Annotated[ApiKey, Depends(require_role("labeler"))]


class AlertsOut(BaseModel):
    """Alerts, oldest first."""

    alerts: list[AlertView]


class VerdictIn(BaseModel):
    """An analyst's verdict on an alert."""

    verdict: Literal["useful", "noise"]


class VerdictOut(BaseModel):
    """The verdict recorded: outcome feedback labelling the alert's decision."""

    alert_id: int
    verdict: str
    label: str
    author: str
    feedback_id: int
    prediction_id: int


def market_router(database: Database) -> APIRouter:
    """The monitor's routes over ``database`` (pass it to ``create_app(routers=[...])``)."""
    router = APIRouter(prefix="/api/market", tags=["market monitor"])

    @router.get("/alerts", response_model=AlertsOut)
    def alerts(
        key: Viewer,
        since: float | None = None,
        until: float | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> AlertsOut:
        """Alerts published in ``[since, until)``, oldest first."""
        return AlertsOut(alerts=list_alerts(database, since=since, until=until, limit=limit))

    @router.post("/alerts/{alert_id}/verdict", response_model=VerdictOut, status_code=201)
    def verdict(alert_id: int, body: VerdictIn, key: Labeler) -> VerdictOut:
        """Record the key's verdict on an alert (once per key and alert)."""
        try:
            feedback = mark_alert(database, alert_id, body.verdict, author=key.name)
        except AlertNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except DuplicateFeedbackError as exc:
            raise HTTPException(
                409, f"Key '{key.name}' has marked alert {alert_id} already; one verdict each."
            ) from exc
        except ValueError as exc:  # no decision prediction to attach the verdict to
            raise HTTPException(409, str(exc)) from exc
        return VerdictOut(
            alert_id=alert_id,
            verdict=body.verdict,
            label=VERDICTS[body.verdict],
            author=feedback.author,
            feedback_id=feedback.id,
            prediction_id=feedback.prediction_id,
        )

    @router.get("/digest", response_class=PlainTextResponse)
    def digest(key: Viewer, since: float, until: float) -> PlainTextResponse:
        """The Markdown digest of ``[since, until)``."""
        from market_monitor.digest import write_digest  # noqa: PLC0415 - written separately

        try:
            markdown = write_digest(database, since, until)
        except ValueError as exc:  # an empty period
            raise HTTPException(422, str(exc)) from exc
        return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")

    return router
