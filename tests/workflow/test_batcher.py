"""The micro-batcher: grouping, size cap, and errors delivered to every waiter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from agents import AgentContractError, RunContext
from agents.testing import AsyncFakeAgent, FakeAgent
from knowledge import RunStatus
from workflow import Batch, Engine, Workflow
from workflow._batcher import MicroBatcher


class Task(BaseModel):
    text: str


def ctx(i: int) -> RunContext:
    return RunContext(f"run{i}", "step")


async def gather_through(batcher: MicroBatcher, n: int) -> list[Any]:
    return await asyncio.gather(
        *(batcher.submit(i, ctx(i)) for i in range(n)), return_exceptions=True
    )


def test_batches_are_capped_and_keep_order() -> None:
    async def double(items: list[int], ctxs: list[RunContext]) -> list[int]:
        return [2 * i for i in items]

    batcher = MicroBatcher(double, max_size=4, max_wait_s=0.01, agent="double")
    assert asyncio.run(gather_through(batcher, 10)) == [2 * i for i in range(10)]
    assert batcher.batch_sizes == [4, 4, 2]


def test_an_error_reaches_every_item_of_its_batch() -> None:
    async def boom(items: list[int], ctxs: list[RunContext]) -> list[int]:
        raise RuntimeError("model fell over")

    batcher = MicroBatcher(boom, max_size=8, max_wait_s=0.0, agent="boom")
    results = asyncio.run(gather_through(batcher, 3))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert batcher.batch_sizes == [3]


def test_a_batch_of_the_wrong_length_is_a_contract_error() -> None:
    async def short(items: list[int], ctxs: list[RunContext]) -> list[int]:
        return items[:-1]

    batcher = MicroBatcher(short, max_size=8, max_wait_s=0.0, agent="short")
    results = asyncio.run(gather_through(batcher, 3))
    assert all(isinstance(r, AgentContractError) for r in results)
    assert "run_batch returned 2 outputs for 3 inputs" in str(results[0])


@pytest.mark.parametrize("agent_type", [FakeAgent, AsyncFakeAgent])
def test_batched_step_failures_follow_each_runs_retry_policy(agent_type: type[Any]) -> None:
    agent = agent_type(echo=True, fail_times=2)
    wf = Workflow("b", task=Task).step("s", agent, batch=Batch(max_size=8), retry=2)
    compiled = wf.compile()

    async def main() -> list[Any]:
        async with Engine() as engine:
            return await engine.run_many(compiled, [{"text": f"t{i}"} for i in range(4)])

    results = asyncio.run(main())
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 4
    assert [r.output.label for r in results] == ["t0", "t1", "t2", "t3"]
    # The batch raised on its first items, so all four runs retried, together again.
    assert agent.batch_sizes == [4, 4]
