"""Engine behaviour beyond the scenario table: resume, bad input, contracts, cancellation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from agents import Agent, AgentContractError, Role, RunContext
from agents.testing import FakeAgent, FakeInput, FakeOutput, JoinAgent
from knowledge import MemoryRunStore, RunNotFoundError, RunStatus
from workflow import (
    Engine,
    StepFailedError,
    TaskValidationError,
    Workflow,
    WorkflowError,
    state,
)


class Task(BaseModel):
    text: str
    n: int = 0


class SimulatedCrash(BaseException):
    """Not an Exception: the engine does not catch it, like a process dying."""


class CrashOnce(FakeAgent):
    """Crashes the process (simulated) on its first call, then behaves."""

    name = "crash_once"
    crashed = False

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        if not CrashOnce.crashed:
            CrashOnce.crashed = True
            raise SimulatedCrash
        return super().run(input, ctx)


def crashing_workflow(calls: list[tuple[str, str]]) -> Workflow:
    wf = Workflow("crashy", task=Task)
    wf.step("a", FakeAgent(journal=calls)).step("b", FakeAgent(journal=calls))
    wf.step("c", CrashOnce(journal=calls)).step("d", FakeAgent(journal=calls, label="done"))
    return wf.route("a", "b").route("b", "c").route("c", "d")


def test_resume_after_crash_does_not_rerun_finished_steps() -> None:
    calls: list[tuple[str, str]] = []
    CrashOnce.crashed = False
    compiled = crashing_workflow(calls).compile()
    store = MemoryRunStore()

    async def crash() -> None:
        await Engine(store).run(compiled, {"text": "t"})

    with pytest.raises(SimulatedCrash):
        asyncio.run(crash())
    (run_id,) = store.unfinished("crashy")
    assert [r.step for r in store.steps(run_id)] == ["a", "b"]

    async def restart() -> list[Any]:
        async with Engine(store) as engine:  # a new engine, as after a restart
            return await engine.resume_all(compiled)

    (result,) = asyncio.run(restart())
    assert result.ok
    assert result.output is not None
    assert result.output.label == "done"
    assert [step for step, _ in calls] == ["a", "b", "c", "d"]  # a, b not re-run; c crashed first
    assert [r.step for r in store.steps(run_id)] == ["a", "b", "c", "d"]
    assert [r.seq for r in store.steps(run_id)] == [0, 1, 2, 3]
    assert store.unfinished() == []
    assert store.get_run(run_id).status is RunStatus.SUCCEEDED


def test_resume_rebuilds_state_from_serialized_records() -> None:
    """A store that gives back dicts (as a SQL store does) resumes just the same."""
    calls: list[tuple[str, str]] = []
    CrashOnce.crashed = False
    wf = crashing_workflow(calls)
    wf.step("e", FakeAgent(journal=calls), inputs={"text": state("a").label})
    compiled = wf.route("d", "e").compile()
    store = MemoryRunStore()
    with pytest.raises(SimulatedCrash):
        asyncio.run(Engine(store).run(compiled, {"text": "t"}))
    (run_id,) = store.unfinished()
    for record in store.steps(run_id):  # what a serializing store would hand back
        record.output = record.output.model_dump()
    store._runs[run_id].task = {"text": "t"}
    result = asyncio.run(Engine(store).resume(compiled, run_id))
    assert result.ok
    assert calls[-1] == ("e", "ok")  # read from the replayed output of step a


def test_resume_of_finished_run_reruns_nothing() -> None:
    agent = FakeAgent()
    compiled = Workflow("done", task=Task).step("a", agent).compile()
    engine = Engine()
    first = engine.run_sync(compiled, {"text": "x"})
    again = asyncio.run(Engine(engine.store).resume(compiled, first.run_id))
    assert again.ok
    assert again.output == first.output
    assert len(agent.calls) == 1


def test_resume_unknown_run_or_other_workflow() -> None:
    compiled = Workflow("one", task=Task).step("a", FakeAgent()).compile()
    other = Workflow("two", task=Task).step("a", FakeAgent()).compile()
    engine = Engine()
    with pytest.raises(RunNotFoundError, match="Run 'nope' is not in the run store"):
        asyncio.run(engine.resume(compiled, "nope"))
    result = engine.run_sync(compiled, {"text": "x"})
    with pytest.raises(WorkflowError, match="belongs to workflow 'one', not 'two'"):
        asyncio.run(Engine(engine.store).resume(other, result.run_id))


def test_bad_task_is_rejected_before_anything_runs() -> None:
    agent = FakeAgent()
    compiled = Workflow("typed", task=Task).step("a", agent).compile()
    engine = Engine()
    with pytest.raises(TaskValidationError, match="does not match Task") as info:
        engine.run_sync(compiled, {"text": 3, "n": "many"})
    assert "text" in str(info.value)
    assert "n\n" in str(info.value)
    assert agent.calls == []
    assert engine.store.unfinished() == []


def test_one_bad_task_in_a_batch_starts_nothing() -> None:
    agent = FakeAgent()
    compiled = Workflow("typed", task=Task).step("a", agent).compile()
    engine = Engine()
    with pytest.raises(TaskValidationError, match="task #2"):
        asyncio.run(engine.run_many(compiled, [{"text": "a"}, {"text": "b"}, {"n": 1}]))
    assert agent.calls == []


class WrongOutput(Agent[FakeInput, FakeOutput]):
    name = "wrong_output"
    role = Role.EXECUTION

    def __init__(self) -> None:
        self.calls = 0

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        self.calls += 1
        return {"text": "a dict"}  # type: ignore[return-value]


def test_wrong_output_type_fails_the_step_without_retries() -> None:
    agent = WrongOutput()
    compiled = Workflow("w", task=Task).step("a", agent, retry=3).compile()
    result = Engine().run_sync(compiled, {"text": "x"})
    assert isinstance(result.error, StepFailedError)
    assert isinstance(result.error.__cause__, AgentContractError)
    assert "run returned dict, expected FakeOutput" in str(result.error)
    assert agent.calls == 1


def test_invalid_input_built_from_state_fails_the_step() -> None:
    compiled = (
        Workflow("m", task=Task)
        .step("a", FakeAgent(), inputs=lambda s: {"n": "not a number"})
        .compile()
    )
    result = Engine().run_sync(compiled, {"text": "x"})
    assert result.status is RunStatus.FAILED
    assert "ValidationError" in str(result.error)


class Cooperative(Agent[FakeInput, FakeOutput]):
    """Checks ctx.cancelled while it works, as long-running agents should."""

    name = "cooperative"
    role = Role.REASONING
    blocking = True
    stopped = threading.Event()

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        for _ in range(200):
            if ctx.cancelled:
                Cooperative.stopped.set()
                ctx.raise_if_cancelled()
            threading.Event().wait(0.01)
        return FakeOutput()


def test_timeout_cancels_the_context_of_a_threaded_agent() -> None:
    Cooperative.stopped.clear()
    compiled = Workflow("t", task=Task).step("a", Cooperative(), timeout=0.05).compile()
    result = Engine().run_sync(compiled, {"text": "x"})
    assert result.status is RunStatus.FAILED
    assert "took longer than its timeout of 0.05 s on attempt 1" in str(result.error)
    assert Cooperative.stopped.wait(2)


def test_idempotency_keys_are_stable_across_retries_and_differ_per_visit() -> None:
    keys: list[tuple[int, str]] = []

    class Keyed(FakeAgent):
        name = "keyed"

        def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
            keys.append((ctx.attempt, ctx.idempotency_key))
            return super().run(input, ctx)

    compiled = (
        Workflow("k", task=Task)
        .step("a", Keyed(fail_times=1), retry=2, max_visits=2)
        .step("b", FakeAgent())
        .route("a", "a", when=state("a").n < 2)
        .route("a", "b")
        .compile()
    )
    result = Engine().run_sync(compiled, {"text": "x"})
    assert result.ok
    run = result.run_id
    assert keys == [(1, f"{run}:a:1"), (2, f"{run}:a:1"), (1, f"{run}:a:2")]


def test_join_that_never_completes_fails_the_run() -> None:
    wf = Workflow("j", task=Task).step("start", FakeAgent(label="left"))
    wf.step("left", FakeAgent()).step("right", FakeAgent()).step("side", FakeAgent())
    wf.step("merge", JoinAgent(), join=["left", "right"], inputs=lambda s: {"texts": []})
    wf.route("start", ["left", "right"]).route("left", "merge")
    wf.route("right", "merge", when=state("right").label == "never").route("right", "side")
    result = Engine().run_sync(wf.compile(), {"text": "x"})
    assert result.status is RunStatus.FAILED
    assert "joins still waiting: 'merge' got ['left'] of ['left', 'right']" in str(result.error)


class BrokenWarmUp(FakeAgent):
    """An agent whose model cannot load (a missing or tampered artifact)."""

    name = "broken_warm_up"

    def warm_up(self) -> None:
        raise FileNotFoundError("model.safetensors is missing")


def test_a_failed_warm_up_fails_the_step_not_the_engine() -> None:
    wf = Workflow("w", task=Task).step("model", BrokenWarmUp()).step("fallback", FakeAgent())
    compiled = wf.on_error("model", "fallback").compile()
    bare = Workflow("bare", task=Task).step("model", BrokenWarmUp()).compile()

    async def main() -> list[Any]:
        async with Engine() as engine:
            return [
                await engine.run(compiled, {"text": "x"}),
                await engine.run(bare, {"text": "y"}),
            ]

    routed, failed = asyncio.run(main())
    assert routed.ok
    assert routed.outputs["fallback"].label == "ok"
    assert failed.status is RunStatus.FAILED
    expected = "could not warm up: FileNotFoundError: model.safetensors is missing"
    assert f"Agent 'broken_warm_up' of step 'model' {expected}" in str(failed.error)
