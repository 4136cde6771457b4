"""Drawing a compiled workflow as Mermaid flowchart text (nothing is rendered here).

One node per step, labelled with the step, its agent and role, and the steps it joins; a
``start`` node points at the entry and terminal steps point at an ``end`` node. Rule routes
are labelled with the rule as Python, default routes ``default``; error routes are dotted;
a fan-out route draws one edge per target. Example::

    flowchart TD
        __start__((start))
        perceive["perceive<br/>fake · reasoning"]
        reply["reply<br/>fake · execution"]
        __end__((end))
        __start__ --> perceive
        perceive -->|"state('perceive').label == 'hi'"| reply
        reply --> __end__
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from workflow._builder import Route

if TYPE_CHECKING:
    from workflow._compiled import CompiledStep, CompiledWorkflow

__all__ = ["to_mermaid"]

_START, _END = "__start__", "__end__"
# Words Mermaid reads as syntax where a node id is expected ("end" closes a subgraph).
_RESERVED = frozenset(
    {"end", "graph", "flowchart", "subgraph", "direction", "style", "class", "classdef",
     "click", "linkstyle", "default", _START, _END}
)  # fmt: skip
# '#' first: the other replacements introduce '#'. Entity codes keep quotes, HTML and
# Mermaid's own delimiters inside a quoted label from ending it or being parsed as markup.
_ESCAPES = (("#", "#35;"), ("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"),
            ("\n", "<br/>"))  # fmt: skip


def to_mermaid(wf: CompiledWorkflow) -> str:
    """The flowchart text of ``wf`` (see the module docstring), ending in a newline."""
    ids = _node_ids(wf.steps)
    terminal = [name for name, step in wf.steps.items() if not step.routes]
    lines = ["flowchart TD", f"    {_START}((start))"]
    lines += [f'    {ids[name]}["{_label(step)}"]' for name, step in wf.steps.items()]
    if terminal:
        lines.append(f"    {_END}((end))")
    lines.append(f"    {_START} --> {ids[wf.entry]}")
    for route in wf.routes:
        arrow = _arrow(route)
        lines += [f"    {ids[route.source]} {arrow} {ids[target]}" for target in route.targets]
    lines += [f"    {ids[name]} --> {_END}" for name in terminal]
    return "\n".join(lines) + "\n"


def _label(step: CompiledStep) -> str:
    parts = [step.name, f"{step.agent_name} · {type(step.agent).role.value}"]
    if step.spec.join:
        parts.append(f"joins {', '.join(step.spec.join)}")
    return "<br/>".join(_escape(part) for part in parts)


def _arrow(route: Route) -> str:
    if route.on_error:
        return "-.->|error|"
    if route.when is None:
        return "-->|default|"
    return f'-->|"{_escape(str(route.when))}"|'


def _escape(text: str) -> str:
    """``text`` made safe inside a quoted Mermaid label."""
    for char, code in _ESCAPES:
        text = text.replace(char, code)
    return text


def _node_ids(names: Iterable[str]) -> dict[str, str]:
    """Node ids: the step name, unless Mermaid would misread it (then ``step_<name>``)."""
    names = list(names)
    ids = {name: name for name in names if name.lower() not in _RESERVED}
    used = set(ids.values())
    for name in names:
        if name not in ids:
            node = f"step_{name}"
            while node in used:
                node += "_"
            ids[name] = node
            used.add(node)
    return {name: ids[name] for name in names}
