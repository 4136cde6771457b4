"""Workflows and runs: submit a task, list and read runs, stream a run's events, the graph.

Each served workflow gets its own submit route whose body is the workflow's task model, so
the OpenAPI spec shows every workflow's task shape and bad tasks are refused (422) before a
run is recorded.
"""

# No ``from __future__ import annotations``: FastAPI reads the submit route's body type, a
# local variable per workflow, from the live annotation.

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from knowledge import ApiKey, RunStatus
from workflow._compiled import CompiledWorkflow
from workflow._service._auth import require
from workflow._service._schemas import (
    PROTECTED,
    RunAccepted,
    RunDetail,
    RunSummary,
    error_responses,
    run_detail,
    run_summary,
    step_out,
)
from workflow._service._state import service_of

__all__ = ["runs_router", "submit_router"]

runs_router = APIRouter(tags=["runs"], responses=error_responses(*PROTECTED))
Viewer = Annotated[ApiKey, Depends(require("viewer"))]
Operator = Annotated[ApiKey, Depends(require("operator"))]


class WorkflowOut(BaseModel):
    """A served workflow."""

    name: str
    description: str
    entry: str
    steps: list[str]
    task_schema: dict[str, Any]


class WorkflowsOut(BaseModel):
    """The served workflows."""

    workflows: list[WorkflowOut]


class GraphOut(BaseModel):
    """A workflow's graph as Mermaid text."""

    workflow: str
    mermaid: str


class RunsOut(BaseModel):
    """A page of runs, newest first; pass ``next_before`` as ``before`` for the next page."""

    runs: list[RunSummary]
    next_before: float | None


@runs_router.get("/api/workflows", response_model=WorkflowsOut)
def list_workflows(request: Request, key: Viewer) -> WorkflowsOut:
    """The workflows this service runs."""
    return WorkflowsOut(
        workflows=[
            WorkflowOut(
                name=wf.name,
                description=wf.description,
                entry=wf.entry,
                steps=list(wf.steps),
                task_schema=wf.task_type.model_json_schema(),
            )
            for wf in service_of(request).workflows.values()
        ]
    )


@runs_router.get("/api/workflows/{name}/graph", response_model=GraphOut)
def workflow_graph(name: str, request: Request, key: Viewer) -> GraphOut:
    """The workflow's graph as Mermaid text (routes labelled with their rules)."""
    return GraphOut(workflow=name, mermaid=service_of(request).workflow(name).to_mermaid())


@runs_router.get("/api/runs", response_model=RunsOut)
def list_runs(
    request: Request,
    key: Viewer,
    workflow: str | None = Query(default=None, max_length=200),
    status: Literal["running", "succeeded", "failed"] | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    before: float | None = Query(default=None, description="created_at of the last run seen"),
) -> RunsOut:
    """Runs, newest first, optionally of one workflow or status."""
    records = service_of(request).store.list_runs(
        workflow=workflow,
        status=None if status is None else RunStatus(status),
        limit=limit,
        before=before,
    )
    next_before = records[-1].created_at if len(records) == limit else None
    return RunsOut(runs=[run_summary(r) for r in records], next_before=next_before)


@runs_router.get("/api/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: str, request: Request, key: Viewer) -> RunDetail:
    """A run with its task and step trace: inputs, outputs, timings and fired rules."""
    store = service_of(request).store
    return run_detail(store.get_run(run_id), store.steps(run_id))


async def _known_run(run_id: str, request: Request) -> str:
    """404 before a stream starts, while the status can still say so."""
    await asyncio.to_thread(service_of(request).store.get_run, run_id)
    return run_id


@runs_router.get("/api/runs/{run_id}/events", response_class=EventSourceResponse)
async def run_events(
    request: Request, key: Viewer, run_id: Annotated[str, Depends(_known_run)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``step`` per step record (past ones first), then ``end``."""
    service = service_of(request)
    sent = 0
    with service.events.watch(run_id) as changed:
        while True:
            changed.clear()
            record = await asyncio.to_thread(service.store.get_run, run_id)
            steps = await asyncio.to_thread(service.store.steps, run_id)
            for step in steps[sent:]:
                yield ServerSentEvent(event="step", id=str(step.seq), data=step_out(step))
            sent = len(steps)
            if record.status is not RunStatus.RUNNING:
                yield ServerSentEvent(event="end", data=run_summary(record))
                return
            # Woken by this service's engine; the timeout catches runs driven elsewhere.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=1.0)


def submit_router(workflows: list[CompiledWorkflow]) -> APIRouter:
    """One ``POST /api/workflows/{name}/runs`` per workflow, its body that workflow's task."""
    router = APIRouter(tags=["runs"], responses=error_responses(*PROTECTED))
    for workflow in workflows:
        router.add_api_route(
            f"/api/workflows/{workflow.name}/runs",
            _submitter(workflow),
            methods=["POST"],
            status_code=200,
            response_model=RunDetail | RunAccepted,
            responses={202: {"model": RunAccepted, "description": "started (wait=false)"}},
            summary=f"Run a task through '{workflow.name}'",
            name=f"submit_{workflow.name}",
        )
    router.add_api_route(
        "/api/workflows/{name}/runs",
        _unknown,
        methods=["POST"],
        summary="Any other workflow name: 404 listing the served ones",
        responses={404: {"description": "not a served workflow"}},
    )
    return router


def _unknown(name: str, request: Request, key: Operator) -> None:
    service_of(request).workflow(name)  # raises the 404 with the valid names


def _submitter(workflow: CompiledWorkflow) -> Any:
    task_type = workflow.task_type

    async def submit(
        request: Request,
        response: Response,
        task: Annotated[task_type, Body()],  # type: ignore[valid-type]
        key: Operator,
        wait: bool = Query(default=True, description="wait for the run to end"),
    ) -> RunDetail | RunAccepted:
        service = service_of(request)
        run_id, walk = await service.start(workflow, task)
        if not wait:
            response.status_code = 202
            return RunAccepted(run_id=run_id)
        # Shielded: a client that hangs up does not cancel the run.
        await asyncio.shield(walk)
        store = service.store
        return await asyncio.to_thread(
            lambda: run_detail(store.get_run(run_id), store.steps(run_id))
        )

    submit.__doc__ = (
        f"Run a task through workflow '{workflow.name}'. With wait=true (the default) the "
        "answer is the finished run (its status may be failed); with wait=false it is 202 and "
        "the run id, and the run goes on in the background (watch its /events)."
    )
    return submit
