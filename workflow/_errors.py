"""The workflow branch of the exception tree (drawn in ``knowledge._errors``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from knowledge import TaskloomError

__all__ = [
    "CompileProblem",
    "LoopBoundError",
    "NoRouteError",
    "RuleError",
    "RunError",
    "StepFailedError",
    "StepTimeoutError",
    "TaskValidationError",
    "WorkflowCompileError",
    "WorkflowError",
    "WorkflowFileError",
]


class WorkflowError(TaskloomError):
    """A workflow definition, file or run went wrong."""


@dataclass(frozen=True)
class CompileProblem:
    """One problem found while compiling a workflow.

    Attributes:
        code: A stable identifier (``unknown-agent``, ``unreachable-step``, ...).
        message: What is wrong and how to fix it.
        step: The step concerned, if any.
    """

    code: str
    message: str
    step: str | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class WorkflowCompileError(WorkflowError, ValueError):
    """A workflow has problems; all of them are listed, one per line."""

    def __init__(self, workflow: str, problems: Iterable[CompileProblem]) -> None:
        self.workflow = workflow
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"Workflow '{workflow}' has {count} problem{'s' * (count != 1)}:\n{lines}")

    @property
    def codes(self) -> list[str]:
        """The problem codes, in the order found."""
        return [p.code for p in self.problems]


class WorkflowFileError(WorkflowError, ValueError):
    """A workflow file (YAML/JSON) is malformed, or a workflow cannot be saved as one.

    The message says where (``steps[2].retry: ...``).
    """


class RuleError(WorkflowError):
    """A decision rule or input mapping is malformed or cannot be evaluated."""


class TaskValidationError(WorkflowError, ValueError):
    """A task does not match the workflow's task type; nothing was run or recorded."""


class RunError(WorkflowError):
    """A run failed.

    Attributes:
        run_id: The run.
        step: The step where it failed, if any.
        agent: That step's agent, if any.
    """

    def __init__(
        self, message: str, *, run_id: str, step: str | None = None, agent: str | None = None
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step
        self.agent = agent


class StepFailedError(RunError):
    """An agent raised and the step's retries were exhausted."""


class StepTimeoutError(RunError, TimeoutError):
    """One attempt of a step took longer than the step's timeout."""


class NoRouteError(RunError):
    """No route out of a non-terminal step matched."""


class LoopBoundError(RunError):
    """Every matching route led to a step that reached its visit bound."""
