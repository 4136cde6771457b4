"""The interface through which the engine records runs, and an in-memory implementation."""

from __future__ import annotations

import collections
import heapq
import threading
import time
from typing import Protocol, runtime_checkable

from knowledge._errors import RunNotFoundError
from knowledge._records import RunRecord, RunStatus, StepRecord

__all__ = ["MemoryRunStore", "RunStore"]

MAX_LIST = 1000  # runs one ``list_runs`` call may return


def check_list_args(limit: int, status: RunStatus | str | None) -> RunStatus | None:
    """Validate ``list_runs`` arguments the same way in every store; return the status."""
    if not 1 <= limit <= MAX_LIST:
        raise ValueError(
            f"list_runs limit must be 1 to {MAX_LIST}, got {limit}. Page through more runs "
            "with before=<the created_at of the last run returned>."
        )
    if status is None or isinstance(status, RunStatus):
        return status
    try:
        return RunStatus(status)
    except ValueError:
        valid = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"Unknown run status '{status}'. Valid: {valid}.") from None


@runtime_checkable
class RunStore(Protocol):
    """Receives every run and step record; the engine resumes runs from what it holds.

    The engine calls ``record_step`` after each step and before starting the next, so a store
    that has persisted the call has a checkpoint the run can resume from.
    """

    def create_run(self, run: RunRecord) -> None:
        """Store a new run (status RUNNING)."""

    def record_step(self, record: StepRecord) -> None:
        """Append one step record to its run."""

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        """Mark a run finished with its final status and error message."""

    def get_run(self, run_id: str) -> RunRecord:
        """Return a run; raise ``RunNotFoundError`` if it is unknown."""

    def steps(self, run_id: str) -> list[StepRecord]:
        """Return a run's step records in execution order."""

    def unfinished(self, workflow: str | None = None) -> list[str]:
        """Return ids of runs still RUNNING (of one workflow, if given), oldest first."""

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[RunRecord]:
        """Return runs newest first (by ``created_at``, then id), filtered by every argument.

        Args:
            workflow: Only runs of this workflow.
            status: Only runs with this status (its value, ``"failed"``, is accepted too;
                an unknown one is a ``ValueError`` listing the valid ones).
            limit: At most this many runs, 1 to 1000 (else ``ValueError``).
            before: Only runs created strictly earlier: pass the last run's ``created_at``
                to get the next page.
        """


class MemoryRunStore:
    """A thread-safe run store in process memory: the default, and for tests.

    It keeps every unfinished run and the ``max_finished`` most recently finished ones,
    forgetting older finished runs, so a long-running engine's memory stays bounded.

    Args:
        max_finished: How many finished runs to keep (None: all of them).
    """

    def __init__(self, *, max_finished: int | None = 10_000) -> None:
        if max_finished is not None and max_finished < 0:
            raise ValueError(f"max_finished must be >= 0 or None, got {max_finished}")
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[str, list[StepRecord]] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._max_finished = max_finished
        self._lock = threading.Lock()

    def create_run(self, run: RunRecord) -> None:
        with self._lock:
            self._runs[run.run_id] = run
            self._steps[run.run_id] = []

    def record_step(self, record: StepRecord) -> None:
        try:
            self._steps[record.run_id].append(record)
        except KeyError:
            raise RunNotFoundError(record.run_id) from None

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        with self._lock:
            old = self.get_run(run_id)
            # A new record, not a mutation: callers may hold the old one.
            self._runs[run_id] = RunRecord(
                old.run_id, old.workflow, old.task, status, old.created_at, time.time(), error
            )
            if old.status is RunStatus.RUNNING:
                self._finished.append(run_id)
            while self._max_finished is not None and len(self._finished) > self._max_finished:
                evicted = self._finished.popleft()
                del self._runs[evicted], self._steps[evicted]

    def get_run(self, run_id: str) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(run_id) from None

    def steps(self, run_id: str) -> list[StepRecord]:
        self.get_run(run_id)
        return list(self._steps[run_id])

    def unfinished(self, workflow: str | None = None) -> list[str]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.created_at)
        return [
            r.run_id
            for r in runs
            if r.status is RunStatus.RUNNING and workflow in (None, r.workflow)
        ]

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[RunRecord]:
        """Return runs newest first; see ``RunStore.list_runs``."""
        wanted = check_list_args(limit, status)
        with self._lock:
            runs = list(self._runs.values())
        chosen = [
            r
            for r in runs
            if workflow in (None, r.workflow)
            and wanted in (None, r.status)
            and (before is None or r.created_at < before)
        ]
        return heapq.nlargest(limit, chosen, key=lambda r: (r.created_at, r.run_id))
