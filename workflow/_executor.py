"""Executors: how the engine invokes an agent. The local asyncio executor is the default.

The engine decides what runs when (routing, retries, timeouts, records); an executor decides
how one call reaches an agent. The local executor picks, once per step:

- ``async def run``: awaited on the event loop;
- sync agent with ``blocking = True``, or a step with a timeout: a worker thread, so a slow
  call cannot stall other runs and a timeout can fire;
- other sync agents: called inline (a thread hop would cost more than they do), unless
  ``offload_sync`` (the HTTP service) sends them to a thread too;
- steps with ``batch=``: through a ``MicroBatcher`` into ``run_batch``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel

from agents import AgentError, RunContext
from workflow._batcher import MicroBatcher
from workflow._compiled import CompiledStep, CompiledWorkflow

__all__ = ["Executor", "Invoker", "LocalExecutor", "PrepareOnce", "step_batcher"]

Invoker = Callable[[BaseModel, RunContext], Awaitable[Any]]


class Executor(Protocol):
    """How agent calls are carried out (in process, or on a cluster)."""

    async def prepare(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        """Warm up the workflow's agents; return one invoker per step name."""
        ...

    async def aclose(self) -> None:
        """Release threads, batchers and remote resources."""
        ...


def step_batcher(step: CompiledStep, call: Callable[..., Awaitable[Any]]) -> MicroBatcher:
    """The micro-batcher of a ``batch=`` step, sending its groups to ``call``."""
    assert step.spec.batch is not None
    return MicroBatcher(
        call,
        max_size=step.spec.batch.max_size,
        max_wait_s=step.spec.batch.max_wait_s,
        agent=step.agent_name,
    )


class PrepareOnce:
    """Prepares each workflow once, however many first runs ask for it at the same time.

    Concurrent first runs must not warm agents up twice or get separate batchers (which
    would defeat batching across runs): they all await one shared task per workflow.
    """

    def __init__(self, prepare: Callable[[CompiledWorkflow], Awaitable[dict[str, Invoker]]]):
        self._prepare = prepare
        self._tasks: dict[int, tuple[CompiledWorkflow, asyncio.Future[dict[str, Invoker]]]] = {}

    async def __call__(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        found = self._tasks.get(id(workflow))
        if found is None or found[0] is not workflow:
            task = asyncio.ensure_future(self._prepare(workflow))
            found = self._tasks[id(workflow)] = (workflow, task)
        return await found[1]

    def forget(self) -> None:
        """Prepare every workflow afresh from now on (after the executor was closed)."""
        self._tasks = {}


class LocalExecutor:
    """Runs agents in this process, on the event loop or in a bounded thread pool.

    Args:
        max_threads: The pool's size.
        offload_sync: Run every sync agent in the pool, not only blocking ones: for a
            server, where one slow sync agent inline would stall every other request.
    """

    def __init__(self, *, max_threads: int = 32, offload_sync: bool = False) -> None:
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="taskloom-agent")
        self._offload_sync = offload_sync
        self._prepare_once = PrepareOnce(self._prepare)
        self.batchers: dict[str, MicroBatcher] = {}

    async def prepare(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        return await self._prepare_once(workflow)

    async def _prepare(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        loop = asyncio.get_running_loop()
        failed: dict[int, Exception] = {}
        warmed: set[int] = set()
        for step in workflow.steps.values():
            if id(step.agent) not in warmed:
                warmed.add(id(step.agent))
                try:
                    await loop.run_in_executor(self._pool, step.agent.warm_up)
                except Exception as exc:  # e.g. a missing or tampered model artifact
                    failed[id(step.agent)] = exc
        return {
            name: self._failing(step, failed[id(step.agent)])
            if id(step.agent) in failed
            else self._invoker(step)
            for name, step in workflow.steps.items()
        }

    @staticmethod
    def _failing(step: CompiledStep, cause: Exception) -> Invoker:
        """An invoker for an agent whose warm-up failed: each call fails its step.

        The run then takes the step's error route (or fails) instead of the engine
        crashing; other steps and other workflows keep working.
        """
        message = (
            f"Agent '{step.agent_name}' of step '{step.name}' could not warm up: "
            f"{type(cause).__name__}: {cause}"
        )

        async def fail(input: BaseModel, ctx: RunContext) -> Any:
            raise AgentError(message) from cause

        return fail

    def _invoker(self, step: CompiledStep) -> Invoker:
        agent = step.agent
        offload = self._offload_sync or agent.blocking or step.spec.timeout_s is not None
        if step.spec.batch is not None:
            batcher = step_batcher(step, self._call(agent.run_batch, offload, awaits=True))
            self.batchers[step.name] = batcher
            return batcher.submit
        return self._call(agent.run, offload)

    def _call(
        self, method: Callable[..., Any], offload: bool, *, awaits: bool = False
    ) -> Callable[..., Awaitable[Any]]:
        """Wrap a sync or async agent method as a coroutine function.

        ``awaits``: the method is sync but may return an awaitable (the default
        ``run_batch`` of an agent whose ``run`` is async).
        """
        if inspect.iscoroutinefunction(method):
            return method
        pool = self._pool

        async def call(*args: Any) -> Any:
            if offload:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(pool, functools.partial(method, *args))
            else:
                result = method(*args)
            if awaits and inspect.isawaitable(result):
                result = await result
            return result

        if offload or awaits:
            return call

        async def inline(*args: Any) -> Any:
            return method(*args)

        return inline

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
