"""The engine's scenario table: workflow shapes, checking outputs, call order and routes.

The table runs on each executor: the local one, and Ray (marked ``ray``), where the fakes
live in other processes and note their calls in a ``FileJournal`` instead of a list.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.testing import AsyncFakeAgent, FakeAgent, FakeOutput, JoinAgent
from knowledge import RunStatus
from workflow import (
    Engine,
    LoopBoundError,
    NoRouteError,
    Retry,
    RunState,
    StepFailedError,
    StepTimeoutError,
    Workflow,
    failure,
    state,
    task,
)


class Task(BaseModel):
    text: str
    n: int = 0


Journal = list[tuple[str, str]]


class FileJournal:
    """A journal that fakes in any process append to: one JSON line per call.

    Each call is one small ``O_APPEND`` write, so lines from several processes never mix,
    and a call is noted before its step returns, so the file's order is the call order.
    """

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def append(self, entry: tuple[str, str]) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")

    def __iter__(self) -> Any:
        if not Path(self.path).exists():
            return iter(())
        lines = Path(self.path).read_text(encoding="utf-8").splitlines()
        return iter([tuple(json.loads(line)) for line in lines])


@dataclass
class Scenario:
    """One workflow shape and what running it on ``task`` must produce."""

    id: str
    build: Callable[[Journal], Workflow]
    calls: list[str]  # steps in the order agents were called (journal)
    routes: list[tuple[str, str, tuple[str, ...]]]  # (step, decision kind, targets) per record
    status: RunStatus = RunStatus.SUCCEEDED
    output: dict[str, Any] = field(default_factory=dict)  # subset of the final output
    error: type[Exception] | None = None
    task: dict[str, Any] = field(default_factory=lambda: {"text": "hello"})
    # Fan-out branches run concurrently where agents are remote: order fixed only locally.
    concurrent: bool = False


def fake(journal: Journal, **kwargs: Any) -> FakeAgent:
    return FakeAgent(journal=journal, **kwargs)


def linear(j: Journal, n: int) -> Workflow:
    wf = Workflow("linear", task=Task)
    names = [f"s{i}" for i in range(n)]
    for name in names:
        wf.step(name, fake(j, label=name))
    for a, b in itertools.pairwise(names):
        wf.route(a, b)
    return wf


def branch(j: Journal, label: str) -> Workflow:
    wf = Workflow("branch", task=Task)
    wf.step("decide", fake(j, label=label))
    wf.step("reply", fake(j, label="replied")).step("escalate", fake(j, label="escalated"))
    wf.route("decide", "reply", when=state("decide").label == "reply")
    wf.route("decide", "escalate")
    return wf


def combined_rule(j: Journal, label: str, score: float) -> Workflow:
    wf = Workflow("combined", task=Task)
    wf.step("check", fake(j, label=label, score=score))
    wf.step("auto", fake(j)).step("human", fake(j))
    rule = (state("check").label.is_in(["a", "b"]) & ~(state("check").score < 0.5)) | (
        task.text.contains("vip")
    )
    wf.route("check", "auto", when=rule).route("check", "human")
    return wf


def is_vip(s: RunState) -> bool:
    return s.task.text.startswith("vip")  # type: ignore[attr-defined, no-any-return]


def callable_rule(j: Journal) -> Workflow:
    wf = Workflow("callable", task=Task)
    wf.step("check", fake(j)).step("vip", fake(j)).step("normal", fake(j))
    return wf.route("check", "vip", when=is_vip).route("check", "normal")


def branch_texts(s: RunState) -> dict[str, list[str]]:
    return {"texts": [s.outputs["left"].text, s.outputs["right"].text]}  # type: ignore[attr-defined]


def fan_out_join(j: Journal) -> Workflow:
    wf = Workflow("diamond", task=Task)
    wf.step("start", fake(j, label="go"))
    wf.step("left", fake(j), inputs={"text": task.text})
    wf.step("right", fake(j), inputs={"text": state("start").label})
    wf.step("merge", JoinAgent(), join=["left", "right"], inputs=branch_texts)
    wf.step("finish", fake(j, label="done"), inputs={"text": state("merge").text})
    wf.route("start", ["left", "right"]).route("left", "merge").route("right", "merge")
    return wf.route("merge", "finish")


def fan_out_terminals(j: Journal) -> Workflow:
    wf = Workflow("fan", task=Task)
    wf.step("start", fake(j)).step("a", fake(j)).step("b", fake(j)).step("c", fake(j))
    return wf.route("start", ["a", "b"]).route("a", "c")


def loop_input(s: RunState) -> dict[str, Any]:
    previous = s.outputs.get("again")
    return {"text": "t", "n": previous.n if previous else 0}  # type: ignore[attr-defined]


def bounded_loop(j: Journal, bound: int, exit_route: bool = True) -> Workflow:
    wf = Workflow("loop", task=Task)
    wf.step("work", fake(j), max_visits=bound, inputs=loop_input)
    wf.step("again", fake(j), inputs={"text": task.text, "n": state("work").n})
    wf.step("done", fake(j, label="done"))
    wf.route("work", "again")
    wf.route("again", "work", when=state("again").n < 10)
    if exit_route:
        wf.route("again", "done")
    else:
        wf.route("again", "done", when=state("again").n >= 10)
    return wf


def error_route(j: Journal, **agent: Any) -> Workflow:
    wf = Workflow("errors", task=Task)
    timeout = 0.05 if "delay_s" in agent else None
    wf.step("risky", fake(j, **agent), retry=Retry(max_attempts=2), timeout=timeout)
    wf.step("ok", fake(j)).step("handler", fake(j), inputs={"text": failure("risky").error_type})
    return wf.route("risky", "ok").on_error("risky", "handler")


def retrying(j: Journal, fail_times: int, attempts: int) -> Workflow:
    wf = Workflow("retry", task=Task)
    wf.step("flaky", fake(j, fail_times=fail_times), retry=Retry(attempts, backoff_s=0.001))
    return wf.step("after", fake(j)).route("flaky", "after")


def timing_out(j: Journal, agent: FakeAgent) -> Workflow:
    wf = Workflow("timeout", task=Task)
    wf.step("slow", agent, timeout=0.05).step("after", fake(j))
    return wf.route("slow", "after")


def no_route(j: Journal) -> Workflow:
    wf = Workflow("noroute", task=Task)
    wf.step("decide", fake(j, label="other")).step("reply", fake(j))
    return wf.route("decide", "reply", when=state("decide").label == "reply")


def async_chain(j: Journal) -> Workflow:
    wf = Workflow("async", task=Task)
    wf.step("a", AsyncFakeAgent(journal=j, label="x"), inputs={"text": task.text})
    wf.step("b", fake(j), inputs={"text": state("a").label})
    return wf.route("a", "b")


def mapped_outputs(j: Journal) -> Workflow:
    wf = Workflow("mapped", task=Task)
    wf.step("first", fake(j, label="from-first"))
    wf.step("second", fake(j, echo=True), inputs={"text": state("first").label, "n": 41})
    return wf.route("first", "second")


R = RunStatus
SCENARIOS = [
    Scenario(
        "single-step", lambda j: linear(j, 1), ["s0"], [("s0", "end", ())], output={"label": "s0"}
    ),
    Scenario(
        "linear-5",
        lambda j: linear(j, 5),
        ["s0", "s1", "s2", "s3", "s4"],
        [
            ("s0", "default", ("s1",)),
            ("s1", "default", ("s2",)),
            ("s2", "default", ("s3",)),
            ("s3", "default", ("s4",)),
            ("s4", "end", ()),
        ],
        output={"label": "s4"},
    ),
    Scenario(
        "branch-rule-fires",
        lambda j: branch(j, "reply"),
        ["decide", "reply"],
        [("decide", "rule", ("reply",)), ("reply", "end", ())],
        output={"label": "replied"},
    ),
    Scenario(
        "branch-default-route",
        lambda j: branch(j, "unsure"),
        ["decide", "escalate"],
        [("decide", "default", ("escalate",)), ("escalate", "end", ())],
        output={"label": "escalated"},
    ),
    Scenario(
        "combined-rule-holds",
        lambda j: combined_rule(j, "a", 0.9),
        ["check", "auto"],
        [("check", "rule", ("auto",)), ("auto", "end", ())],
    ),
    Scenario(
        "combined-rule-negation-fails",
        lambda j: combined_rule(j, "a", 0.1),
        ["check", "human"],
        [("check", "default", ("human",)), ("human", "end", ())],
    ),
    Scenario(
        "combined-rule-or-branch",
        lambda j: combined_rule(j, "z", 0.1),
        ["check", "auto"],
        [("check", "rule", ("auto",)), ("auto", "end", ())],
        task={"text": "a vip"},
    ),
    Scenario(
        "callable-rule",
        callable_rule,
        ["check", "vip"],
        [("check", "rule", ("vip",)), ("vip", "end", ())],
        task={"text": "vip client"},
    ),
    Scenario(
        "fan-out-and-join",
        fan_out_join,
        ["start", "left", "right", "finish"],
        [
            ("start", "default", ("left", "right")),
            ("left", "default", ("merge",)),
            ("right", "default", ("merge",)),
            ("merge", "default", ("finish",)),
            ("finish", "end", ()),
        ],
        output={"text": "hello+go", "label": "done"},
        concurrent=True,
    ),
    Scenario(
        "fan-out-to-terminals",
        fan_out_terminals,
        ["start", "a", "c", "b"],
        [
            ("start", "default", ("a", "b")),
            ("a", "default", ("c",)),
            ("c", "end", ()),
            ("b", "end", ()),
        ],
        concurrent=True,
    ),
    Scenario(
        "bounded-loop-exits-by-rule",
        lambda j: bounded_loop(j, 10),
        ["work", "again"] * 5 + ["done"],
        [("work", "default", ("again",)), ("again", "rule", ("work",))] * 4
        + [("work", "default", ("again",)), ("again", "default", ("done",)), ("done", "end", ())],
        task={"text": "t", "n": 0},
        output={"label": "done"},
    ),
    Scenario(
        "loop-bound-hit-takes-exit",
        lambda j: bounded_loop(j, 2),
        ["work", "again", "work", "again", "done"],
        [
            ("work", "default", ("again",)),
            ("again", "rule", ("work",)),
            ("work", "default", ("again",)),
            ("again", "default", ("done",)),
            ("done", "end", ()),
        ],
        task={"text": "t", "n": 0},
    ),
    Scenario(
        "loop-bound-hit-without-exit",
        lambda j: bounded_loop(j, 2, exit_route=False),
        ["work", "again", "work", "again"],
        [
            ("work", "default", ("again",)),
            ("again", "rule", ("work",)),
            ("work", "default", ("again",)),
            ("again", "fail", ()),
        ],
        status=R.FAILED,
        error=LoopBoundError,
        task={"text": "t", "n": 0},
    ),
    Scenario(
        "error-route-after-retries",
        lambda j: error_route(j, fail_times=5),
        ["risky", "risky", "handler"],
        [("risky", "error", ("handler",)), ("handler", "end", ())],
        output={"text": "RuntimeError"},
    ),
    Scenario(
        "error-route-not-needed",
        lambda j: error_route(j, fail_times=1),
        ["risky", "risky", "ok"],
        [("risky", "default", ("ok",)), ("ok", "end", ())],
    ),
    Scenario(
        "retry-then-success",
        lambda j: retrying(j, 2, 3),
        ["flaky"] * 3 + ["after"],
        [("flaky", "default", ("after",)), ("after", "end", ())],
    ),
    Scenario(
        "retries-exhausted",
        lambda j: retrying(j, 5, 2),
        ["flaky", "flaky"],
        [("flaky", "fail", ())],
        status=R.FAILED,
        error=StepFailedError,
    ),
    Scenario(
        "sync-timeout-fails-run",
        lambda j: timing_out(j, fake(j, delay_s=0.5)),
        ["slow"],
        [("slow", "fail", ())],
        status=R.FAILED,
        error=StepTimeoutError,
    ),
    Scenario(
        "async-timeout-fails-run",
        lambda j: timing_out(j, AsyncFakeAgent(journal=j, delay_s=0.5)),
        ["slow"],
        [("slow", "fail", ())],
        status=R.FAILED,
        error=StepTimeoutError,
    ),
    Scenario(
        "timeout-to-error-route",
        lambda j: error_route(j, delay_s=0.5),
        ["risky", "risky", "handler"],
        [("risky", "error", ("handler",)), ("handler", "end", ())],
        output={"text": "StepTimeoutError"},
    ),
    Scenario(
        "no-route-matches",
        no_route,
        ["decide"],
        [("decide", "fail", ())],
        status=R.FAILED,
        error=NoRouteError,
    ),
    Scenario(
        "async-agent-chain",
        async_chain,
        ["a", "b"],
        [("a", "default", ("b",)), ("b", "end", ())],
        output={"text": "x"},
    ),
    Scenario(
        "input-mapped-from-outputs",
        mapped_outputs,
        ["first", "second"],
        [("first", "default", ("second",)), ("second", "end", ())],
        output={"label": "from-first", "n": 42},
    ),
]


@dataclass
class Runner:
    """An executor under test: the journal its fakes can write to, and a new engine."""

    name: str
    journal: Callable[[], Any]
    engine: Callable[[], Engine]


def _ray_runner(request: pytest.FixtureRequest, tmp_path: Path) -> Runner:
    ray = request.getfixturevalue("ray_cluster")  # tests/workflow/conftest.py
    from workflow import RayExecutor  # noqa: PLC0415

    # FileJournal is defined here, in a module Ray workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return Runner(
        "ray",
        lambda: FileJournal(tmp_path / "journal.jsonl"),
        lambda: Engine(executor=RayExecutor(num_cpus_per_replica=0)),
    )


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Runner:
    """Each executor the scenario table runs on."""
    if request.param == "ray":
        return _ray_runner(request, tmp_path)
    return Runner("local", list, Engine)


def _in_order(items: list[Any], scenario: Scenario, runner: Runner) -> list[Any]:
    """``items``, sorted where the executor runs concurrent branches in no fixed order."""
    return sorted(items) if scenario.concurrent and runner.name != "local" else items


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(scenario: Scenario, runner: Runner) -> None:
    journal = runner.journal()
    compiled = scenario.build(journal).compile()
    engine = runner.engine()
    result = engine.run_sync(compiled, scenario.task)

    assert result.status is scenario.status, result.error
    calls = [step for step, _ in journal]
    assert _in_order(calls, scenario, runner) == _in_order(scenario.calls, scenario, runner)
    records = engine.store.steps(result.run_id)
    routes = [(r.step, r.decision.kind, r.decision.targets) for r in records]
    assert _in_order(routes, scenario, runner) == _in_order(scenario.routes, scenario, runner)
    assert records[0].step == scenario.routes[0][0]
    # Whatever the interleaving, each step ran after a recorded step routed to it.
    assert all(
        any(r.step in before.decision.targets for before in records[:i])
        for i, r in enumerate(records[1:], start=1)
    )
    assert [r.seq for r in records] == list(range(len(records)))
    assert engine.store.get_run(result.run_id).status is scenario.status
    if scenario.error is None:
        assert result.error is None
        assert result.output is not None
        assert result.output.model_dump() | scenario.output == result.output.model_dump()
    else:
        assert isinstance(result.error, scenario.error)
        assert result.error.run_id == result.run_id
        with pytest.raises(scenario.error):
            result.raise_for_status()


def test_scenario_table_covers_enough_shapes() -> None:
    assert len(SCENARIOS) >= 20


def test_records_explain_each_decision() -> None:
    engine = Engine()
    result = engine.run_sync(branch([], "reply").compile(), {"text": "x"})
    first = engine.store.steps(result.run_id)[0]
    assert first.decision.rule == "state('decide').label == 'reply'"
    assert first.decision.reason == "rule held: state('decide').label == 'reply'"
    assert first.input.text == "x"
    assert isinstance(first.output, FakeOutput)
    assert first.duration_s >= 0
    assert first.attempts == 1


def test_loop_bound_skip_is_explained() -> None:
    engine = Engine()
    result = engine.run_sync(bounded_loop([], 2).compile(), {"text": "t"})
    last_again = [r for r in engine.store.steps(result.run_id) if r.step == "again"][-1]
    assert "route 0 to work skipped: max_visits hit" in last_again.decision.reason
    assert [r.visit for r in engine.store.steps(result.run_id) if r.step == "work"] == [1, 2]


def test_failure_record_keeps_the_error() -> None:
    engine = Engine()
    result = engine.run_sync(retrying([], 5, 2).compile(), {"text": "t"})
    (record,) = engine.store.steps(result.run_id)
    assert record.error is not None
    assert record.error.attempts == 2
    assert record.error.message == "scripted failure 2 of 5"
    assert "failed after 2 attempts: RuntimeError" in str(result.error)
    assert isinstance(result.error.__cause__, RuntimeError)


def test_concurrent_runs_follow_their_own_routes() -> None:
    wf = Workflow("concurrent", task=Task)
    wf.step("classify", FakeAgent(echo=True, delay_s=0.01), timeout=5)
    wf.step("reply", FakeAgent()).step("escalate", FakeAgent())
    wf.route("classify", "reply", when=state("classify").label == "reply")
    wf.route("classify", "escalate")
    compiled = wf.compile()
    tasks = [{"text": "reply" if i % 3 else "other"} for i in range(30)]

    async def main() -> list[Any]:
        async with Engine() as engine:
            results = await engine.run_many(compiled, tasks, concurrency=10)
            return [(r, engine.store.steps(r.run_id)) for r in results]

    for (result, records), item in zip(asyncio.run(main()), tasks, strict=True):
        assert result.ok
        expected = "reply" if item["text"] == "reply" else "escalate"
        assert [r.step for r in records] == ["classify", expected]
        assert result.outputs["classify"].text == item["text"]


def test_batching_groups_calls_across_runs() -> None:
    agent = FakeAgent(echo=True)
    wf = Workflow("batched", task=Task)
    wf.step("classify", agent, batch=True).step("after", FakeAgent())
    compiled = wf.route("classify", "after").compile()

    async def main() -> list[Any]:
        async with Engine() as engine:
            return await engine.run_many(compiled, [{"text": f"t{i}"} for i in range(20)])

    results = asyncio.run(main())
    assert all(r.ok for r in results)
    assert [r.outputs["classify"].label for r in results] == [f"t{i}" for i in range(20)]
    assert sum(agent.batch_sizes) == 20
    assert max(agent.batch_sizes) > 1  # concurrent runs shared a run_batch call


def test_agents_are_warmed_up_once_per_engine() -> None:
    agent = FakeAgent()
    compiled = Workflow("warm", task=Task).step("only", agent).compile()

    async def main() -> None:
        async with Engine() as engine:
            for _ in range(3):
                await engine.run(compiled, {"text": "x"})

    asyncio.run(main())
    assert agent.warm_ups == 1
