"""The service's state: its workflows, knowledge base, engine, metrics and background runs.

Runs are recorded in the knowledge base (``SqlRunStore``), so a run started with
``wait=false`` that is still going when the service stops is not lost: the next start resumes
it from its last recorded step (``resume_on_start``; turn it off on all but one of several
services sharing a database, or two of them would resume the same run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from knowledge import Database, RunStatus, SqlRunStore
from workflow._compiled import CompiledWorkflow
from workflow._engine import Engine, RunResult
from workflow._executor import Executor, LocalExecutor
from workflow._serve import ServiceConfig
from workflow._service._errors import ApiError
from workflow._service._events import ObservedStore, RunEvents
from workflow._service._jobs import JobLauncher
from workflow._service._metrics import Metrics
from workflow._service._model_watch import ModelWatch

__all__ = ["Service", "service_of"]

_log = logging.getLogger("taskloom.service")


class Service:
    """Everything the endpoints share; one per app."""

    def __init__(
        self,
        workflows: Sequence[CompiledWorkflow],
        database: Database,
        config: ServiceConfig,
        executor: Executor | None = None,
    ) -> None:
        self.workflows = _by_name(workflows)
        self.database = database
        self.config = config
        self.metrics = Metrics(database)
        self.events = RunEvents()
        self.store = ObservedStore(
            SqlRunStore(database),
            self.events,
            on_step=self.metrics.step,
            on_finish=self._finished,
        )
        self._executor = executor
        self.engine = self._new_engine()
        self._closed = False
        self.jobs = JobLauncher(database.url, config.jobs_dir, config.finetune_command)
        self.models = ModelWatch(self.workflows.values(), database, config.model_refresh_s)
        self._watching: asyncio.Task[None] | None = None
        self._active: dict[str, str] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def workflow(self, name: str) -> CompiledWorkflow:
        """The served workflow called ``name``; 404 naming the served ones otherwise."""
        try:
            return self.workflows[name]
        except KeyError:
            served = ", ".join(sorted(self.workflows)) or "(none)"
            raise ApiError(404, f"Unknown workflow '{name}'. Workflows: {served}.") from None

    async def start(self, workflow: CompiledWorkflow, task: Any) -> tuple[str, asyncio.Task[Any]]:
        """Record a run and walk it in the background; it survives its request."""
        run_id, walk = await self.engine.start(workflow, task)
        self._track(run_id, workflow.name, walk)
        return run_id, walk

    def _new_engine(self) -> Engine:
        # Every sync agent off the event loop: one slow agent must not stall other requests.
        executor = self._executor or LocalExecutor(offload_sync=True)
        return Engine(self.store, executor=executor, knowledge=self.database)

    async def startup(self) -> None:
        """Bind run events to the running loop and resume unfinished runs."""
        if self._closed:  # started again after a shutdown: the old executor is closed
            self.engine, self._closed = self._new_engine(), False
        self.events.bind(asyncio.get_running_loop())
        self._watching = asyncio.create_task(self.models.run())
        if not self.config.resume_on_start:
            return
        for workflow in self.workflows.values():
            for run_id in self.store.unfinished(workflow.name):
                _log.info("resuming run %s of workflow %s", run_id, workflow.name)
                walk = asyncio.create_task(self.engine.resume(workflow, run_id))
                self._track(run_id, workflow.name, walk)

    async def shutdown(self) -> None:
        """Give background runs the grace period, then release the engine.

        An executor passed in by the caller is the caller's to close.
        """
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        pending = set(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.shutdown_grace_s)
            for walk in late:
                walk.cancel()  # still RUNNING in the store: the next start resumes it
            if late:
                await asyncio.wait(late)
                _log.warning("left %d runs to resume at the next start", len(late))
        if self._executor is None:
            await self.engine.aclose()
        self._closed = True

    def _track(self, run_id: str, workflow: str, walk: asyncio.Task[RunResult]) -> None:
        self._active[run_id] = workflow
        self.metrics.run_started(workflow)
        self._background.add(walk)
        walk.add_done_callback(self._done)

    def _done(self, walk: asyncio.Task[Any]) -> None:
        self._background.discard(walk)
        if not walk.cancelled() and walk.exception() is not None:
            _log.error("background run failed", exc_info=walk.exception())

    def _finished(self, run_id: str, status: RunStatus) -> None:
        workflow = self._active.pop(run_id, None)
        if workflow is not None:
            self.metrics.run_finished(workflow, status)


def _by_name(workflows: Sequence[CompiledWorkflow]) -> dict[str, CompiledWorkflow]:
    named: dict[str, CompiledWorkflow] = {}
    for workflow in workflows:
        if workflow.name in named:
            raise ValueError(
                f"Two served workflows are named '{workflow.name}'; give each a unique name."
            )
        named[workflow.name] = workflow
    return named


def service_of(request: Request) -> Service:
    """The service of the app handling ``request``."""
    service: Service = request.app.state.taskloom
    return service
