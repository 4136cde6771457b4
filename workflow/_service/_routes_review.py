"""The review queue and feedback: what labellers see and send.

A label is human feedback authored by the key's name, so each labeller's labels stay
separate (one feedback per prediction, source and author) and auditable.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from knowledge import (
    ApiKey,
    Feedback,
    FeedbackIn,
    feedback_for,
    get_prediction,
    mark_done,
    review_counts,
    review_queue,
    submit_feedback,
)
from workflow._service._auth import require
from workflow._service._schemas import (
    MAX_ID,
    PROTECTED,
    FeedbackRequest,
    ReviewOut,
    error_responses,
    review_out,
)
from workflow._service._state import service_of

__all__ = ["review_router"]

review_router = APIRouter(tags=["review"], responses=error_responses(*PROTECTED))
Viewer = Annotated[ApiKey, Depends(require("viewer"))]
Labeler = Annotated[ApiKey, Depends(require("labeler"))]
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


class AgentQueue(BaseModel):
    """How many items wait in an agent's queue."""

    agent: str
    open: int


class QueuesOut(BaseModel):
    """Every agent with open review items."""

    agents: list[AgentQueue]


class QueueOut(BaseModel):
    """One agent's open items, most uncertain first."""

    agent: str
    items: list[ReviewOut]


class FeedbackList(BaseModel):
    """A prediction's feedback, oldest first."""

    feedback: list[Feedback]


class Skipped(BaseModel):
    """A review item closed without a label."""

    id: int
    status: str


@review_router.get("/api/review", response_model=QueuesOut)
def queues(request: Request, key: Viewer) -> QueuesOut:
    """Agents with open review items and how many each has."""
    with service_of(request).database.session(read_only=True) as session:
        counts = review_counts(session)
    return QueuesOut(agents=[AgentQueue(agent=a, open=n) for a, n in sorted(counts.items())])


@review_router.get("/api/review/{agent}", response_model=QueueOut)
def queue(
    agent: str, request: Request, key: Viewer, limit: int = Query(default=20, ge=1, le=200)
) -> QueueOut:
    """The agent's open items, most uncertain first, with the model's top guesses."""
    with service_of(request).database.session(read_only=True) as session:
        items = review_queue(session, agent, limit=limit)
    return QueueOut(agent=agent, items=[review_out(item) for item in items])


@review_router.post("/api/review/items/{item_id}/skip", response_model=Skipped)
def skip(item_id: Id, request: Request, key: Labeler) -> Skipped:
    """Close an item the reviewer cannot label."""
    with service_of(request).database.transaction() as session:
        item = mark_done(session, item_id, status="skipped")
    return Skipped(id=item.id, status=item.status)


@review_router.post(
    "/api/feedback",
    response_model=Feedback,
    status_code=201,
    responses=error_responses(409),
)
def give_feedback(body: FeedbackRequest, request: Request, key: Labeler) -> Feedback:
    """Label a prediction (or correct its output); it leaves the review queue."""
    with service_of(request).database.transaction() as session:
        return submit_feedback(
            session,
            FeedbackIn(
                prediction_id=body.prediction_id,
                label=body.label,
                correction=body.correction,
                source="human",
                author=key.name,
            ),
        )


@review_router.get("/api/predictions/{prediction_id}/feedback", response_model=FeedbackList)
def prediction_feedback(prediction_id: Id, request: Request, key: Viewer) -> FeedbackList:
    """The feedback a prediction has received."""
    with service_of(request).database.session(read_only=True) as session:
        get_prediction(session, prediction_id)  # 404 for an unknown prediction
        return FeedbackList(feedback=feedback_for(session, prediction_id))
