"""What the service's endpoints return: pydantic models, so the OpenAPI spec describes them.

They are built from the knowledge base's records and DTOs; none is an ORM row.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue, model_validator

from knowledge import (
    ApiKey,
    ReviewItem,
    RunRecord,
    StepRecord,
)

__all__ = [
    "MAX_ID",
    "PROTECTED",
    "AgentModels",
    "DecisionOut",
    "ErrorOut",
    "FeedbackRequest",
    "Guess",
    "JobRequest",
    "JobStarted",
    "KeyCreated",
    "KeyRequest",
    "ModelDetail",
    "ModelVersionOut",
    "MoveOut",
    "PromoteRequest",
    "ReviewOut",
    "RollbackRequest",
    "RunAccepted",
    "RunDetail",
    "RunSummary",
    "StepOut",
    "error_responses",
    "guesses",
    "review_out",
    "run_detail",
    "run_summary",
    "step_out",
]

Text = Field(min_length=1, max_length=200)
# Ids are 64-bit signed integers in both databases; a larger one is invalid input (422).
MAX_ID = 2**63 - 1


class ErrorOut(BaseModel):
    """Every error the service returns."""

    error: str = Field(description="A stable code: unauthorized, forbidden, not_found, ...")
    message: str = Field(description="What failed and how to fix it.")
    problems: list[str] | None = Field(default=None, description="Each invalid field (422).")


_ERROR_TEXT = {
    400: "the body could not be parsed",
    401: "no key, or an unknown or revoked one",
    403: "the key's role is too low",
    404: "no such route, workflow, run, prediction, agent, version or key",
    409: "conflicts with the current state",
    413: "the body is over the size limit",
    422: "invalid request",
}
PROTECTED = (400, 401, 403, 404, 413, 422)  # what any key-protected route may answer


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses: ``ErrorOut`` as JSON.

    The media type is spelled out because FastAPI files extra responses under the route's
    own one, which for the event stream would be ``text/event-stream``.
    """
    return {
        status: {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
        }
        for status in statuses
    }


class RunSummary(BaseModel):
    """A run without its steps (the runs list)."""

    run_id: str
    workflow: str
    status: Literal["running", "succeeded", "failed"]
    created_at: float
    finished_at: float | None
    duration_s: float | None
    error: str | None


class DecisionOut(BaseModel):
    """The route that fired after a step, and why."""

    kind: str
    rule: str | None
    targets: list[str]
    reason: str


class StepOut(BaseModel):
    """One executed step: the timeline's bar."""

    seq: int
    step: str
    agent: str
    status: Literal["ok", "failed"]
    visit: int
    attempts: int
    started_at: float
    duration_ms: float
    input: Any
    output: Any
    error: str | None
    decision: DecisionOut


class RunDetail(RunSummary):
    """A run with its task and every step."""

    task: Any
    steps: list[StepOut]


class RunAccepted(BaseModel):
    """A run started in the background (``wait=false``)."""

    run_id: str
    status: Literal["running"] = "running"


class Guess(BaseModel):
    """One of the model's top labels for a prediction."""

    label: str
    probability: float


class ReviewOut(BaseModel):
    """A review-queue item as a labeller sees it."""

    id: int
    prediction_id: int
    priority: float
    created_at: float
    input: Any
    label: str | None
    confidence: float | None
    guesses: list[Guess]
    label_set: list[str] | None
    run_id: str | None
    step: str | None


class FeedbackRequest(BaseModel):
    """A label (or a correction) for one prediction; the author is the key's name."""

    prediction_id: int = Field(ge=1, le=MAX_ID)
    label: str | None = Field(default=None, min_length=1, max_length=200)
    correction: JsonValue = None

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackRequest:
        if self.label is None and self.correction is None:
            raise ValueError("give a label, a correction, or both")
        return self


class ModelVersionOut(BaseModel):
    """A registered model version with its metrics."""

    version: str
    status: str
    metrics: dict[str, Any]
    created_at: float
    dataset_id: int | None


class MoveOut(BaseModel):
    """One move of an alias (promotion or rollback)."""

    alias: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: float


class AgentModels(BaseModel):
    """An agent with registered models."""

    agent: str
    serving: str | None
    versions: int


class ModelDetail(BaseModel):
    """An agent's versions and the serving alias's history."""

    agent: str
    serving: str | None
    versions: list[ModelVersionOut]
    history: list[MoveOut]


class PromoteRequest(BaseModel):
    """Point ``serving`` at a version."""

    version: str = Text
    reason: str = Field(default="promoted from the service", min_length=1, max_length=1000)


class RollbackRequest(BaseModel):
    """Point ``serving`` back at the version it came from."""

    reason: str = Field(default="rolled back from the service", min_length=1, max_length=1000)


class JobRequest(BaseModel):
    """Settings of a fine-tuning round started from the service."""

    epochs: int | None = Field(default=None, ge=1, le=100)
    tier: Literal["head", "lora", "full"] | None = None


class JobStarted(BaseModel):
    """A ``taskloom finetune run`` process started by the service."""

    agent: str
    pid: int
    log: str


class KeyRequest(BaseModel):
    """A new API key."""

    name: str = Text
    role: Literal["viewer", "labeler", "operator", "admin"]


class KeyCreated(BaseModel):
    """A created key and its token, shown this once."""

    key: ApiKey
    secret: str


def run_summary(record: RunRecord) -> RunSummary:
    """The list view of a run record."""
    finished = record.finished_at
    return RunSummary(
        run_id=record.run_id,
        workflow=record.workflow,
        status=record.status.value,
        created_at=record.created_at,
        finished_at=finished,
        duration_s=None if finished is None else round(finished - record.created_at, 6),
        error=record.error,
    )


def _json(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def step_out(record: StepRecord) -> StepOut:
    """The timeline view of a step record."""
    decision = record.decision
    return StepOut(
        seq=record.seq,
        step=record.step,
        agent=record.agent,
        status=record.status.value,
        visit=record.visit,
        attempts=record.attempts,
        started_at=record.started_at,
        duration_ms=round(record.duration_s * 1000, 3),
        input=_json(record.input),
        output=_json(record.output),
        error=None if record.error is None else record.error.message,
        decision=DecisionOut(
            kind=decision.kind,
            rule=decision.rule,
            targets=list(decision.targets),
            reason=decision.reason,
        ),
    )


def run_detail(record: RunRecord, steps: list[StepRecord]) -> RunDetail:
    """A run record with its steps."""
    return RunDetail(
        **run_summary(record).model_dump(),
        task=_json(record.task),
        steps=[step_out(s) for s in steps],
    )


def guesses(item: ReviewItem, top: int = 3) -> list[Guess]:
    """The prediction's ``top`` labels by probability, best first."""
    prediction = item.prediction
    if not prediction.probabilities or not prediction.label_set:
        return []
    pairs = sorted(
        zip(prediction.label_set, prediction.probabilities, strict=False),
        key=lambda pair: -pair[1],
    )
    return [Guess(label=label, probability=p) for label, p in pairs[:top]]


def review_out(item: ReviewItem) -> ReviewOut:
    """The labeller's view of a review item."""
    prediction = item.prediction
    return ReviewOut(
        id=item.id,
        prediction_id=item.prediction_id,
        priority=item.priority,
        created_at=item.created_at,
        input=prediction.input,
        label=prediction.label,
        confidence=prediction.confidence,
        guesses=guesses(item),
        label_set=prediction.label_set,
        run_id=prediction.run_id,
        step=prediction.step,
    )
