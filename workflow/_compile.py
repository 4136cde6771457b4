"""Compiling a ``Workflow``: every check, then the immutable ``CompiledWorkflow``.

All problems are collected before anything is raised, so a user fixes a definition in one
pass; the builder is never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from agents import (
    Agent,
    AgentContractError,
    AgentNotFoundError,
    AgentRegistry,
    PluginError,
    default_registry,
    validate_agent_class,
)
from knowledge import RouteDecision, StepFailure
from workflow._builder import Route, Step, Workflow
from workflow._compiled import CompiledRoute, CompiledStep, CompiledWorkflow
from workflow._errors import CompileProblem, RuleError, WorkflowCompileError
from workflow._inputs import check_inputs, input_builder
from workflow._state import Ref
from workflow._typecheck import RefTypeError, resolve

__all__ = ["compile_workflow"]


def compile_workflow(wf: Workflow, *, registry: AgentRegistry | None = None) -> CompiledWorkflow:
    """Validate ``wf`` and return its compiled form, or raise ``WorkflowCompileError``."""
    problems: list[CompileProblem] = []
    if not wf.steps:
        raise WorkflowCompileError(
            wf.name, [CompileProblem("empty-workflow", "the workflow has no steps; add one")]
        )
    agents = _resolve_agents(wf, registry or default_registry, problems)
    entry = wf.entry or next(iter(wf.steps))
    if entry not in wf.steps:
        problems.append(
            CompileProblem(
                "unknown-entry",
                f"entry step '{entry}' does not exist; steps: {', '.join(wf.steps)}",
            )
        )
    problems += _route_problems(wf)
    graph = _graph(wf)
    if not problems:
        problems += _graph_problems(wf, graph, entry)
    if not problems:
        problems += _type_problems(wf, agents, graph)
    if problems:
        raise WorkflowCompileError(wf.name, problems)
    steps = {name: _compile_step(wf, wf.steps[name], agents[name]) for name in wf.steps}
    return CompiledWorkflow(
        name=wf.name,
        description=wf.description,
        task_type=wf.task_type,
        entry=entry,
        steps=steps,
        routes=wf.routes,
        graph=graph,
    )


def _resolve_agents(
    wf: Workflow, registry: AgentRegistry, problems: list[CompileProblem]
) -> dict[str, Agent[Any, Any]]:
    agents: dict[str, Agent[Any, Any]] = {}
    for step in wf.steps.values():
        try:
            if isinstance(step.agent, str):
                agents[step.name] = registry.create(step.agent, dict(step.params))
            else:
                validate_agent_class(type(step.agent))
                agents[step.name] = step.agent
        except AgentNotFoundError as exc:
            message = f"step '{step.name}': {exc}"
            problems.append(CompileProblem("unknown-agent", message, step.name))
        except (AgentContractError, PluginError) as exc:
            problems.append(CompileProblem("bad-agent", f"step '{step.name}': {exc}", step.name))
    return agents


def _route_problems(wf: Workflow) -> list[CompileProblem]:
    problems = []
    valid = ", ".join(wf.steps)
    for route in wf.routes:
        for name in (route.source, *route.targets):
            if name not in wf.steps:
                problems.append(
                    CompileProblem(
                        "unknown-step",
                        f"route {_route_text(route)} names unknown step '{name}'; steps: {valid}",
                        route.source,
                    )
                )
    for name in wf.steps:
        problems += _ambiguity_problems(name, [r for r in wf.routes if r.source == name])
    for step in wf.steps.values():
        for waited in step.join:
            if not any(r.source == waited and step.name in r.targets for r in wf.routes):
                problems.append(
                    CompileProblem(
                        "bad-join",
                        f"step '{step.name}' joins '{waited}', which has no route to it",
                        step.name,
                    )
                )
    return problems


def _ambiguity_problems(step: str, routes: list[Route]) -> list[CompileProblem]:
    problems = []
    if sum(r.on_error for r in routes) > 1:
        problems.append(
            CompileProblem("ambiguous-route", f"step '{step}' has more than one error route", step)
        )
    normal = [r for r in routes if not r.on_error]
    seen: list[dict[str, Any]] = []
    for index, route in enumerate(normal):
        if route.when is None and index < len(normal) - 1:
            later = ", ".join(_route_text(r) for r in normal[index + 1 :])
            problems.append(
                CompileProblem(
                    "ambiguous-route",
                    f"the default route {_route_text(route)} is not the last route of '{step}', so "
                    f"{later} can never fire; declare the default route last",
                    step,
                )
            )
        if route.when is not None:
            try:
                form = route.when.to_dict()
            except RuleError:  # a lambda has no saved form: compare such rules by identity
                form = {"rule": route.when}
            if form in seen:
                problems.append(
                    CompileProblem(
                        "ambiguous-route",
                        f"step '{step}' has two routes with the same rule {route.when}",
                        step,
                    )
                )
            seen.append(form)
    return problems


def _graph(wf: Workflow) -> nx.DiGraph[str]:
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(wf.steps)
    for route in wf.routes:
        for target in route.targets:
            if graph.has_edge(route.source, target):
                graph.edges[route.source, target]["kinds"].append(_kind(route))
            else:
                graph.add_edge(route.source, target, kinds=[_kind(route)])
    return graph


def _kind(route: Route) -> str:
    return "error" if route.on_error else "default" if route.when is None else "rule"


def _graph_problems(wf: Workflow, graph: nx.DiGraph[str], entry: str) -> list[CompileProblem]:
    problems = []
    reachable = {entry} | nx.descendants(graph, entry)
    for name in wf.steps:
        if name not in reachable:
            problems.append(
                CompileProblem(
                    "unreachable-step",
                    f"step '{name}' cannot be reached from the entry '{entry}'; "
                    "route to it or remove it",
                    name,
                )
            )
    ends = [n for n in graph if not any(r.source == n and not r.on_error for r in wf.routes)]
    can_end = set(ends).union(*(nx.ancestors(graph, n) for n in ends))
    for name in wf.steps:
        if name in reachable and name not in can_end:
            problems.append(
                CompileProblem(
                    "no-end",
                    f"step '{name}' has no path to a terminal step (one without routes); "
                    "every run must be able to finish",
                    name,
                )
            )
    for component in nx.strongly_connected_components(graph):
        first = next(iter(component))
        cyclic = len(component) > 1 or graph.has_edge(first, first)
        if cyclic and not any(wf.steps[n].max_visits for n in component):
            loop = ", ".join(sorted(component))
            problems.append(
                CompileProblem(
                    "unbounded-loop",
                    f"the loop through {loop} has no bound; set max_visits= on one of its steps",
                    first,
                )
            )
    return problems


def _type_problems(
    wf: Workflow, agents: Mapping[str, Agent[Any, Any]], graph: nx.DiGraph[str]
) -> list[CompileProblem]:
    problems = []
    for step in wf.steps.values():
        before = nx.ancestors(graph, step.name)
        resolve_ref = _resolver(wf, agents, step.name, before)
        for message in check_inputs(step, type(agents[step.name]), wf.task_type, resolve_ref):
            problems.append(
                CompileProblem("bad-inputs", f"step '{step.name}': {message}", step.name)
            )
        for route in wf.routes:
            if route.source == step.name and route.when is not None:
                resolve_rule = _resolver(wf, agents, step.name, before | {step.name})
                for message in route.when.check(resolve_rule):
                    problems.append(
                        CompileProblem(
                            "bad-rule", f"route {_route_text(route)}: {message}", step.name
                        )
                    )
    return problems


def _resolver(
    wf: Workflow, agents: Mapping[str, Agent[Any, Any]], step: str, available: set[str]
) -> Callable[[Ref], Any]:
    def resolve_ref(ref: Ref) -> Any:
        if ref.root == "task":
            return resolve(ref, wf.task_type)
        if ref.step not in wf.steps:
            raise RefTypeError(
                f"{ref} names unknown step '{ref.step}'; steps: {', '.join(wf.steps)}"
            )
        if ref.step not in available:
            raise RefTypeError(
                f"{ref} is read in step '{step}', but step '{ref.step}' never runs before it"
            )
        root = type(agents[ref.step]).Output if ref.root == "state" else StepFailure
        return resolve(ref, root)

    return resolve_ref


def _compile_step(wf: Workflow, step: Step, agent: Agent[Any, Any]) -> CompiledStep:
    cls = type(agent)
    normal = [r for r in wf.routes if r.source == step.name and not r.on_error]
    error = next((r.targets[0] for r in wf.routes if r.source == step.name and r.on_error), None)
    return CompiledStep(
        spec=step,
        agent=agent,
        agent_name=cls.name,
        input_type=cls.Input,
        output_type=cls.Output,
        build_input=input_builder(step, cls.Input, wf.task_type),
        routes=tuple(_compile_route(wf, i, r) for i, r in enumerate(normal)),
        error_target=error,
    )


def _compile_route(wf: Workflow, index: int, route: Route) -> CompiledRoute:
    text = None if route.when is None else str(route.when)
    kind = "default" if route.when is None else "rule"
    reason = "default route" if text is None else f"rule held: {text}"
    bounded = tuple(
        (t, bound) for t in route.targets if (bound := wf.steps[t].max_visits) is not None
    )
    return CompiledRoute(
        index=index,
        targets=route.targets,
        test=None if route.when is None else route.when.compile(),
        text=text,
        bounded=bounded,
        decision=RouteDecision(kind, index, route.targets, text, reason),
    )


def _route_text(route: Route) -> str:
    arrow = "-x->" if route.on_error else "->"
    return f"'{route.source}' {arrow} {', '.join(repr(t) for t in route.targets)}"
