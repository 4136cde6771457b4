"""What the engine records about runs: plain data that crosses package boundaries.

Step and run records are slotted dataclasses rather than pydantic models: the engine builds
one per step on its hot path from values it has already validated, and re-validating them
would cost more than the rest of the step. They are not ``frozen`` for the same reason (a
frozen 13-field dataclass costs ~3 us more to build); treat them as read-only.
``StepFailure`` is pydantic because decision rules and input mappings read its fields with
type checking (``failure("step").message``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "RouteDecision",
    "RunRecord",
    "RunStatus",
    "StepFailure",
    "StepRecord",
    "StepStatus",
]


class RunStatus(str, enum.Enum):
    """Where a run is in its life."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(str, enum.Enum):
    """How one execution of a step ended."""

    OK = "ok"
    FAILED = "failed"


class StepFailure(BaseModel):
    """Why a step failed; stored in run state so error routes can read it."""

    model_config = ConfigDict(frozen=True)

    step: str
    agent: str
    error_type: str
    message: str
    attempts: int


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Which route fired after a step, and why.

    Attributes:
        kind: ``"rule"`` (a rule held), ``"default"`` (the default route), ``"error"`` (the
            step failed and its error route fired) or ``"end"`` (a terminal step).
        route: Index of the fired route among the step's routes, or None.
        targets: The steps the run moves to.
        rule: The fired rule as printed text, or None for default, error and end.
        reason: One line a person can read, including routes skipped for loop bounds.
    """

    kind: str
    route: int | None
    targets: tuple[str, ...]
    rule: str | None
    reason: str


@dataclass(slots=True)
class StepRecord:
    """One execution of one step: the checkpoint a run resumes from.

    ``input`` and ``output`` are the agent's pydantic models as the engine saw them; a store
    that serializes them gives back dicts, which the engine validates again on resume.
    """

    run_id: str
    seq: int
    step: str
    agent: str
    status: StepStatus
    visit: int
    attempts: int
    input: Any
    output: Any
    error: StepFailure | None
    started_at: float
    duration_s: float
    decision: RouteDecision


@dataclass(slots=True)
class RunRecord:
    """One run of a workflow on one task."""

    run_id: str
    workflow: str
    task: Any
    status: RunStatus
    created_at: float
    finished_at: float | None = None
    error: str | None = None
