"""Input mappings: how a step turns run state into its agent's ``Input``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator

from agents import Agent
from workflow._builder import Step
from workflow._state import Ref, RunState
from workflow._typecheck import RefTypeError, assignable, describe, value_fits

__all__ = ["check_inputs", "input_builder", "validator"]


def validator(model: type[BaseModel]) -> Callable[[Any], BaseModel]:
    """The fastest validating constructor of ``model``.

    The model's own ``SchemaValidator`` skips ``model_validate``'s per-call checks (about
    1 us of the engine's per-step budget); models not yet fully defined fall back to it.
    """
    core = model.__pydantic_validator__
    if isinstance(core, SchemaValidator):
        return core.validate_python
    return model.model_validate


def _effective_mapping(step: Step, input_type: type[BaseModel], task_type: type[BaseModel]) -> Any:
    """A mapping spec as given, or the default: same-named task fields."""
    if step.inputs is not None:
        return step.inputs
    return {f: Ref("task").field(f) for f in input_type.model_fields if f in task_type.model_fields}


def check_inputs(
    step: Step,
    agent_cls: type[Agent[Any, Any]],
    task_type: type[BaseModel],
    resolve: Callable[[Ref], Any],
) -> list[str]:
    """Problems with ``step``'s input mapping for ``agent_cls``'s ``Input``."""
    mapping = _effective_mapping(step, agent_cls.Input, task_type)
    if not isinstance(mapping, Mapping):
        return []  # a callable: checked by its own type hints, validated at run time
    fields = agent_cls.Input.model_fields
    problems = []
    for name in mapping:
        if name not in fields:
            problems.append(
                f"input field '{name}' is not a field of {agent_cls.Input.__name__} "
                f"(agent '{agent_cls.name}'); fields: {', '.join(fields) or '(none)'}"
            )
    for name, info in fields.items():
        if info.is_required() and name not in mapping:
            hint = "the task has no field of that name" if step.inputs is None else "not mapped"
            problems.append(
                f"required input field '{name}' of agent '{agent_cls.name}' is "
                f"not mapped ({hint}); map it with inputs={{'{name}': ...}}"
            )
    for name, value in mapping.items():
        if name in fields:
            problems += _field_problems(name, fields[name].annotation, value, resolve)
    return problems


def _field_problems(name: str, target: Any, value: Any, resolve: Callable[[Ref], Any]) -> list[str]:
    if not isinstance(value, Ref):
        if value_fits(target, value):
            return []
        return [f"constant {value!r} does not fit input field '{name}' ({describe(target)})"]
    try:
        source = resolve(value)
    except RefTypeError as exc:
        return [str(exc)]
    if assignable(source, target):
        return []
    return [f"maps {value} ({describe(source)}) to input field '{name}' ({describe(target)})"]


def input_builder(
    step: Step, input_type: type[BaseModel], task_type: type[BaseModel]
) -> Callable[[RunState], BaseModel]:
    """A function building the validated ``Input`` of ``step`` from a run state."""
    mapping = _effective_mapping(step, input_type, task_type)
    validate = validator(input_type)
    if not isinstance(mapping, Mapping):
        produce: Callable[[RunState], Any] = mapping

        def from_callable(s: RunState) -> BaseModel:
            value = produce(s)
            return value if isinstance(value, input_type) else validate(value)

        return from_callable
    constants = {k: v for k, v in mapping.items() if not isinstance(v, Ref)}
    getters = tuple((k, v.getter()) for k, v in mapping.items() if isinstance(v, Ref))

    def from_mapping(s: RunState) -> BaseModel:
        data = dict(constants)
        for key, get in getters:
            data[key] = get(s)
        return validate(data)

    return from_mapping
