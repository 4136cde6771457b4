"""The monitor's routes on taskloom's service, and ``serve`` for the runner's ``--serve``.

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

from knowledge import ApiKey, Database, DuplicateFeedbackError, create_api_key
from market_monitor.outcomes import (
    VERDICTS,
    AlertNotFoundError,
    AlertView,
    list_alerts,
    mark_alert,
)
from workflow import CompiledWorkflow, ServiceConfig, create_app, require_role

__all__ = ["AlertsOut", "VerdictIn", "VerdictOut", "market_router", "serve"]

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


def serve(database: Database, workflow: CompiledWorkflow, port: int) -> int:
    """Serve ``workflow`` and the monitor's routes over ``database`` on 127.0.0.1:``port``.

    Creates an admin and a labeler key and prints them once; runs until interrupted.

    Returns:
        The exit status: 0, or 2 without the ``service`` extra.
    """
    try:
        import uvicorn  # noqa: PLC0415 - the server, only when serving
    except ImportError:
        print("error: --serve needs the service extra: pip install -e '.[service]'")
        return 2
    with database.transaction() as session:
        tokens = {
            role: create_api_key(session, f"market-{role}", role, created_by="market_monitor")[1]
            for role in ("admin", "labeler")
        }
    print(f"\nDashboard: http://127.0.0.1:{port}/ui/  (Ctrl-C stops it)")
    print(f"Alerts:    http://127.0.0.1:{port}/api/market/alerts")
    for role, token in tokens.items():
        print(f"  {role:8} key: {token}")
    app = create_app(
        [workflow],
        database=database,
        config=ServiceConfig(resume_on_start=False),
        routers=[market_router(database)],
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return 0
