"""Micro-batching: calls from concurrent runs to one step are grouped into ``run_batch``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agents import AgentContractError, RunContext

__all__ = ["MicroBatcher"]

BatchCall = Callable[[list[Any], list[RunContext]], Awaitable[list[Any]]]


class MicroBatcher:
    """Collects submitted items and calls ``call`` with up to ``max_size`` of them at once.

    A batch is sent when it is full or ``max_wait_s`` after its first item arrived,
    whichever comes first. If the call raises, every item of that batch gets the error (each
    run then applies its own retry policy). Items whose caller gave up (timeout) are still
    computed with their batch but their result is dropped.
    """

    def __init__(self, call: BatchCall, *, max_size: int, max_wait_s: float, agent: str) -> None:
        self._call = call
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._agent = agent
        self._pending: list[tuple[Any, RunContext, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.batch_sizes: list[int] = []

    async def submit(self, item: Any, ctx: RunContext) -> Any:
        """Queue one item and wait for its output."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, ctx, future))
        if len(self._pending) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_size],
                self._pending[self._max_size :],
            )
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Any, RunContext, asyncio.Future[Any]]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            outputs = await self._call([b[0] for b in batch], [b[1] for b in batch])
            if len(outputs) != len(batch):
                raise AgentContractError(
                    self._agent,
                    [f"run_batch returned {len(outputs)} outputs for {len(batch)} inputs"],
                )
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)

    async def aclose(self) -> None:
        """Send what is pending and wait for batches in flight."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
