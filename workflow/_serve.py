"""``create_app``: the HTTP service as a FastAPI app (the ``service`` extra)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from knowledge import ApiKey, Database, Role
from workflow._compiled import CompiledWorkflow
from workflow._errors import WorkflowError
from workflow._executor import Executor

__all__ = ["ServiceConfig", "create_app", "require_role"]

# ``python -m workflow`` is the ``taskloom`` command, found even when the script is not on PATH.
_ROUND_COMMAND = (sys.executable, "-m", "workflow", "finetune", "run")


@dataclass(frozen=True)
class ServiceConfig:
    """How the service behaves.

    Attributes:
        max_body_bytes: Larger request bodies are refused with 413.
        cors_origins: Origins allowed to call the API from a browser (none: CORS off).
        resume_on_start: Resume the knowledge base's unfinished runs of the served
            workflows at start-up.
        shutdown_grace_s: How long shutdown waits for background runs before leaving them
            to be resumed by the next start.
        jobs_dir: Where fine-tuning rounds started from the service put their folders.
        finetune_command: The command that runs one round (tests replace it).
        dashboard: Serve the web dashboard at ``/ui/``.
        model_refresh_s: How often agents built with ``from_registry`` check whether their
            alias moved (a promotion by a fine-tuning round); 0 turns the check off.
            Promotions and rollbacks through the service refresh them at once.
    """

    max_body_bytes: int = 1 << 20
    cors_origins: tuple[str, ...] = ()
    resume_on_start: bool = True
    shutdown_grace_s: float = 30.0
    jobs_dir: str = "finetune-runs"
    finetune_command: tuple[str, ...] = _ROUND_COMMAND
    dashboard: bool = True
    model_refresh_s: float = 30.0


def create_app(
    workflows: Sequence[CompiledWorkflow],
    *,
    database: Database | None = None,
    config: ServiceConfig | None = None,
    executor: Executor | None = None,
    routers: Sequence[Any] = (),
) -> Any:
    """Build the service for ``workflows`` over the knowledge base ``database``.

    Serve it with any ASGI server (``uvicorn.run(app)``; ``taskloom serve`` does that).
    Every ``/api`` route needs an API key (``taskloom keys create``); see the README's
    service section for the endpoints and roles.

    An app adds its own routes with ``routers``: FastAPI ``APIRouter``s, included after the
    built-in routes. Their routes share the service's error format (taskloom errors and
    ``HTTPException`` become ``{"error", "message"}`` JSON), body limit and metrics; a route
    asks for a key with ``Depends(require_role(...))``. A router that needs the knowledge
    base closes over the ``Database`` it was built with (the one passed here).

    Args:
        workflows: The workflows tasks may be submitted to (unique names).
        database: Where runs, predictions, feedback, models and keys live (default:
            ``Database()``, the ``TASKLOOM_DATABASE_URL`` or the local SQLite file).
        config: Limits and behaviour (default ``ServiceConfig()``: 1 MiB bodies, no CORS,
            unfinished runs resumed at start).
        executor: How agents are invoked (default: ``LocalExecutor(offload_sync=True)``,
            so a slow sync agent never stalls other requests).
        routers: The app's own ``fastapi.APIRouter``s, served with the built-in routes.

    Returns:
        A FastAPI application.

    Raises:
        WorkflowError: The ``service`` extra is not installed, or a router is not an
            ``APIRouter``.
    """
    try:
        from workflow._service._app import build_app  # noqa: PLC0415 - optional extra, lazy
    except ImportError as exc:
        raise WorkflowError(
            f"The service needs the 'service' extra ({exc.name} is missing): "
            "pip install 'taskloom[service]'."
        ) from exc
    return build_app(
        workflows,
        database if database is not None else Database(),
        config if config is not None else ServiceConfig(),
        executor,
        routers=routers,
    )


def require_role(role: Role) -> Callable[..., ApiKey]:
    """A FastAPI dependency for an app's own routes: a key of ``role`` or a higher one.

    Use it as ``key: Annotated[ApiKey, Depends(require_role("labeler"))]``: a request
    without a valid key is answered 401, one whose key has a lower role 403 naming the role
    it needs, and the handler gets the caller's ``ApiKey``. Roles rise from ``viewer``
    through ``labeler`` and ``operator`` to ``admin``.

    Raises:
        WorkflowError: The ``service`` extra is not installed.
    """
    try:
        from workflow._service._auth import require  # noqa: PLC0415 - optional extra, lazy
    except ImportError as exc:
        raise WorkflowError(
            f"The service needs the 'service' extra ({exc.name} is missing): "
            "pip install 'taskloom[service]'."
        ) from exc
    return require(role)
