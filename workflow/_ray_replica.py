"""What runs inside a Ray actor: one agent replica, and the call context that crosses to it.

This module never imports ray: ``RayExecutor`` wraps ``Replica`` with ``ray.remote`` when it
starts, so the same class is also plain Python to test and to read.

What crosses the process boundary, per replica and per call:

- **The agent** travels as its class and its ``init_params`` (the contract's serializable
  constructor arguments) and is rebuilt in the replica, which then calls ``warm_up()`` once.
  So a model is loaded in each replica, never pickled from the driver, and state set on the
  driver's agent object after construction does not travel.
- **Inputs and outputs**: the step's pydantic models, pickled by Ray.
- **The ``RunContext``** as a ``CallContext``: run id, step, attempt and visit (so
  ``ctx.idempotency_key`` is the same in every replica and on every redelivery). Its
  knowledge handle travels as the URL of its ``Database`` and is reopened once per replica
  and URL; any other handle is pickled as it is (it must be picklable). Cancellation works
  across: when the engine gives up on a call (timeout), the executor cancels the remote
  call and the replica's ``ctx.cancelled`` turns true.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agents import Agent, RunContext

__all__ = ["CallContext", "DatabaseHandle", "Replica"]


@dataclass(frozen=True, slots=True)
class DatabaseHandle:
    """A knowledge-base ``Database`` as it crosses to a replica: its URL only."""

    url: str


@dataclass(frozen=True, slots=True)
class CallContext:
    """The picklable part of a ``RunContext``."""

    run_id: str
    step: str
    attempt: int
    visit: int
    knowledge: Any = None

    @classmethod
    def of(cls, ctx: RunContext, knowledge: Any) -> CallContext:
        """``ctx``'s fields with ``knowledge`` (already converted for transport)."""
        return cls(ctx.run_id, ctx.step, ctx.attempt, ctx.visit, knowledge)


class Replica:
    """One agent in one process; Ray runs it as an asyncio actor.

    Args:
        agent_type: The agent's class (pickled by reference, or by value if defined in
            ``__main__``).
        params: Its ``init_params``.
    """

    def __init__(self, agent_type: type[Agent[Any, Any]], params: dict[str, Any]) -> None:
        self._agent = agent_type(**params)
        self._databases: dict[str, Any] = {}
        self.calls = 0
        self.batch_sizes: list[int] = []

    async def warm_up(self) -> int:
        """Load the agent's model (off the actor's event loop); return this process's id."""
        await asyncio.to_thread(self._agent.warm_up)
        return os.getpid()

    async def call(self, input: BaseModel, context: CallContext, offload: bool) -> Any:
        """``run`` one input; ``offload``: run a sync agent in a worker thread."""
        self.calls += 1
        ctx = self._context(context)
        return await self._invoke(self._agent.run, [input, ctx], [ctx], offload)

    async def call_batch(
        self, inputs: Sequence[BaseModel], contexts: Sequence[CallContext], offload: bool
    ) -> Any:
        """``run_batch`` one group of inputs, gathered by the driver's micro-batcher."""
        self.calls += len(inputs)
        self.batch_sizes.append(len(inputs))
        ctxs = [self._context(c) for c in contexts]
        return await self._invoke(self._agent.run_batch, [list(inputs), ctxs], ctxs, offload)

    def stats(self) -> dict[str, Any]:
        """Calls served, batch sizes and process id (for tests and benchmarks)."""
        return {"pid": os.getpid(), "calls": self.calls, "batch_sizes": list(self.batch_sizes)}

    @staticmethod
    async def _invoke(
        method: Callable[..., Any], args: list[Any], ctxs: list[RunContext], offload: bool
    ) -> Any:
        try:
            if inspect.iscoroutinefunction(method):
                result = await method(*args)
            elif offload:
                result = await asyncio.to_thread(method, *args)
            else:
                result = method(*args)
            if inspect.isawaitable(result):  # the default run_batch of an async agent
                result = await result
            return result
        except asyncio.CancelledError:
            # The driver cancelled the call (its timeout fired): tell a cooperative agent.
            for ctx in ctxs:
                ctx.cancel()
            raise

    def _context(self, context: CallContext) -> RunContext:
        knowledge = context.knowledge
        if isinstance(knowledge, DatabaseHandle):
            knowledge = self._database(knowledge.url)
        return RunContext(
            context.run_id,
            context.step,
            attempt=context.attempt,
            visit=context.visit,
            knowledge=knowledge,
        )

    def _database(self, url: str) -> Any:
        found = self._databases.get(url)
        if found is None:
            from knowledge import Database  # noqa: PLC0415 - only replicas that need one

            found = self._databases[url] = Database(url)
        return found
