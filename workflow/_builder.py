"""The mutable workflow builder and the plain definitions it collects.

Build, then compile: ``Workflow`` records steps and routes and checks only what it can check
locally (names); ``compile()`` validates the whole graph and returns an immutable
``CompiledWorkflow`` or raises one ``WorkflowCompileError`` listing every problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agents import Agent, AgentRegistry
from workflow._errors import CompileProblem, WorkflowCompileError
from workflow._rules import Rule, as_rule
from workflow._state import RunState

if TYPE_CHECKING:
    from workflow._compiled import CompiledWorkflow

__all__ = ["Batch", "InputSpec", "Retry", "Route", "Step", "Workflow"]

STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# How a step builds its agent's input: field -> reference or constant; a callable
# ``f(state) -> Input | dict``; or None to take same-named fields from the task.
InputSpec = Mapping[str, Any] | Callable[[RunState], Any] | None


@dataclass(frozen=True)
class Retry:
    """How often a step is tried and how long to wait between tries.

    The wait before try ``n + 1`` is ``backoff_s * multiplier ** (n - 1)``, capped at
    ``max_backoff_s``.
    """

    max_attempts: int = 1
    backoff_s: float = 0.0
    multiplier: float = 2.0
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"Retry.max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff_s < 0 or self.multiplier < 1 or self.max_backoff_s < 0:
            raise ValueError(f"Retry delays must be >= 0 and multiplier >= 1: {self}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt``."""
        return float(min(self.backoff_s * self.multiplier ** (attempt - 1), self.max_backoff_s))


@dataclass(frozen=True)
class Batch:
    """Micro-batching of a step's calls across concurrent runs (into ``run_batch``)."""

    max_size: int = 32
    max_wait_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.max_wait_s < 0:
            raise ValueError(f"Batch needs max_size >= 1 and max_wait_s >= 0: {self}")


@dataclass(frozen=True)
class Step:
    """One step: an agent, how to build its input, and how to run it."""

    name: str
    agent: Agent[Any, Any] | str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: InputSpec = None
    retry: Retry = Retry()
    timeout_s: float | None = None
    max_visits: int | None = None
    join: tuple[str, ...] = ()
    batch: Batch | None = None


@dataclass(frozen=True)
class Route:
    """A route from ``source`` to ``targets`` (several: fan-out) when ``when`` holds.

    ``when=None`` is the default route. Error routes (``on_error``) fire when the source
    step fails after its retries.
    """

    source: str
    targets: tuple[str, ...]
    when: Rule | None = None
    on_error: bool = False


class Workflow:
    """A workflow under construction.

    Example::

        wf = Workflow("triage", task=Ticket)
        wf.step("perceive", IntentAgent(), inputs={"text": task.text})
        wf.step("reply", ReplyAgent()).step("escalate", EscalateAgent())
        wf.route("perceive", "escalate", when=state("perceive").urgent)
        wf.route("perceive", "reply")
        compiled = wf.compile()
    """

    def __init__(
        self, name: str, *, task: type[BaseModel], entry: str | None = None, description: str = ""
    ) -> None:
        if not (isinstance(task, type) and issubclass(task, BaseModel)):
            raise TypeError(f"task must be a pydantic model class, got {task!r}")
        self.name = name
        self.task_type = task
        self.entry = entry
        self.description = description
        self._steps: dict[str, Step] = {}
        self._routes: list[Route] = []

    @property
    def steps(self) -> Mapping[str, Step]:
        """The steps declared so far, in order."""
        return MappingProxyType(self._steps)

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes declared so far, in order."""
        return tuple(self._routes)

    def step(  # noqa: PLR0913 - keyword-only step options, documented below
        self,
        name: str,
        agent: Agent[Any, Any] | str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: InputSpec = None,
        retry: Retry | int | None = None,
        timeout: float | None = None,
        max_visits: int | None = None,
        join: Sequence[str] = (),
        batch: Batch | bool | None = None,
    ) -> Workflow:
        """Add a step. ``agent`` is an agent instance or a registered agent name.

        Args:
            name: Unique step name (letters, digits, ``_``).
            agent: The agent, or its registry name (then ``params`` builds it).
            params: Keyword arguments for a named agent.
            inputs: How to build the agent's input (see ``InputSpec``).
            retry: A ``Retry`` policy, or the maximum number of attempts.
            timeout: Seconds one attempt may take.
            max_visits: Bound on how often the step runs in one run (required in loops).
            join: Steps that must all arrive before this step runs (after a fan-out).
            batch: Micro-batch calls across runs (``True`` for the default ``Batch()``).
        """
        problem = self._name_problem(name)
        if problem is not None:
            raise WorkflowCompileError(self.name, [problem])
        if params and not isinstance(agent, str):
            raise WorkflowCompileError(
                self.name,
                [
                    CompileProblem(
                        "bad-agent-params",
                        f"step '{name}': params apply only to an "
                        "agent given by name; pass them to the agent instead",
                        name,
                    )
                ],
            )
        self._steps[name] = Step(
            name=name,
            agent=agent,
            params=dict(params or {}),
            inputs=inputs,
            retry=Retry(max_attempts=retry) if isinstance(retry, int) else retry or Retry(),
            timeout_s=timeout,
            max_visits=max_visits,
            join=tuple(join),
            batch=Batch() if batch is True else batch or None,
        )
        return self

    def route(self, source: str, to: str | Sequence[str], *, when: Any = None) -> Workflow:
        """Add a route; ``when`` is a rule, a reference, a callable, or None (default)."""
        self._routes.append(Route(source, _targets(self.name, source, to), as_rule(when)))
        return self

    def on_error(self, source: str, to: str) -> Workflow:
        """Route to ``to`` when ``source`` fails after its retries (instead of failing)."""
        self._routes.append(Route(source, (to,), None, on_error=True))
        return self

    def compile(self, *, registry: AgentRegistry | None = None) -> CompiledWorkflow:
        """Validate and freeze; raises ``WorkflowCompileError`` listing every problem."""
        from workflow._compile import compile_workflow  # noqa: PLC0415 - compile imports us

        return compile_workflow(self, registry=registry)

    def _name_problem(self, name: str) -> CompileProblem | None:
        if not isinstance(name, str) or not STEP_NAME.match(name):
            return CompileProblem(
                "bad-step-name",
                f"step name {name!r} must be letters, digits and '_' (not starting with a digit)",
            )
        if name in self._steps:
            return CompileProblem("duplicate-step", f"step '{name}' is declared twice", name)
        return None


def _targets(workflow: str, source: str, to: str | Sequence[str]) -> tuple[str, ...]:
    targets = (to,) if isinstance(to, str) else tuple(to)
    if not targets:
        problem = CompileProblem("bad-route", f"the route from '{source}' has no target", source)
        raise WorkflowCompileError(workflow, [problem])
    return targets
