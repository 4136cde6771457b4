"""Saving and loading workflows as YAML or JSON.

The file form is plain data, version key first, keys in a stable order::

    taskloom: 1
    name: triage
    description: ''
    task: mypkg.models:Ticket             # import path of the task model
    entry: perceive
    steps:
    - name: perceive
      agent: intent                       # a registry name, or a 'module:Class' path
      params: {threshold: 0.5}            # the agent's init_params
      inputs:                             # or {call: 'module:function'}
        text: {ref: task.text}
        n: {value: 3}
      retry: {max_attempts: 3, backoff_s: 0.0, multiplier: 2.0, max_backoff_s: 30.0}
      timeout_s: 2.0
    - name: reply
      agent: mypkg.agents:ReplyAgent
      params: {}
    routes:
    - from: perceive
      to: [reply]
      when: {op: ==, ref: state.perceive.label, value: greeting}
    - from: perceive
      to: [handler]
      on_error: true

An agent is saved by name if it was given by name, or if its class is the one
``agents.default_registry`` holds under its name; otherwise by import path.

Options at their defaults (``inputs``, ``retry``, ``timeout_s``, ``max_visits``, ``join``,
``batch``, ``when``, ``on_error``) are left out. A loaded file is rebuilt into a ``Workflow``
and compiled, so every compile check applies to files too.

Errors:

- ``WorkflowFileError``: the text is not YAML/JSON, or its structure is wrong (unknown or
  missing keys, wrong types, bad references or rules, an unsupported version, an import path
  that does not resolve); or, when saving, something has no file form (a lambda, agent
  parameters that are not JSON data). The message says where (``steps[2].retry: ...``).
- ``agents.ImportNotAllowedError``: the file names a module outside the import allowlist. It
  propagates unchanged, so a refused import is never mistaken for a typo in the file.
- ``WorkflowCompileError``: the file is well formed but the workflow does not compile (an
  unknown agent name, an unreachable step, a rule on a missing field, ...). An agent class
  named by path that breaks the agent contract or rejects its params is the problem
  ``bad-agent``, as it is for an agent named in the registry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agents import Agent, AgentError, AgentRegistry, default_registry, object_path
from workflow._builder import InputSpec, Retry, Route
from workflow._errors import RuleError, WorkflowFileError
from workflow._load import FORMAT_VERSION, Format, Loader, parse_text
from workflow._rules import callable_path
from workflow._state import Ref

if TYPE_CHECKING:
    from workflow._compiled import CompiledStep, CompiledWorkflow

__all__ = ["dump_text", "load", "loads", "save_workflow", "workflow_to_dict"]

_SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


# ----------------------------------------------------------------------------------- saving


def workflow_to_dict(wf: CompiledWorkflow) -> dict[str, Any]:
    """The file form of ``wf``: plain JSON data, keys in a stable order.

    Raises:
        WorkflowFileError: Part of ``wf`` has no file form: a lambda rule or input callable,
            agent parameters that are not JSON data, a task model or agent class that cannot
            be imported back. The message names the step or route.
    """
    return {
        "taskloom": FORMAT_VERSION,
        "name": wf.name,
        "description": wf.description,
        "task": _import_path(wf.task_type, "task", "the task model"),
        "entry": wf.entry,
        "steps": [_step_dict(step) for step in wf.steps.values()],
        "routes": [_route_dict(index, route) for index, route in enumerate(wf.routes)],
    }


def _step_dict(step: CompiledStep) -> dict[str, Any]:
    spec, where = step.spec, f"step '{step.name}'"
    params = step.agent.init_params
    out: dict[str, Any] = {
        "name": spec.name,
        "agent": spec.agent if isinstance(spec.agent, str) else _agent_text(step.agent, where),
        "params": {k: _plain(v, f"{where}, param '{k}'") for k, v in params.items()},
    }
    if spec.inputs is not None:
        out["inputs"] = _inputs_dict(spec.inputs, where)
    if spec.retry != Retry():
        out["retry"] = asdict(spec.retry)
    if spec.timeout_s is not None:
        out["timeout_s"] = spec.timeout_s
    if spec.max_visits is not None:
        out["max_visits"] = spec.max_visits
    if spec.join:
        out["join"] = list(spec.join)
    if spec.batch is not None:
        out["batch"] = asdict(spec.batch)
    return out


def _agent_text(agent: Agent[Any, Any], where: str) -> str:
    """The registry name if the default registry resolves it to this class, else a path."""
    cls = type(agent)
    # ``in`` lists the registry once (plugins included) and then answers from memory; ``get``
    # alone would rescan the entry points on every miss (milliseconds per step).
    try:
        if cls.name in default_registry and default_registry.get(cls.name) is cls:
            return cls.name
    except AgentError:  # a broken plugin under that name: the path still works
        pass
    return _import_path(cls, where, f"agent class {cls.__qualname__}")


def _import_path(obj: Any, where: str, what: str) -> str:
    path = object_path(obj)
    if path is None:
        raise WorkflowFileError(
            f"{where}: cannot save {what}: it cannot be imported back by 'module:Name'. Define "
            "it at module level in an importable module (not in __main__ or a function)."
        )
    return path


def _inputs_dict(inputs: InputSpec, where: str) -> dict[str, Any]:
    if isinstance(inputs, Mapping):
        return {
            name: {"ref": value.to_text()}
            if isinstance(value, Ref)
            else {"value": _plain(value, f"{where}, input '{name}'")}
            for name, value in inputs.items()
        }
    try:
        return {"call": callable_path(inputs, "input mapping")}
    except RuleError as exc:
        raise WorkflowFileError(f"{where}, inputs: {exc}") from exc


def _route_dict(index: int, route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {"from": route.source, "to": list(route.targets)}
    if route.when is not None:
        where = f"routes[{index}] (from '{route.source}')"
        try:
            rule = route.when.to_dict()
        except RuleError as exc:
            raise WorkflowFileError(f"{where}: {exc}") from exc
        out["when"] = _plain(rule, f"{where}, rule")
    if route.on_error:
        out["on_error"] = True
    return out


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON data (tuples become lists), or a ``WorkflowFileError`` saying why not."""
    # Exact types: str/int subclasses (enums) would not come back as themselves.
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float and math.isfinite(value):
        return value
    if type(value) in (list, tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise WorkflowFileError(
        f"{where}: cannot save {value!r} ({type(value).__name__}): only JSON data can be saved "
        "(str, int, finite float, bool, None, lists, and mappings with str keys)."
    )


def dump_text(data: dict[str, Any], fmt: Format) -> str:
    """``data`` as YAML or JSON text (key order kept, UTF-8 kept readable)."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=None
        )
    raise ValueError(f"Unknown format {fmt!r}; use 'yaml' or 'json'")


class _Dumper(yaml.SafeDumper):
    """``SafeDumper`` that keeps every string exact when read back.

    With ``allow_unicode`` PyYAML writes the line separators NEL, LS and PS raw inside plain or
    single-quoted scalars, where the reader folds them into spaces; double quotes escape them.
    """


_FOLDED = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(char in value for char in _FOLDED) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def save_workflow(wf: CompiledWorkflow, path: Path) -> None:
    """Write ``wf`` to ``path``; the suffix (``.yaml``, ``.yml``, ``.json``) picks the format.

    The whole text is built before the file is opened, so a workflow that cannot be saved
    leaves no partial file behind.
    """
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise WorkflowFileError(
            f"Cannot save to '{path}': unknown suffix {path.suffix!r}; use .yaml, .yml or .json"
        )
    text = dump_text(workflow_to_dict(wf), fmt)
    path.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------- loading


def load(
    path: str | Path,
    *,
    allow_imports: Collection[str] = (),
    registry: AgentRegistry | None = None,
) -> CompiledWorkflow:
    """Load and compile a saved workflow; the suffix picks the format (else it is detected).

    Args:
        path: A ``.yaml``/``.yml`` or ``.json`` file written by ``CompiledWorkflow.save``.
        allow_imports: Module prefixes trusted beyond ``agents.DEFAULT_ALLOWLIST``: loading
            imports the task model, agent classes and callables the file names.
        registry: Where agent names are looked up (default: ``agents.default_registry``).

    Raises:
        OSError: The file cannot be read.
        WorkflowFileError: The file is malformed; the message names the file and the place.
        ImportNotAllowedError: The file names a module outside the allowlist.
        WorkflowCompileError: The workflow it describes does not compile.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = parse_text(text, _SUFFIXES.get(path.suffix.lower()), f"{path}: ")
    return Loader(f"{path}: ", allow_imports, registry).workflow(data)


def loads(
    text: str,
    *,
    format: Format | None = None,
    allow_imports: Collection[str] = (),
    registry: AgentRegistry | None = None,
) -> CompiledWorkflow:
    """Load and compile a workflow from YAML or JSON text (see ``load``).

    ``format=None`` reads text starting with ``{`` as JSON and anything else as YAML.
    """
    if format not in (None, "yaml", "json"):
        raise ValueError(f"Unknown format {format!r}; use 'yaml', 'json' or None (detect)")
    return Loader("", allow_imports, registry).workflow(parse_text(text, format))
