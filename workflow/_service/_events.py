"""Run events for server-sent streams: a run store that wakes whoever watches a run.

``ObservedStore`` wraps the service's run store; after each step record and run finish it
wakes the run's watchers, which then read the new records from the store. Reading from the
store rather than passing records along keeps one source of truth, and a watcher that misses
a wake-up (a run driven by another process writing to the same database) still catches up on
its next poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from knowledge import RunRecord, RunStatus, RunStore, StepRecord

__all__ = ["ObservedStore", "RunEvents"]


class RunEvents:
    """Per-run wake-ups, safe to trigger from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver wake-ups on ``loop`` (the server's event loop)."""
        self._loop = loop

    @contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``run_id`` changes; register before reading the store."""
        event = asyncio.Event()
        self._watchers.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[run_id]

    def notify(self, run_id: str) -> None:
        """Wake the run's watchers (no-op when nobody watches)."""
        if run_id in self._watchers and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, run_id)

    def _wake(self, run_id: str) -> None:
        for event in self._watchers.get(run_id, ()):
            event.set()


class ObservedStore:
    """A ``RunStore`` that notifies ``events`` (and ``on_step``/``on_finish``) after writes."""

    def __init__(
        self,
        store: RunStore,
        events: RunEvents,
        *,
        on_step: Callable[[StepRecord], None] = lambda record: None,
        on_finish: Callable[[str, RunStatus], None] = lambda run_id, status: None,
    ) -> None:
        self.inner = store
        self.events = events
        self._on_step = on_step
        self._on_finish = on_finish

    def create_run(self, run: RunRecord) -> None:
        self.inner.create_run(run)

    def record_step(self, record: StepRecord) -> None:
        self.inner.record_step(record)
        self._on_step(record)
        self.events.notify(record.run_id)

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        self.inner.finish_run(run_id, status, error)
        self._on_finish(run_id, status)
        self.events.notify(run_id)

    def get_run(self, run_id: str) -> RunRecord:
        return self.inner.get_run(run_id)

    def steps(self, run_id: str) -> list[StepRecord]:
        return self.inner.steps(run_id)

    def unfinished(self, workflow: str | None = None) -> list[str]:
        return self.inner.unfinished(workflow)

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[RunRecord]:
        return self.inner.list_runs(workflow=workflow, status=status, limit=limit, before=before)
