"""The immutable, validated workflow the engine runs.

Everything the engine needs per step is precomputed here: the agent, the input builder, and
each route's compiled test, so a step costs O(its out-degree) whatever the graph's size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import networkx as nx
from pydantic import BaseModel, ValidationError

from agents import Agent
from knowledge import RouteDecision
from workflow._builder import Route, Step
from workflow._errors import TaskValidationError
from workflow._inputs import validator
from workflow._mermaid import to_mermaid
from workflow._serialize import dump_text, save_workflow, workflow_to_dict
from workflow._state import RunState

__all__ = ["CompiledRoute", "CompiledStep", "CompiledWorkflow"]


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route ready to evaluate: ``test`` is None for the default route."""

    index: int
    targets: tuple[str, ...]
    test: Callable[[RunState], bool] | None
    text: str | None
    # Targets with a visit bound, checked before the route may fire.
    bounded: tuple[tuple[str, int], ...]
    decision: RouteDecision


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A step ready to execute."""

    spec: Step
    agent: Agent[Any, Any]
    agent_name: str
    input_type: type[BaseModel]
    output_type: type[BaseModel]
    build_input: Callable[[RunState], BaseModel]
    routes: tuple[CompiledRoute, ...]
    error_target: str | None

    @property
    def name(self) -> str:
        """The step's name."""
        return self.spec.name


class CompiledWorkflow:
    """A validated workflow; immutable. Build one with ``Workflow.compile()`` or ``load``."""

    __slots__ = (
        "_graph",
        "_steps",
        "_validate_task",
        "description",
        "entry",
        "joins",
        "name",
        "routes",
        "task_type",
    )

    def __init__(
        self,
        *,
        name: str,
        description: str,
        task_type: type[BaseModel],
        entry: str,
        steps: dict[str, CompiledStep],
        routes: tuple[Route, ...],
        graph: nx.DiGraph[str],
    ) -> None:
        sets = object.__setattr__
        sets(self, "name", name)
        sets(self, "description", description)
        sets(self, "task_type", task_type)
        sets(self, "entry", entry)
        sets(self, "routes", routes)
        sets(self, "_steps", MappingProxyType(steps))
        sets(self, "_graph", nx.freeze(graph))
        sets(self, "joins", frozenset(n for n, s in steps.items() if s.spec.join))
        sets(self, "_validate_task", validator(task_type))

    name: str
    description: str
    task_type: type[BaseModel]
    entry: str
    routes: tuple[Route, ...]
    joins: frozenset[str]
    _validate_task: Callable[[Any], BaseModel]
    _steps: Mapping[str, CompiledStep]
    _graph: nx.DiGraph[str]

    def __setattr__(self, key: str, value: Any) -> NoReturn:
        raise AttributeError(f"CompiledWorkflow is immutable (tried to set {key!r})")

    @property
    def steps(self) -> Mapping[str, CompiledStep]:
        """Compiled steps by name, in declaration order (read-only)."""
        return self._steps

    @property
    def graph(self) -> nx.DiGraph[str]:
        """A frozen networkx view of steps and routes (edge attribute ``kinds``)."""
        return self._graph

    def validate_task(self, task: Any) -> BaseModel:
        """Return ``task`` as the workflow's task type or raise ``TaskValidationError``."""
        if isinstance(task, self.task_type):
            return task
        try:
            return self._validate_task(task)
        except ValidationError as exc:
            raise TaskValidationError(
                f"Task for workflow '{self.name}' does not match {self.task_type.__name__}: {exc}"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """The serialized definition (see ``workflow.load``)."""
        return workflow_to_dict(self)

    def to_yaml(self) -> str:
        """The definition as YAML text."""
        return dump_text(self.to_dict(), "yaml")

    def to_json(self) -> str:
        """The definition as JSON text."""
        return dump_text(self.to_dict(), "json")

    def save(self, path: str | Path) -> None:
        """Write the definition to ``path`` (``.yaml``/``.yml`` or ``.json``)."""
        save_workflow(self, Path(path))

    def to_mermaid(self) -> str:
        """The graph as Mermaid flowchart text, routes labelled with their rules."""
        return to_mermaid(self)

    def __repr__(self) -> str:
        return f"CompiledWorkflow({self.name!r}, steps={list(self._steps)})"
