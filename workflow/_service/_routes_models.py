"""Model versions: list them with their metrics, promote, roll back, start fine-tuning.

Promotion and rollback move the ``serving`` alias (with the key's name as the actor in the
alias history and audit log); agents served from the registry pick the new version up on
their next refresh, as after a promotion by the feedback loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from knowledge import (
    ApiKey,
    FinetuneJob,
    ModelVersion,
    alias_history,
    list_jobs,
    model_agents,
    model_versions,
    rollback,
    serving_version,
    set_alias,
)
from workflow._service._auth import require
from workflow._service._errors import ApiError
from workflow._service._schemas import (
    PROTECTED,
    AgentModels,
    JobRequest,
    JobStarted,
    ModelDetail,
    ModelVersionOut,
    MoveOut,
    PromoteRequest,
    RollbackRequest,
    error_responses,
)
from workflow._service._state import service_of

__all__ = ["models_router"]

models_router = APIRouter(tags=["models"], responses=error_responses(*PROTECTED))
_SERVING = "serving"  # the alias agents serve from
Viewer = Annotated[ApiKey, Depends(require("viewer"))]
Operator = Annotated[ApiKey, Depends(require("operator"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]


class ModelsOut(BaseModel):
    """Agents with registered models."""

    agents: list[AgentModels]


class JobsOut(BaseModel):
    """An agent's fine-tuning jobs, newest first."""

    jobs: list[FinetuneJob]


@models_router.get("/api/models", response_model=ModelsOut)
def list_models(request: Request, key: Viewer) -> ModelsOut:
    """Every agent with registered models, and the version it serves."""
    with service_of(request).database.session(read_only=True) as session:
        agents = [
            AgentModels(agent=agent, serving=_serving(session, agent), versions=count)
            for agent, count in model_agents(session).items()
        ]
    return ModelsOut(agents=agents)


@models_router.get("/api/models/{agent}", response_model=ModelDetail)
def model_detail(agent: str, request: Request, key: Viewer) -> ModelDetail:
    """The agent's versions with their metrics, and the serving alias's history."""
    with service_of(request).database.session(read_only=True) as session:
        versions = _known_agent(session, agent)
        return ModelDetail(
            agent=agent,
            serving=_serving(session, agent),
            versions=[ModelVersionOut.model_validate(v, from_attributes=True) for v in versions],
            history=[
                MoveOut.model_validate(m, from_attributes=True)
                for m in alias_history(session, agent, _SERVING)
            ],
        )


@models_router.post("/api/models/{agent}/promote", response_model=MoveOut)
def promote(agent: str, body: PromoteRequest, request: Request, key: Admin) -> MoveOut:
    """Serve ``version`` (any registered version: this is the operator's override)."""
    service = service_of(request)
    with service.database.transaction() as session:
        move = set_alias(session, agent, _SERVING, body.version, key.name, body.reason)
    service.models.refresh(agent)  # the served workflows use it from the next call on
    return MoveOut.model_validate(move, from_attributes=True)


@models_router.post(
    "/api/models/{agent}/rollback", response_model=MoveOut, responses=error_responses(409)
)
def roll_back(agent: str, body: RollbackRequest, request: Request, key: Admin) -> MoveOut:
    """Serve the version served before the last move again."""
    service = service_of(request)
    with service.database.transaction() as session:
        _known_agent(session, agent)
        move = rollback(session, agent, _SERVING, key.name, body.reason)
    service.models.refresh(agent)
    return MoveOut.model_validate(move, from_attributes=True)


@models_router.get("/api/models/{agent}/jobs", response_model=JobsOut)
def jobs(agent: str, request: Request, key: Viewer) -> JobsOut:
    """The agent's fine-tuning jobs, newest first."""
    with service_of(request).database.session(read_only=True) as session:
        return JobsOut(jobs=list_jobs(session, agent))


@models_router.post(
    "/api/models/{agent}/jobs",
    response_model=JobStarted,
    status_code=202,
    responses=error_responses(409),
)
def start_job(agent: str, body: JobRequest, request: Request, key: Operator) -> JobStarted:
    """Start a fine-tuning round in its own process; it records itself as a job."""
    service = service_of(request)
    with service.database.session(read_only=True) as session:
        agents = model_agents(session)
        if agent not in agents and not list_jobs(session, agent, limit=1):
            raise ApiError(
                404,
                f"Unknown agent '{agent}': no model versions or jobs. Agents: {_names(agents)}.",
            )
    pid, log = service.jobs.start(agent, epochs=body.epochs, tier=body.tier)
    return JobStarted(agent=agent, pid=pid, log=log)


def _known_agent(session: Session, agent: str) -> list[ModelVersion]:
    """The agent's versions; 404 naming the agents that have some when it has none."""
    versions = model_versions(session, agent)
    if not versions:
        raise ApiError(
            404,
            f"Agent '{agent}' has no registered model versions. "
            f"Agents: {_names(model_agents(session))}.",
        )
    return versions


def _names(agents: dict[str, int]) -> str:
    return ", ".join(agents) or "(none yet)"


def _serving(session: Session, agent: str) -> str | None:
    version = serving_version(session, agent)
    return None if version is None else version.version
