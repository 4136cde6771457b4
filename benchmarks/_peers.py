"""Peer-framework side of the engine-overhead benchmark: LangGraph and Haystack.

Each builder compiles its graph/pipeline ONCE and returns a ``Runner``: a callable that
takes a task text and runs the whole workflow once, synchronously, without persistence.
Steps are no-ops that only pass a small state dict along, so timings measure engine
overhead. Peers are imported lazily so taskloom never depends on them at import time.

Workflows:
    support4: perceive -> reason -> decide -> (execute | escalate); exactly 4 steps.
    chain(n): n no-op steps in a line.
"""

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

if TYPE_CHECKING:  # peers are optional; imported for real inside the builders
    from langgraph.graph import StateGraph

Runner = Callable[[str], object]
"""Runs one task through a prebuilt workflow and returns the peer's raw result."""

SUPPORT4_STEPS = 4
CHAIN_LENGTHS = (10, 50, 200)
_BENCH_HINT = 'install the benchmark extra: pip install -e ".[bench]"'


def route_for(task: str) -> str:
    """Returns the deterministic action for ``task``: "escalate" if urgent, else "reply"."""
    return "escalate" if "urgent" in task.lower() else "reply"


def _missing(dist: str) -> ImportError:
    return ImportError(f"benchmark peer {dist!r} is not installed; {_BENCH_HINT}")


# --------------------------------------------------------------------------- LangGraph


class FlowState(TypedDict, total=False):
    """LangGraph state shared by both workflows (one LastValue channel per key)."""

    task: str
    action: str
    last: str


class _LgNode(Protocol):
    # Named `state` parameter: LangGraph's node protocol matches on it (plain Callable won't).
    def __call__(self, state: FlowState) -> FlowState: ...


def _lg_node(name: str, trace: list[str] | None) -> _LgNode:
    # Nodes return a fresh one-key partial update, the way LangGraph docs write nodes.
    def node(state: FlowState) -> FlowState:
        if name == "decide":
            return {"action": route_for(state["task"]), "last": name}
        return {"last": name}

    if trace is None:
        return node

    def traced(state: FlowState) -> FlowState:
        trace.append(name)
        return node(state)

    return traced


def _lg_route(state: FlowState) -> str:
    return "execute" if state["action"] == "reply" else "escalate"


def _langgraph() -> "tuple[type[StateGraph[FlowState]], str, str]":
    try:
        from langgraph.graph import END, START, StateGraph  # noqa: PLC0415 - optional peer
    except ImportError as exc:
        raise _missing("langgraph") from exc
    return StateGraph, START, END


def _langgraph_support4_builder(trace: list[str] | None) -> "StateGraph[FlowState]":
    """support4 as a LangGraph ``StateGraph`` builder with one conditional edge."""
    state_graph, start, end = _langgraph()
    builder = state_graph(FlowState)
    for name in ("perceive", "reason", "decide", "execute", "escalate"):
        builder.add_node(name, _lg_node(name, trace))
    for src, dst in ((start, "perceive"), ("perceive", "reason"), ("reason", "decide")):
        builder.add_edge(src, dst)
    builder.add_conditional_edges("decide", _lg_route, ["execute", "escalate"])
    builder.add_edge("execute", end)
    builder.add_edge("escalate", end)
    return builder


def langgraph_support4(*, trace: list[str] | None = None) -> Runner:
    """Builds support4 as a compiled LangGraph ``StateGraph`` with one conditional edge.

    Args:
        trace: If given, each node appends its name here (for ``check_peers`` only).

    Returns:
        A runner calling ``graph.invoke`` once per task.
    """
    # No checkpointer: no persistence, so `durability` is moot (LangGraph warns if set).
    graph = _langgraph_support4_builder(trace).compile()
    return lambda task: graph.invoke({"task": task})


def langgraph_support4_durable(checkpointer: Any, *, trace: list[str] | None = None) -> Runner:
    """Builds support4 compiled with ``checkpointer``, for the durability benchmark.

    Every task runs on a new thread (a fresh history, as a new taskloom run) with
    ``durability="sync"``: each superstep's checkpoint is written before the next starts.

    Args:
        checkpointer: A LangGraph checkpoint saver (``SqliteSaver``, ``PostgresSaver``...).
        trace: If given, each node appends its name here.

    Returns:
        A runner calling ``graph.invoke`` once per task.
    """
    graph = _langgraph_support4_builder(trace).compile(checkpointer=checkpointer)
    threads = itertools.count()

    def run(task: str) -> object:
        config: Any = {"configurable": {"thread_id": f"thread-{next(threads)}"}}
        return graph.invoke({"task": task}, config, durability="sync")

    return run


def langgraph_chain(n: int, *, trace: list[str] | None = None) -> Runner:
    """Builds a line of ``n`` no-op nodes as a compiled LangGraph ``StateGraph``.

    Args:
        n: Number of nodes.
        trace: If given, each node appends its name here (for ``check_peers`` only).

    Returns:
        A runner calling ``graph.invoke`` once per task.
    """
    state_graph, start, end = _langgraph()
    builder = state_graph(FlowState)
    names = [f"s{i:03d}" for i in range(n)]
    for name in names:
        builder.add_node(name, _lg_node(name, trace))
    for src, dst in zip([start, *names], [*names, end], strict=True):
        builder.add_edge(src, dst)
    graph = builder.compile()
    # Each node is one superstep; the default recursion_limit (25) would stop long chains.
    # Any: the RunnableConfig TypedDict lives in langchain_core, not worth a typing dependency.
    config: Any = {"recursion_limit": n + 10}
    return lambda task: graph.invoke({"task": task}, config)


# --------------------------------------------------------------------------- Haystack


@functools.cache
def _haystack() -> tuple[Any, type[Any], type[Any]]:
    """Imports Haystack once and defines the components (re-defining would re-register)."""
    # Documented telemetry opt-out; must precede the first import. Posthog calls are not
    # engine work (and there is no network here).
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    try:
        import haystack  # noqa: PLC0415 - optional peer
    except ImportError as exc:
        raise _missing("haystack-ai") from exc

    @haystack.component
    class Step:
        """No-op step: passes the state dict on with ``last`` (and, for decide, ``action``) set."""

        def __init__(self, name: str, trace: list[str] | None = None) -> None:
            self.name, self.trace = name, trace

        @haystack.component.output_types(state=dict[str, Any])
        def run(self, state: dict[str, Any]) -> dict[str, Any]:
            if self.trace is not None:
                self.trace.append(self.name)
            if self.name == "decide":
                return {"state": {**state, "action": route_for(state["task"]), "last": "decide"}}
            return {"state": {**state, "last": self.name}}

    @haystack.component
    class Decide:
        """Router step: emits the state on exactly one of its ``reply``/``escalate`` sockets."""

        def __init__(self, trace: list[str] | None = None) -> None:
            self.trace = trace

        @haystack.component.output_types(reply=dict[str, Any], escalate=dict[str, Any])
        def run(self, state: dict[str, Any]) -> dict[str, Any]:
            if self.trace is not None:
                self.trace.append("decide")
            action = route_for(state["task"])
            return {action: {**state, "action": action, "last": "decide"}}

    return haystack, Step, Decide


def haystack_support4(
    *, trace: list[str] | None = None, router: Literal["component", "conditional"] = "component"
) -> Runner:
    """Builds the support4 workflow as a Haystack ``Pipeline``.

    Args:
        trace: If given, each step appends its name here (for ``check_peers`` only).
        router: "component" (default): decide is a custom component with two output
            sockets, the leanest idiomatic branch. "conditional": decide is a plain step
            followed by Haystack's Jinja ``ConditionalRouter``, which compiles its
            templates on every run (a slower variant, for reference).

    Returns:
        A runner calling ``Pipeline.run`` once per task.
    """
    haystack, step, decide = _haystack()
    pipe = haystack.Pipeline()
    pipe.add_component("perceive", step("perceive", trace))
    pipe.add_component("reason", step("reason", trace))
    pipe.add_component("execute", step("execute", trace))
    pipe.add_component("escalate", step("escalate", trace))
    pipe.connect("perceive.state", "reason.state")
    if router == "component":
        pipe.add_component("decide", decide(trace))
        pipe.connect("reason.state", "decide.state")
        branch = "decide"
    else:
        from haystack.components.routers import ConditionalRouter  # noqa: PLC0415

        pipe.add_component("decide", step("decide", trace))
        routes: list[Any] = [
            {
                "condition": f"{{{{ state['action'] {op} 'reply' }}}}",
                "output": "state",
                "output_passthrough": True,
                "output_name": target,
                "output_type": dict[str, Any],
            }
            for op, target in (("==", "reply"), ("!=", "escalate"))
        ]
        pipe.add_component("route", ConditionalRouter(routes))
        pipe.connect("reason.state", "decide.state")
        pipe.connect("decide.state", "route.state")
        branch = "route"
    pipe.connect(f"{branch}.reply", "execute.state")
    pipe.connect(f"{branch}.escalate", "escalate.state")
    return lambda task: pipe.run({"perceive": {"state": {"task": task}}})


def haystack_chain(n: int, *, trace: list[str] | None = None) -> Runner:
    """Builds a line of ``n`` no-op components as a Haystack ``Pipeline``.

    ``max_runs_per_component`` (default 100) caps visits of ONE component; each runs once
    here, so long chains are not limited.

    Args:
        n: Number of components.
        trace: If given, each step appends its name here (for ``check_peers`` only).

    Returns:
        A runner calling ``Pipeline.run`` once per task.
    """
    haystack, step, _ = _haystack()
    pipe = haystack.Pipeline()
    names = [f"s{i:03d}" for i in range(n)]
    for name in names:
        pipe.add_component(name, step(name, trace))
    for src, dst in itertools.pairwise(names):
        pipe.connect(f"{src}.state", f"{dst}.state")
    return lambda task: pipe.run({names[0]: {"state": {"task": task}}})


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Peer:
    """Builders of one peer framework, as iterated by the benchmark runner."""

    dist: str
    support4: Callable[..., Runner]
    chain: Callable[..., Runner]


PEERS: dict[str, Peer] = {
    "langgraph": Peer("langgraph", langgraph_support4, langgraph_chain),
    "haystack": Peer("haystack-ai", haystack_support4, haystack_chain),
}


def peer_versions() -> dict[str, str]:
    """Returns the installed version of each peer ("not installed" if absent)."""
    versions = {}
    for name, peer in PEERS.items():
        try:
            versions[name] = metadata.version(peer.dist)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_peers() -> dict[str, dict[str, int]]:
    """Runs every peer workflow once with tracing and checks steps and routing.

    Returns:
        Steps executed per peer and workflow, e.g. ``{"langgraph": {"support4": 4, ...}}``.

    Raises:
        AssertionError: If a workflow ran the wrong steps or took the wrong branch.
    """
    counts: dict[str, dict[str, int]] = {}
    for name, peer in PEERS.items():
        counts[name] = {}
        variants = {"support4": peer.support4}
        if name == "haystack":
            variants["support4_conditional"] = functools.partial(
                peer.support4, router="conditional"
            )
        for label, build in variants.items():
            for task, last in (("reset my password", "execute"), ("URGENT: site down", "escalate")):
                trace: list[str] = []
                build(trace=trace)(task)
                if trace != ["perceive", "reason", "decide", last]:
                    raise AssertionError(f"{name} {label} on {task!r} ran {trace}")
                counts[name][label] = len(trace)
        for n in CHAIN_LENGTHS:
            trace = []
            peer.chain(n, trace=trace)("chain task")
            if trace != [f"s{i:03d}" for i in range(n)]:
                raise AssertionError(f"{name} chain{n} ran {len(trace)} steps: {trace[:5]}...")
            counts[name][f"chain{n}"] = len(trace)
    return counts
