"""Assembles the FastAPI app: routers, middleware, error handlers, the dashboard.

Middleware, outermost first: metrics (so refused requests are counted too), security
headers, CORS (only when origins are configured), the body-size limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowledge import ApiKey, Database
from workflow._compiled import CompiledWorkflow
from workflow._errors import WorkflowError
from workflow._executor import Executor
from workflow._serve import ServiceConfig
from workflow._service._auth import require
from workflow._service._errors import install_error_handlers
from workflow._service._limits import BodyLimitMiddleware
from workflow._service._metrics import MetricsMiddleware
from workflow._service._routes_keys import keys_router
from workflow._service._routes_models import models_router
from workflow._service._routes_review import review_router
from workflow._service._routes_runs import runs_router, submit_router
from workflow._service._schemas import PROTECTED, ErrorOut, error_responses
from workflow._service._state import Service, service_of

__all__ = ["STATIC_DIR", "build_app"]

STATIC_DIR = Path(__file__).parent / "static"
# The dashboard loads nothing from elsewhere; mermaid styles its SVG inline.
_UI_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Health(BaseModel):
    """Whether the service and its database answer."""

    status: str
    database: str
    workflows: list[str]


def build_app(
    workflows: Sequence[CompiledWorkflow],
    database: Database,
    config: ServiceConfig,
    executor: Executor | None = None,
    *,
    routers: Sequence[Any] = (),
) -> FastAPI:
    """The service's app; see ``workflow.create_app``."""
    _check_routers(routers)
    service = Service(workflows, database, config, executor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.startup()
        try:
            yield
        finally:
            await service.shutdown()

    app = FastAPI(
        title="taskloom",
        version=_version(),
        description="Submit tasks to workflows, watch runs, label, manage models.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.taskloom = service
    install_error_handlers(app)
    app.include_router(submit_router(list(service.workflows.values())))
    for router in (runs_router, review_router, models_router, keys_router):
        app.include_router(router)
    _add_operations_routes(app)
    for router in routers:
        app.include_router(router)
    _document_errors(app)
    if config.dashboard:
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def _check_routers(routers: Sequence[Any]) -> None:
    """Refuse anything but an ``APIRouter`` before the app (and its service) is built."""
    wrong = [type(router).__name__ for router in routers if not isinstance(router, APIRouter)]
    if wrong:
        raise WorkflowError(
            f"create_app(routers=...) takes fastapi.APIRouter objects; got {', '.join(wrong)}. "
            "Put your routes on an APIRouter() and pass that."
        )


def _add_operations_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["operations"], responses={503: {}})
    def health(request: Request) -> Response | Health:
        """Liveness and database reachability; needs no key and shows no data."""
        service = service_of(request)
        names = sorted(service.workflows)
        try:
            with service.database.session(read_only=True) as session:
                session.execute(text("SELECT 1"))
        except Exception:  # any failure means unavailable; the log has the details
            body = Health(status="unavailable", database="unreachable", workflows=names)
            return JSONResponse(body.model_dump(), status_code=503)
        return Health(status="ok", database="ok", workflows=names)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses=error_responses(*PROTECTED),
    )
    def metrics(request: Request, key: Annotated[ApiKey, Depends(require("viewer"))]) -> Response:
        """Prometheus metrics (scrape with a viewer key as a bearer token)."""
        return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")


def _document_errors(app: FastAPI) -> None:
    """Put ``ErrorOut`` in the spec's schemas: every error response refers to it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = build().setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorOut"] = ErrorOut.model_json_schema()
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


class SecurityHeadersMiddleware:
    """No sniffing, no referrer, no framing; a strict content policy on the dashboard."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ui = scope["path"].startswith("/ui")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if ui:
                    headers.append((b"content-security-policy", _UI_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _version() -> str:
    try:
        return version("taskloom")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"
