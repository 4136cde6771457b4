"""Reading the file form of a workflow (see ``workflow._serialize``) back into a workflow.

The loader checks the structure strictly (unknown keys are errors, never ignored), rebuilds a
``Workflow`` through its public builder methods and compiles it, so a file passes every
check a workflow built in code passes. Each structural problem raises ``WorkflowFileError``
naming its place (``steps[2].retry``); nothing is registered or mutated on the way.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal

import yaml

from agents import (
    DEFAULT_ALLOWLIST,
    Agent,
    AgentContractError,
    AgentRegistry,
    ImportNotAllowedError,
    PluginError,
    import_object,
    validate_agent_class,
)
from workflow._builder import Batch, InputSpec, Retry, Workflow
from workflow._errors import CompileProblem, RuleError, WorkflowCompileError, WorkflowFileError
from workflow._rules import Rule, rule_from_dict
from workflow._state import parse_ref

if TYPE_CHECKING:
    from workflow._compiled import CompiledWorkflow

__all__ = ["FORMAT_VERSION", "SUPPORTED_VERSIONS", "Format", "Loader", "parse_text"]

Format = Literal["yaml", "json"]
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

_TOP_KEYS = ("taskloom", "name", "description", "task", "entry", "steps", "routes")
_STEP_KEYS = (
    "name", "agent", "params", "inputs", "retry", "timeout_s", "max_visits", "join", "batch"
)  # fmt: skip
_ROUTE_KEYS = ("from", "to", "when", "on_error")
_COMPARE_KEYS = ("op", "ref", "value", "other")
_INT_OPTIONS = frozenset({"max_attempts", "max_size"})
_RULE_FORMS = (
    "{op: <operator>, ref: <reference>, value: <constant>}, {op, ref, other: <reference>}, "
    "{op: 'true', ref}, {all: [rules]}, {any: [rules]}, {not: <rule>}, {call: 'module:function'}"
)


def parse_text(text: str, fmt: Format | None, origin: str = "") -> Any:
    """Parse YAML or JSON (``None``: JSON if the text starts with ``{``, else YAML)."""
    fmt = fmt or ("json" if text.lstrip().startswith("{") else "yaml")
    try:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise WorkflowFileError(f"{origin}not valid {fmt.upper()}: {exc}") from exc


class Loader:
    """Turns parsed file data into a compiled workflow, naming the place of every problem.

    Args:
        origin: Prefix of every error message (the file name and ``: ``, or empty).
        allow_imports: Module prefixes trusted beyond ``agents.DEFAULT_ALLOWLIST``.
        registry: Where agent names are looked up (None: the default registry).
    """

    def __init__(
        self, origin: str, allow_imports: Collection[str], registry: AgentRegistry | None
    ) -> None:
        self.origin = origin
        self.allow = (*DEFAULT_ALLOWLIST, *allow_imports)
        self.registry = registry

    def workflow(self, data: Any) -> CompiledWorkflow:
        """Build and compile the workflow ``data`` describes."""
        top = self._mapping(data, "top level", _TOP_KEYS, ("taskloom", "name", "task", "steps"))
        version = top["taskloom"]
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            supported = ", ".join(map(str, SUPPORTED_VERSIONS))
            raise self._fail(
                "taskloom", f"unsupported format version {version!r}; supported: {supported}"
            )
        task_path = self._typed(top["task"], "task", str, "an import path 'module:Model'")
        task_type = self._import(task_path, "task")
        try:
            wf = Workflow(
                self._typed(top["name"], "name", str, "a string"),
                task=task_type,
                entry=self._typed(top.get("entry"), "entry", (str, type(None)), "a step name"),
                description=self._typed(top.get("description", ""), "description", str, "text"),
            )
        except TypeError as exc:
            raise self._fail("task", f"{task_path!r} is not a pydantic model class") from exc
        for i, step in enumerate(self._typed(top["steps"], "steps", list, "a list of steps")):
            self._step(wf, step, f"steps[{i}]")
        for i, route in enumerate(self._typed(top.get("routes", []), "routes", list, "a list")):
            self._route(wf, route, f"routes[{i}]")
        return wf.compile(registry=self.registry)

    def _step(self, wf: Workflow, data: Any, where: str) -> None:
        step = self._mapping(data, where, _STEP_KEYS, ("name", "agent"))
        name = self._typed(step["name"], f"{where}.name", str, "a step name")
        agent = self._typed(step["agent"], f"{where}.agent", str, "an agent name or a path")
        params = self._mapping(step.get("params", {}), f"{where}.params", None)
        by_path = ":" in agent  # agent names cannot contain ':', import paths always do
        wf.step(
            name,
            self._agent(wf.name, name, agent, params, where) if by_path else agent,
            params=None if by_path else params,
            inputs=self._inputs(step.get("inputs"), f"{where}.inputs"),
            retry=self._options(step.get("retry"), f"{where}.retry", Retry),
            timeout=self._typed(
                step.get("timeout_s"), f"{where}.timeout_s", (int, float, type(None)), "seconds"
            ),
            max_visits=self._typed(
                step.get("max_visits"), f"{where}.max_visits", (int, type(None)), "an integer"
            ),
            join=self._names(step.get("join", []), f"{where}.join", empty_ok=True),
            batch=self._options(step.get("batch"), f"{where}.batch", Batch),
        )

    def _agent(
        self, workflow: str, step: str, path: str, params: dict[str, Any], where: str
    ) -> Agent[Any, Any]:
        """Import, validate and build an agent named by path.

        A class that breaks the contract or rejects ``params`` is the compile problem
        ``bad-agent``, as it is for an agent given by name.
        """
        cls = self._import(path, f"{where}.agent")
        try:
            validate_agent_class(cls, origin=path)
            try:
                return cls(**params)  # type: ignore[no-any-return]
            except (TypeError, ValueError) as exc:
                problems = [f"cannot be built with {params!r}: {exc}"]
                raise AgentContractError(cls.name, problems, origin=path) from exc
        except AgentContractError as exc:
            problem = CompileProblem("bad-agent", f"step '{step}': {exc}", step)
            raise WorkflowCompileError(workflow, [problem]) from exc

    def _inputs(self, data: Any, where: str) -> InputSpec:
        if data is None:
            return None
        spec = self._mapping(data, where, None)
        if list(spec) == ["call"] and isinstance(spec["call"], str):
            function = self._import(spec["call"], f"{where}.call")
            if not callable(function):
                raise self._fail(f"{where}.call", f"{spec['call']!r} is not callable")
            return function  # type: ignore[no-any-return]
        return {
            field: self._input_value(value, f"{where}.{field}") for field, value in spec.items()
        }

    def _input_value(self, data: Any, where: str) -> Any:
        value = self._mapping(data, where, ("ref", "value"))
        if len(value) != 1:
            raise self._fail(where, "expected {ref: <reference>} or {value: <constant>}")
        if "value" in value:
            return value["value"]
        try:
            return parse_ref(self._typed(value["ref"], f"{where}.ref", str, "a reference"))
        except RuleError as exc:
            raise self._fail(f"{where}.ref", str(exc)) from exc

    def _options(self, data: Any, where: str, cls: type[Retry] | type[Batch]) -> Any:
        if data is None:
            return None
        values = self._mapping(data, where, tuple(f.name for f in fields(cls)))
        for key, value in values.items():
            integer = key in _INT_OPTIONS
            kinds = (int,) if integer else (int, float)
            self._typed(value, f"{where}.{key}", kinds, "an integer" if integer else "a number")
        try:
            return cls(**values)
        except ValueError as exc:
            raise self._fail(where, str(exc)) from exc

    def _route(self, wf: Workflow, data: Any, where: str) -> None:
        route = self._mapping(data, where, _ROUTE_KEYS, ("from", "to"))
        source = self._typed(route["from"], f"{where}.from", str, "a step name")
        targets = self._names(route["to"], f"{where}.to", empty_ok=False)
        if not self._typed(route.get("on_error", False), f"{where}.on_error", bool, "a bool"):
            when = route.get("when")
            wf.route(source, targets, when=None if when is None else self._rule(when, where))
        elif "when" in route or len(targets) != 1:
            raise self._fail(where, "an error route has exactly one target and no 'when'")
        else:
            wf.on_error(source, targets[0])

    def _rule(self, data: Any, where: str) -> Rule:
        self._rule_shape(data, f"{where}.when")
        try:
            return rule_from_dict(data, allow=self.allow)
        except ImportNotAllowedError:
            raise  # a refusal, not a malformed file: propagates unchanged
        except (RuleError, PluginError) as exc:
            raise self._fail(f"{where}.when", str(exc)) from exc

    def _rule_shape(self, data: Any, where: str) -> None:
        """Check a rule's keys and nesting, so a misspelt key is never silently ignored."""
        if not isinstance(data, dict) or not data:
            raise self._fail(where, f"expected a rule, one of {_RULE_FORMS}; got {data!r}")
        head = next((key for key in ("all", "any", "not", "call") if key in data), None)
        if head is None:
            self._mapping(data, where, _COMPARE_KEYS, ("op", "ref"))
            if "value" in data and "other" in data:
                raise self._fail(where, "a comparison has 'value' or 'other', not both")
            return
        self._mapping(data, where, (head,))
        if head == "not":
            self._rule_shape(data["not"], f"{where}.not")
        elif head != "call":
            items = self._typed(data[head], f"{where}.{head}", list, "a list of rules")
            for i, item in enumerate(items):
                self._rule_shape(item, f"{where}.{head}[{i}]")

    def _import(self, path: str, where: str) -> Any:
        try:
            return import_object(path, self.allow)
        except ImportNotAllowedError:
            raise  # a refusal, not a malformed file: propagates unchanged
        except PluginError as exc:
            raise self._fail(where, str(exc)) from exc

    def _names(self, data: Any, where: str, *, empty_ok: bool) -> list[str]:
        names: list[str] = self._typed(data, where, list, "a list of step names")
        if (not names and not empty_ok) or not all(isinstance(n, str) for n in names):
            raise self._fail(where, f"expected a non-empty list of step names, got {names!r}")
        return names

    def _mapping(
        self, data: Any, where: str, keys: Sequence[str] | None, required: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``data`` as a mapping with str keys, all in ``keys`` (any if None), none missing."""
        if not isinstance(data, dict):
            raise self._fail(where, f"expected a mapping, got {data!r}")
        for key in data:
            if not isinstance(key, str) or (keys is not None and key not in keys):
                close = difflib.get_close_matches(str(key), keys or (), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                valid = f"; valid keys: {', '.join(keys)}" if keys else "; keys must be strings"
                raise self._fail(where, f"unknown key {key!r}{hint}{valid}")
        missing = [key for key in required if key not in data]
        if missing:
            raise self._fail(where, f"missing required key {', '.join(map(repr, missing))}")
        return data

    def _typed(self, value: Any, where: str, kind: type | tuple[type, ...], what: str) -> Any:
        """``value`` if it is a ``kind`` (a bool only where bool is named), else an error."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            return value
        raise self._fail(where, f"expected {what}, got {value!r}")

    def _fail(self, where: str, message: str) -> WorkflowFileError:
        return WorkflowFileError(f"{self.origin}{where}: {message}")
