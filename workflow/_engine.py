"""The engine: runs compiled workflows on asyncio, records every step, resumes after crashes.

One run walks the graph from the entry step. After each step the engine evaluates the step's
routes in declared order (precompiled closures, so a step costs O(out-degree)), records a
``StepRecord`` with the fired route and why, and only then starts the next step; a fan-out
walks each branch concurrently and a join step waits for every branch it names. A failing
step is retried per its ``Retry`` policy, then takes its error route, or fails the run.
Because every step is recorded before the next starts, ``resume`` rebuilds a run's state
from its records and continues from where it stopped, without re-running finished steps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agents import AgentContractError, RunContext
from knowledge import (
    MemoryRunStore,
    RouteDecision,
    RunRecord,
    RunStatus,
    RunStore,
    StepFailure,
    StepRecord,
    StepStatus,
)
from workflow._compiled import CompiledStep, CompiledWorkflow
from workflow._errors import (
    LoopBoundError,
    NoRouteError,
    RuleError,
    RunError,
    StepFailedError,
    StepTimeoutError,
    TaskValidationError,
    WorkflowError,
)
from workflow._executor import Executor, Invoker, LocalExecutor
from workflow._state import RunState

__all__ = ["Engine", "RunResult"]

_log = logging.getLogger("taskloom.engine")
_END = RouteDecision("end", None, (), None, "terminal step")


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    Attributes:
        run_id: The run's id (look its records up in the store).
        status: SUCCEEDED or FAILED.
        outputs: The latest output of every step that ran.
        output: The output of the last terminal step reached, if any.
        error: Why the run failed, or None.
    """

    run_id: str
    workflow: str
    status: RunStatus
    outputs: Mapping[str, BaseModel]
    output: BaseModel | None
    error: RunError | None

    @property
    def ok(self) -> bool:
        """True if the run succeeded."""
        return self.status is RunStatus.SUCCEEDED

    def raise_for_status(self) -> None:
        """Raise the run's error if it failed."""
        if self.error is not None:
            raise self.error


class _Run:
    """Mutable bookkeeping of one run in progress."""

    __slots__ = (
        "arrivals",
        "error",
        "id",
        "invokers",
        "last_output",
        "seq",
        "state",
        "visits",
        "workflow",
    )

    def __init__(
        self, run_id: str, workflow: CompiledWorkflow, task: BaseModel, invokers: dict[str, Invoker]
    ) -> None:
        self.id = run_id
        self.workflow = workflow
        self.invokers = invokers
        self.state = RunState(task)
        self.visits: dict[str, int] = {}
        self.arrivals: dict[str, set[str]] = {}
        self.seq = 0
        self.error: RunError | None = None
        self.last_output: BaseModel | None = None


class Engine:
    """Runs compiled workflows.

    Args:
        store: Where run and step records go (default: a new ``MemoryRunStore``).
        executor: How agents are invoked (default: ``LocalExecutor``).
        knowledge: The knowledge-base handle agents receive as ``ctx.knowledge``.
    """

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        executor: Executor | None = None,
        knowledge: Any = None,
    ) -> None:
        self.store: RunStore = store if store is not None else MemoryRunStore()
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        self.knowledge = knowledge
        self._ready: dict[int, tuple[CompiledWorkflow, dict[str, Invoker]]] = {}

    async def run(self, workflow: CompiledWorkflow, task: Any) -> RunResult:
        """Run ``workflow`` on ``task`` (a task-model instance or a dict) to the end.

        Raises:
            TaskValidationError: ``task`` does not match the workflow's task type; nothing
                was run or recorded.
        """
        model = workflow.validate_task(task)
        return await self._start(workflow, model)

    async def run_many(
        self, workflow: CompiledWorkflow, tasks: Iterable[Any], *, concurrency: int | None = None
    ) -> list[RunResult]:
        """Run many tasks concurrently; results in task order.

        Every task is validated before any run starts, so one bad task starts nothing.
        """
        models = []
        for index, item in enumerate(tasks):
            try:
                models.append(workflow.validate_task(item))
            except TaskValidationError as exc:
                raise TaskValidationError(f"task #{index}: {exc}") from exc
        if concurrency is None:
            return list(await asyncio.gather(*(self._start(workflow, m) for m in models)))
        gate = asyncio.Semaphore(concurrency)

        async def bounded(model: BaseModel) -> RunResult:
            async with gate:
                return await self._start(workflow, model)

        return list(await asyncio.gather(*(bounded(m) for m in models)))

    async def start(
        self, workflow: CompiledWorkflow, task: Any
    ) -> tuple[str, asyncio.Task[RunResult]]:
        """Record a new run of ``workflow`` on ``task`` and walk it in a background task.

        For callers that must hand out the run id before the run ends (the HTTP service):
        when this returns, the run is in the store, so its id can be looked up at once.

        Returns:
            The run's id and the task that completes with its result.

        Raises:
            TaskValidationError: ``task`` does not match the workflow's task type; nothing
                was run or recorded.
        """
        model = workflow.validate_task(task)
        run = await self._new_run(workflow, model)
        return run.id, asyncio.create_task(self._walk_to_end(run))

    async def resume(self, workflow: CompiledWorkflow, run_id: str) -> RunResult:
        """Continue a run from its last recorded step; finished steps are not re-run."""
        record = self.store.get_run(run_id)
        if record.workflow != workflow.name:
            raise WorkflowError(
                f"Run '{run_id}' belongs to workflow '{record.workflow}', not '{workflow.name}'."
            )
        invokers = await self._invokers(workflow)
        run = _Run(run_id, workflow, workflow.validate_task(record.task), invokers)
        frontier = self._replay(run, self.store.steps(run_id))
        if record.status is RunStatus.RUNNING and run.error is None and frontier:
            await self._branches(run, frontier)
        return self._finish(run, record.status)

    async def resume_all(self, workflow: CompiledWorkflow) -> list[RunResult]:
        """Resume every unfinished run of ``workflow`` (after a crash)."""
        ids = self.store.unfinished(workflow.name)
        return list(await asyncio.gather(*(self.resume(workflow, i) for i in ids)))

    def run_sync(self, workflow: CompiledWorkflow, task: Any) -> RunResult:
        """Run one task from synchronous code (starts and closes an event loop)."""

        async def main() -> RunResult:
            try:
                return await self.run(workflow, task)
            finally:
                await self.aclose()

        return asyncio.run(main())

    async def aclose(self) -> None:
        """Release the executor's threads and batchers."""
        await self.executor.aclose()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _invokers(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        found = self._ready.get(id(workflow))
        if found is not None and found[0] is workflow:
            return found[1]  # skips an await per run once the workflow is prepared
        invokers = await self.executor.prepare(workflow)
        self._ready[id(workflow)] = (workflow, invokers)
        return invokers

    async def _start(self, workflow: CompiledWorkflow, task: BaseModel) -> RunResult:
        return await self._walk_to_end(await self._new_run(workflow, task))

    async def _new_run(self, workflow: CompiledWorkflow, task: BaseModel) -> _Run:
        invokers = await self._invokers(workflow)
        run = _Run(os.urandom(16).hex(), workflow, task, invokers)
        self.store.create_run(
            RunRecord(run.id, workflow.name, task, RunStatus.RUNNING, time.time())
        )
        return run

    async def _walk_to_end(self, run: _Run) -> RunResult:
        await self._walk(run, run.workflow.entry)
        return self._finish(run, RunStatus.RUNNING)

    async def _walk(self, run: _Run, name: str) -> None:
        steps, invokers, joins = run.workflow.steps, run.invokers, run.workflow.joins
        while run.error is None:
            targets = await self._step(run, steps[name], invokers[name])
            ready = [t for t in targets if self._arrive(run, name, t)] if joins else targets
            if len(ready) != 1:
                if ready:
                    await self._branches(run, ready)
                return
            name = ready[0]

    async def _branches(self, run: _Run, names: Sequence[str]) -> None:
        if len(names) == 1:
            await self._walk(run, names[0])
        else:
            await asyncio.gather(*(self._walk(run, n) for n in names))

    @staticmethod
    def _arrive(run: _Run, source: str, target: str) -> bool:
        """Whether ``target`` runs now; join steps wait until all they join have arrived."""
        join = run.workflow.steps[target].spec.join
        if not join:
            return True
        got = run.arrivals.setdefault(target, set())
        got.add(source)
        if not got.issuperset(join):
            return False
        del run.arrivals[target]
        return True

    async def _step(self, run: _Run, step: CompiledStep, invoke: Invoker) -> tuple[str, ...]:
        name = step.spec.name
        visit = run.visits.get(name, 0) + 1
        run.visits[name] = visit
        started, clock = time.time(), time.perf_counter()
        input_model: BaseModel | None = None
        output: BaseModel | None = None
        attempts = 0
        try:
            input_model = step.build_input(run.state)
            output, attempts, error = await self._attempts(run, step, invoke, input_model, visit)
            if error is not None:
                raise error
            run.state._outputs[name] = output  # type: ignore[assignment]
            decision = self._decide(run, step)
            failure = None
        except Exception as exc:
            failure, decision = self._fail(run, step, exc, max(attempts, 1))
        if decision is _END:
            run.last_output = output
        record = StepRecord(
            run.id, run.seq, name, step.agent_name,
            StepStatus.OK if failure is None else StepStatus.FAILED,
            visit, max(attempts, 1), input_model, output, failure, started,
            time.perf_counter() - clock, decision,
        )  # fmt: skip
        run.seq += 1
        self.store.record_step(record)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("run %s step %s -> %s (%s)", run.id, name, decision.targets, decision.reason)
        return decision.targets

    async def _attempts(
        self, run: _Run, step: CompiledStep, invoke: Invoker, input_model: BaseModel, visit: int
    ) -> tuple[BaseModel | None, int, Exception | None]:
        """Call the agent until it succeeds or retries run out: (output, attempts, error)."""
        spec = step.spec
        if spec.retry.max_attempts == 1 and spec.timeout_s is None:
            # The common case, without the retry loop's bookkeeping.
            try:
                output = await invoke(input_model, self._context(run, spec.name, 1, visit))
            except Exception as exc:
                return None, 1, exc
            return self._checked(step, output), 1, None
        attempt = 1
        while True:
            ctx = self._context(run, spec.name, attempt, visit)
            try:
                if spec.timeout_s is None:
                    output = await invoke(input_model, ctx)
                else:
                    output = await self._timed(run, step, invoke(input_model, ctx), ctx)
                return self._checked(step, output), attempt, None
            except AgentContractError as exc:
                return None, attempt, exc  # a broken contract does not heal by retrying
            except Exception as exc:
                if attempt >= spec.retry.max_attempts:
                    return None, attempt, exc
                await asyncio.sleep(spec.retry.delay(attempt))
                attempt += 1

    def _context(self, run: _Run, step: str, attempt: int, visit: int) -> RunContext:
        return RunContext(run.id, step, attempt=attempt, visit=visit, knowledge=self.knowledge)

    @staticmethod
    def _checked(step: CompiledStep, output: Any) -> BaseModel:
        if isinstance(output, step.output_type):
            return output
        raise AgentContractError(
            step.agent_name,
            [f"run returned {type(output).__name__}, expected {step.output_type.__name__}"],
        )

    @staticmethod
    async def _timed(run: _Run, step: CompiledStep, call: Any, ctx: RunContext) -> Any:
        try:
            return await asyncio.wait_for(call, step.spec.timeout_s)
        except asyncio.TimeoutError:
            ctx.cancel()
            raise StepTimeoutError(
                f"Step '{step.name}' (agent '{step.agent_name}') took longer than its timeout "
                f"of {step.spec.timeout_s} s on attempt {ctx.attempt}.",
                run_id=run.id,
                step=step.name,
                agent=step.agent_name,
            ) from None

    @staticmethod
    def _decide(run: _Run, step: CompiledStep) -> RouteDecision:
        if not step.routes:
            return _END
        skipped: list[str] = []
        for route in step.routes:
            if route.test is not None and not _holds(route.test, run.state, route.text):
                continue
            full = [t for t, bound in route.bounded if run.visits.get(t, 0) >= bound]
            if full:
                skipped.append(f"route {route.index} to {', '.join(full)} skipped: max_visits hit")
                continue
            if not skipped:
                return route.decision
            d = route.decision
            return RouteDecision(
                d.kind, d.route, d.targets, d.rule, f"{d.reason}; {'; '.join(skipped)}"
            )
        where = dict(run_id=run.id, step=step.name, agent=step.agent_name)
        if skipped:
            raise LoopBoundError(
                f"Step '{step.name}': every matching route leads to a step that reached its "
                f"max_visits ({'; '.join(skipped)}); add a default route that leaves the loop.",
                **where,
            )
        raise NoRouteError(
            f"No route out of step '{step.name}' matched. Add a default route "
            f"(wf.route('{step.name}', <step>)) or make the rules cover every case.",
            **where,
        )

    def _fail(
        self, run: _Run, step: CompiledStep, exc: Exception, attempts: int
    ) -> tuple[StepFailure, RouteDecision]:
        failure = StepFailure(
            step=step.name,
            agent=step.agent_name,
            error_type=type(exc).__name__,
            message=str(exc),
            attempts=attempts,
        )
        if step.error_target is not None:
            run.state._failures[step.name] = failure
            reason = f"step failed ({failure.error_type}); error route to '{step.error_target}'"
            return failure, RouteDecision("error", None, (step.error_target,), None, reason)
        if isinstance(exc, RunError):
            error = exc
        else:
            error = StepFailedError(
                f"Step '{step.name}' (agent '{step.agent_name}') failed after {attempts} "
                f"attempt{'s' * (attempts != 1)}: {failure.error_type}: {exc}",
                run_id=run.id,
                step=step.name,
                agent=step.agent_name,
            )
            error.__cause__ = exc
        run.error = run.error or error
        return failure, RouteDecision("fail", None, (), None, "step failed; no error route")

    def _replay(self, run: _Run, records: list[StepRecord]) -> list[str]:
        """Rebuild state from records; return the steps still to run."""
        pending = [run.workflow.entry]
        steps = run.workflow.steps
        for rec in records:
            if rec.step not in steps or rec.step not in pending:
                raise WorkflowError(
                    f"Run '{run.id}' has a record of step '{rec.step}' that its workflow "
                    f"'{run.workflow.name}' could not have run; was the workflow changed?"
                )
            pending.remove(rec.step)
            run.seq, run.visits[rec.step] = rec.seq + 1, rec.visit
            if rec.output is not None:
                run.state._outputs[rec.step] = steps[rec.step].output_type.model_validate(
                    rec.output
                )
            if rec.decision.kind == "end":
                run.last_output = run.state._outputs.get(rec.step)
            if rec.error is not None and rec.decision.kind == "error":
                run.state._failures[rec.step] = StepFailure.model_validate(rec.error)
            elif rec.error is not None:
                run.error = run.error or StepFailedError(
                    rec.error.message, run_id=run.id, step=rec.step, agent=rec.agent
                )
            pending += [t for t in rec.decision.targets if self._arrive(run, rec.step, t)]
        return pending

    def _finish(self, run: _Run, previous: RunStatus) -> RunResult:
        if run.error is None and run.arrivals:
            waits = "; ".join(
                f"'{j}' got {sorted(got)} of {list(run.workflow.steps[j].spec.join)}"
                for j, got in run.arrivals.items()
            )
            run.error = RunError(f"Run ended with joins still waiting: {waits}", run_id=run.id)
        status = RunStatus.FAILED if run.error is not None else RunStatus.SUCCEEDED
        if previous is RunStatus.RUNNING:
            self.store.finish_run(run.id, status, None if run.error is None else str(run.error))
        return RunResult(
            run.id, run.workflow.name, status, dict(run.state._outputs), run.last_output, run.error
        )


def _holds(test: Any, state: RunState, text: str | None) -> bool:
    try:
        return bool(test(state))
    except RuleError:
        raise
    except Exception as exc:
        raise RuleError(f"Rule {text} could not be evaluated: {type(exc).__name__}: {exc}") from exc
