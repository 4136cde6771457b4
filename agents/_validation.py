"""Checks that a class satisfies the agent contract, listing every problem at once."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel

from agents._contract import Agent, Role
from agents._errors import AgentContractError

__all__ = ["NAME_PATTERN", "validate_agent_class"]

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_RUN_ARITY = 2  # run(input, ctx) and run_batch(inputs, ctxs), after self


def validate_agent_class(cls: Any, *, origin: str | None = None) -> None:
    """Raise ``AgentContractError`` listing every way ``cls`` breaks the agent contract.

    Args:
        cls: The candidate agent class.
        origin: Where it came from (a plugin or import path), named in the error.
    """
    label = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise AgentContractError(
            label, [f"{label} is not a subclass of agents.Agent"], origin=origin
        )
    problems = [*_attribute_problems(cls), *_method_problems(cls)]
    if problems:
        raise AgentContractError(getattr(cls, "name", label), problems, origin=origin)


def _attribute_problems(cls: type[Agent[Any, Any]]) -> list[str]:
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(
            f"name must be a string of letters, digits, '_', '.', '-' starting with a letter; "
            f"got {name!r}"
        )
    role = getattr(cls, "role", None)
    if not isinstance(role, Role):
        valid = ", ".join(f"Role.{r.name}" for r in Role)
        problems.append(f"role must be one of {valid}; got {role!r}")
    for attr in ("Input", "Output"):
        model = getattr(cls, attr, None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            problems.append(
                f"{attr} must be a pydantic model class (declare it as "
                f"Agent[InputModel, OutputModel] or set {attr} = ...); got {model!r}"
            )
    return problems


def _method_problems(cls: type[Agent[Any, Any]]) -> list[str]:
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return [f"it does not implement {missing}"]
    problems = []
    for method in ("run", "run_batch"):
        params = _positional_params(getattr(cls, method))
        if len(params) != _RUN_ARITY:
            problems.append(
                f"{method} must take exactly two arguments after self "
                f"({'input, ctx' if method == 'run' else 'inputs, ctxs'}); it takes {params}"
            )
    if _positional_params(cls.warm_up):
        problems.append("warm_up must take no arguments after self")
    return problems


def _positional_params(function: Any) -> list[str]:
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in kinds]
