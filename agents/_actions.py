"""Actions: typed Python functions an execution agent may call, and filling their arguments.

An action is a plain function. Its description, ``Action``, is built once, when the action
is registered (``Action.from_function``, the ``@action`` decorator, or an ``ActionSelector``
naming it), and registration refuses, naming the function and quoting its signature:

- a parameter without an annotation (its type is what validates the argument);
- ``*args``, ``**kwargs`` or positional-only parameters (arguments are filled by name).

The parameters become a pydantic arguments model (``create_model``, lax mode as in
``validate_call``: ``"12"`` fills an ``int``; defaults kept), except one parameter annotated
``sqlalchemy.orm.Session`` (or ``Session | None``): it receives the knowledge-base session
whose transaction also holds the action's idempotency key, so rows the action writes there
(an outbox row, a ticket) commit together with the key, exactly once. It is chosen by
annotation, never by name, and is never filled from entities or values.

The result must be JSON data or a pydantic model: it is stored with the idempotency key and
returned, as stored, when the same step visit asks again.

Arguments are filled (``fill_arguments``) for each parameter in this order: the explicit
value of that name (from upstream steps); else the text of the entity whose type is the
parameter's slot (``slots[name]``, default the name itself), the most confident first;
else the parameter's default. Then the arguments model validates them.

A saved workflow names actions by import path, and only functions marked with ``@action``
may be named that way: the path is resolved under an allowlist, and the mark keeps a file
from turning an arbitrary allowlisted function into something an agent calls.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_jsonable_python
from sqlalchemy.orm import Session

from agents._errors import AgentError
from agents._extractor import Entity
from agents._imports import DEFAULT_ALLOWLIST, import_object, object_path

__all__ = [
    "NO_ACTION",
    "Action",
    "ActionDefinitionError",
    "ActionError",
    "ActionFailedError",
    "Filled",
    "action",
    "fill_arguments",
    "jsonable_result",
    "resolve_action",
]

# The label of a model that may decide to do nothing; no action may take this name.
NO_ACTION = "none"
ACTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_MARK = "__taskloom_action__"
F = TypeVar("F", bound=Callable[..., Any])


class ActionError(AgentError):
    """An action could not be registered, chosen or run."""


class ActionDefinitionError(ActionError, TypeError):
    """A function cannot be an action (its signature, name or result is refused)."""


class ActionFailedError(ActionError):
    """An action raised; its transaction (and idempotency claim) was rolled back.

    Attributes:
        action: The action's name.
        arguments: The arguments it was called with (JSON form).
    """

    def __init__(self, action: str, arguments: Mapping[str, Any], message: str) -> None:
        self.action = action
        self.arguments = dict(arguments)
        super().__init__(message)


@dataclass(frozen=True)
class Action:
    """A registered action: a typed function and the model that validates its arguments.

    Attributes:
        name: The action's name: the model label that selects it.
        function: The function itself.
        arguments: The pydantic model of its parameters (the session parameter excluded).
        summary: The first line of its docstring.
        session_parameter: The parameter that receives the knowledge-base session, if any.
        session_optional: That parameter accepts None (called without a knowledge base).
    """

    name: str
    function: Callable[..., Any] = field(repr=False)
    arguments: type[BaseModel] = field(repr=False)
    summary: str = ""
    session_parameter: str | None = None
    session_optional: bool = False

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None) -> Action:
        """Describe ``function`` as an action, or refuse it (see the module docstring).

        Raises:
            ActionDefinitionError: What is wrong, naming the function and its signature.
        """
        label = name if name is not None else getattr(function, "__name__", "")
        where = f"{getattr(function, '__qualname__', function)!r}"
        signature, hints = _typed_signature(function, where)
        problems = _signature_problems(signature, hints)
        if not ACTION_NAME.match(label) or label == NO_ACTION:
            problems.append(
                f"the name {label!r} is not allowed: letters, digits, '_.-', not starting "
                f"with a digit, and not {NO_ACTION!r} (the label for doing nothing)"
            )
        sessions = [p for p in signature.parameters if _session_kind(hints.get(p)) is not None]
        if len(sessions) > 1:
            problems.append(f"several parameters take the session: {', '.join(sessions)}")
        if problems:
            raise ActionDefinitionError(
                f"Cannot register {where} as an action: {'; '.join(problems)}. Its signature "
                f"is {where[1:-1]}{signature}; an action takes annotated keyword-capable "
                "parameters (defaults allowed), e.g. def send_reply(article: str, "
                "amount: str | None = None) -> dict[str, str]."
            )
        session = sessions[0] if sessions else None
        fields = {
            p.name: (hints[p.name], ... if p.default is p.empty else p.default)
            for p in signature.parameters.values()
            if p.name != session
        }
        try:
            model = create_model(  # type: ignore[call-overload]
                f"{label}_arguments", __config__=ConfigDict(extra="forbid"), **fields
            )
        except Exception as exc:  # pydantic reports unsupported types in several ways
            raise ActionDefinitionError(
                f"Cannot register {where} as an action: pydantic cannot validate its "
                f"parameters {where[1:-1]}{signature}: {exc}. Use JSON-friendly types "
                "(str, int, float, bool, Literal, lists, pydantic models)."
            ) from exc
        doc = inspect.getdoc(function) or ""
        return cls(
            name=label,
            function=function,
            arguments=model,
            summary=doc.strip().split("\n", 1)[0],
            session_parameter=session,
            session_optional=session is not None and _session_kind(hints[session]) == "optional",
        )

    @property
    def parameters(self) -> list[str]:
        """The names of the parameters filled from values and entities."""
        return list(self.arguments.model_fields)

    @property
    def path(self) -> str | None:
        """The path a saved workflow names it by (``module:qualname``): None unless the
        function is marked with ``@action`` and importable by that path."""
        marked = getattr(self.function, _MARK, None) is self
        return object_path(self.function) if marked else None

    def call(self, arguments: BaseModel, session: Session | None) -> Any:
        """Call the function with validated ``arguments`` (and the session, if it takes one).

        Raises:
            ActionError: The action needs a session and there is none.
        """
        kwargs = {name: getattr(arguments, name) for name in self.parameters}
        if self.session_parameter is not None:
            if session is None and not self.session_optional:
                raise ActionError(
                    f"Action '{self.name}' needs a knowledge-base session (its parameter "
                    f"'{self.session_parameter}'), but the run has no knowledge base: give the "
                    "engine one (Engine(knowledge=Database(url))) or annotate the parameter "
                    "'Session | None'."
                )
            kwargs[self.session_parameter] = session
        return self.function(**kwargs)


def _typed_signature(
    function: Callable[..., Any], where: str
) -> tuple[inspect.Signature, dict[str, Any]]:
    """The signature with its annotations resolved (quoted in errors as written types)."""
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError) as exc:
        raise ActionDefinitionError(
            f"Cannot register {where} as an action: its signature cannot be read ({exc})."
        ) from exc
    parameters = [
        p.replace(annotation=hints.get(p.name, p.empty)) for p in signature.parameters.values()
    ]
    returns = hints.get("return", signature.empty)
    return signature.replace(parameters=parameters, return_annotation=returns), hints


def _signature_problems(signature: inspect.Signature, hints: Mapping[str, Any]) -> list[str]:
    problems = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            problems.append(
                f"'{stars}{param.name}' is variadic: arguments are filled by name, one each"
            )
        elif param.kind is param.POSITIONAL_ONLY:
            problems.append(f"'{param.name}' is positional-only: arguments are passed by name")
        elif param.name not in hints:
            problems.append(f"'{param.name}' has no annotation: its type validates the value")
    return problems


def _session_kind(hint: Any) -> Literal["required", "optional"] | None:
    """Whether ``hint`` is ``Session`` (required), ``Session | None`` (optional) or neither."""
    if hint is Session:
        return "required"
    if typing.get_origin(hint) in (typing.Union, UnionType):
        members = set(typing.get_args(hint))
        if members == {Session, NoneType}:
            return "optional"
    return None


@overload
def action(function: F, /) -> F: ...
@overload
def action(*, name: str | None = None) -> Callable[[F], F]: ...
def action(function: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a function as an action (checked now), usable as ``@action`` or ``@action(name=)``.

    The function is returned unchanged, so it can still be called directly; a saved
    workflow may name it by import path (``package.module:function``).

    Args:
        function: The function (when used without parentheses).
        name: The action's name, i.e. its model label; default: the function's name.

    Raises:
        ActionDefinitionError: The function cannot be an action.
    """

    def mark(fn: F) -> F:
        setattr(fn, _MARK, Action.from_function(fn, name=name))
        return fn

    return mark if function is None else mark(function)


def resolve_action(
    spec: str | Callable[..., Any] | Action, allow: Collection[str] = DEFAULT_ALLOWLIST
) -> Action:
    """The ``Action`` for an import path, a function, or an ``Action`` (returned as is).

    A path must name a function marked with ``@action`` (see the module docstring); a
    function passed directly may be unmarked (it is checked here).

    Raises:
        ActionDefinitionError: The path names an unmarked object, or the function is refused.
        ImportNotAllowedError: The path's module is not allowlisted.
        PluginError: The path is malformed or does not resolve.
    """
    if isinstance(spec, Action):
        return spec
    if isinstance(spec, str):
        found = import_object(spec, allow)
        marked = getattr(found, _MARK, None)
        if isinstance(found, Action):
            return found
        if not isinstance(marked, Action):
            raise ActionDefinitionError(
                f"'{spec}' is not marked as an action: decorate the function with "
                "@agents.action. Only marked functions may be named by path, so a saved "
                "workflow cannot make an agent call any importable function."
            )
        return marked
    marked = getattr(spec, _MARK, None)
    return marked if isinstance(marked, Action) else Action.from_function(spec)


@dataclass(frozen=True)
class Filled:
    """The arguments of one call, filled and validated.

    Attributes:
        status: ``ok``, ``missing_arguments`` or ``invalid_arguments``.
        arguments: JSON form: validated values when ``ok``, else what was found.
        model: The validated arguments when ``ok``, else None.
        problems: One line per missing or invalid argument.
    """

    status: Literal["ok", "missing_arguments", "invalid_arguments"]
    arguments: dict[str, Any]
    model: BaseModel | None = None
    problems: list[str] = field(default_factory=list)


def fill_arguments(
    chosen: Action,
    *,
    values: Mapping[str, Any],
    entities: Sequence[Entity],
    slots: Mapping[str, str],
) -> Filled:
    """Fill ``chosen``'s arguments: values, then entities, then defaults; then validate.

    Args:
        chosen: The action.
        values: Explicit values by parameter name (win over entities).
        entities: Extracted entities; the most confident of the slot's type fills it.
        slots: Parameter name -> entity type, where they differ.
    """
    raw: dict[str, Any] = {}
    source: dict[str, str] = {}
    missing: list[str] = []
    ranked = sorted(entities, key=lambda e: -e.confidence)  # stable: text order breaks ties
    for name, spec in chosen.arguments.model_fields.items():
        slot = slots.get(name, name)
        entity = next((e for e in ranked if e.type == slot), None)
        if name in values:
            raw[name], source[name] = values[name], "value"
        elif entity is not None:
            raw[name], source[name] = entity.text, f"entity '{slot}'"
        elif spec.is_required():
            missing.append(
                f"'{chosen.name}' needs '{name}': no value '{name}' and no entity '{slot}'"
            )
    shown = to_jsonable_python(raw, fallback=repr)
    if missing:
        return Filled("missing_arguments", shown, problems=missing)
    try:
        model = chosen.arguments.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"'{chosen.name}' argument '{_field(err['loc'])}' = {err['input']!r} (from "
            f"{source.get(_field(err['loc']), 'default')}): {err['msg']}"
            for err in exc.errors()
        ]
        return Filled("invalid_arguments", shown, problems=problems)
    return Filled("ok", model.model_dump(mode="json"), model=model)


def _field(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]) if loc else ""


def jsonable_result(chosen: Action, result: Any) -> Any:
    """An action's result as JSON data (pydantic models dumped), or a clear refusal.

    Raises:
        ActionDefinitionError: The result is not JSON data.
    """
    try:
        value = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise ActionDefinitionError(
            f"Action '{chosen.name}' returned {type(result).__name__}, which is not JSON data: "
            "return a dict, list, str, number, bool, None or a pydantic model (the result is "
            "stored with the idempotency key and returned on replay)."
        ) from exc
