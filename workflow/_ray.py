"""The Ray executor: each agent of a workflow runs as N Ray actor replicas.

``Engine(store, executor=RayExecutor(...))`` keeps everything that decides a run in the
driver (routing, retries, timeouts, records in the ``RunStore``); only agent calls go to the
cluster. Per distinct agent of a workflow the executor starts ``replicas`` actors; each
rebuilds the agent from its class and ``init_params`` and calls ``warm_up()`` once (what
crosses the process boundary is listed in ``workflow._ray_replica``). Calls go to the
replica with the fewest calls in flight (round-robin among equals). A step with ``batch=``
keeps the local executor's micro-batcher in the driver and sends each group to one
replica's ``run_batch``: one remote call per batch, and batches gather calls from every
run of the driver, whichever replica then serves them.

Faults: a call whose replica dies (killed, out of memory, node lost) is sent again to
another replica, and the dead one is replaced by a new actor that warms up; this
redelivery does not count as a step attempt. An agent may therefore see a call twice, so
side effects must be keyed on ``ctx.idempotency_key`` (``knowledge.run_once``), as for the
engine's own retries. Replicas belong to the driver: if the driver dies they die with it,
and a new driver with the same durable ``RunStore`` continues with ``engine.resume_all``.

``ray`` is imported when the executor first prepares a workflow, never by ``import
workflow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agents import AgentError, RunContext
from workflow._batcher import MicroBatcher
from workflow._compiled import CompiledStep, CompiledWorkflow
from workflow._executor import Executor, Invoker, PrepareOnce, step_batcher
from workflow._ray_replica import CallContext, DatabaseHandle, Replica

__all__ = ["RayExecutor", "executor_from_env"]

EXECUTOR_ENV = "TASKLOOM_EXECUTOR"


def _import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - optional and heavy: only when a Ray executor starts
    except ImportError as exc:
        raise AgentError(
            "RayExecutor needs Ray, which is not installed. Install the extra "
            "(pip install 'taskloom[ray]'), or use the default LocalExecutor."
        ) from exc
    return ray


@dataclass(eq=False)
class _Slot:
    """One replica: its actor, its warm-up, and how many calls it is serving."""

    actor: Any
    ready: asyncio.Future[Any]
    inflight: int = 0


@dataclass(eq=False)
class _Pool:
    """The replicas of one agent, with dispatch and replacement of dead ones."""

    ray: Any
    actor_class: Any
    agent: Any
    label: str
    max_redeliveries: int
    start_timeout_s: float
    slots: list[_Slot] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def start(self, count: int) -> None:
        self.slots = [self._new_slot() for _ in range(count)]

    def _new_slot(self) -> _Slot:
        actor = self.actor_class.remote(type(self.agent), self.agent.init_params)
        return _Slot(actor, asyncio.ensure_future(_await_ref(actor.warm_up.remote(), self.ray)))

    async def warmed(self) -> None:
        """Wait for every replica's warm-up; raise the first failure as an AgentError."""
        for slot in self.slots:
            try:
                await asyncio.wait_for(self._ready(slot), self.start_timeout_s)
            except asyncio.TimeoutError:
                raise AgentError(
                    f"Ray replicas of agent {self.label} did not start within "
                    f"{self.start_timeout_s} s: the cluster may lack the resources they ask "
                    f"for (free now: {self.ray.available_resources()}). Add nodes, or lower "
                    "RayExecutor(num_cpus_per_replica=..., replicas=...)."
                ) from None
            except self.ray.exceptions.RayActorError as exc:
                raise AgentError(
                    f"A Ray replica of agent {self.label} died while warming up ({exc}). "
                    "If it ran out of memory, give replicas more (fewer per node, or "
                    "RayExecutor(num_cpus_per_replica=...)); the Ray workers' logs say why."
                ) from exc

    async def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on the least-loaded replica; redeliver if that replica dies."""
        errors = self.ray.exceptions
        for _ in range(self.max_redeliveries + 1):
            slot = self._pick()
            slot.inflight += 1
            try:
                await self._ready(slot)
                return await _await_ref(getattr(slot.actor, method).remote(*args), self.ray)
            except errors.RayActorError as exc:
                self._replace(slot)
                last = exc
            finally:
                slot.inflight -= 1
        raise AgentError(
            f"Agent {self.label}: one call was sent {self.max_redeliveries + 1} time(s) and "
            f"its replica died each time (last: {type(last).__name__}: {last}). Check the "
            "Ray workers' logs (memory, crashes), or raise RayExecutor(max_redeliveries=...)."
        ) from last

    async def _ready(self, slot: _Slot) -> None:
        try:
            await asyncio.shield(slot.ready)
        except self.ray.exceptions.RayActorError:
            raise  # died while warming up: replaced and redelivered like any death
        except Exception as exc:
            raise AgentError(
                f"Agent {self.label} could not warm up in its Ray replica: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _pick(self) -> _Slot:
        if not self.slots:
            raise AgentError(
                f"Agent {self.label} has no Ray replicas: its RayExecutor was closed "
                "(engine.aclose or run_sync ends it). Run with a new Engine and executor."
            )
        # Warmed replicas first, then fewest calls in flight, then round-robin.
        start = next(self._turn)
        order = self.slots[start % len(self.slots) :] + self.slots[: start % len(self.slots)]
        return min(order, key=lambda s: (not s.ready.done(), s.inflight))

    def _replace(self, slot: _Slot) -> None:
        """Swap a dead replica for a new one (once, however many calls saw it die)."""
        if slot in self.slots:
            self.slots[self.slots.index(slot)] = self._new_slot()
            _kill(self.ray, slot.actor)  # a replica that is only unreachable must not linger

    def stats(self) -> list[Any]:
        """Each live replica's ``Replica.stats()`` (blocking; for tests and benchmarks)."""
        refs = [slot.actor.stats.remote() for slot in self.slots]
        return list(self.ray.get(refs))

    def close(self) -> None:
        for slot in self.slots:
            slot.ready.cancel()
            _kill(self.ray, slot.actor)
        self.slots = []


async def _await_ref(ref: Any, ray: Any) -> Any:
    """Await an ObjectRef; raise the agent's own error; cancel the remote call if cancelled."""
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)  # the replica's ctx.cancelled turns true
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause  # the exception raised in the actor (None if it did not pickle)
        if not isinstance(cause, Exception):
            raise
        # Its real type and message, so records, retries and error routes see what the
        # agent raised (the RayTaskError with the remote traceback stays as its cause).
        raise cause from exc


def _kill(ray: Any, actor: Any) -> None:
    with contextlib.suppress(Exception):  # already gone, or Ray shut down: nothing to free
        ray.kill(actor, no_restart=True)


class RayExecutor:
    """Runs each agent of a workflow as Ray actor replicas (see the module docstring).

    Args:
        address: The Ray cluster: None joins the instance this process already started
            (``ray.init(...)``) or starts a local one; ``"auto"`` joins the cluster of this
            node; ``"ray://head:10001"`` connects as a Ray client.
        replicas: Replicas per agent: one number for all, or a mapping from agent name or
            step name to a number (the step's name wins), with ``"*"`` for the rest (default 1).
        num_cpus_per_replica: CPUs Ray reserves for each replica (0 for agents that wait on
            I/O; 1 for a model on CPU).
        num_gpus_per_replica: GPUs (or fractions) Ray reserves for each replica.
        max_redeliveries: How many times one call is sent again when its replica dies.
        start_timeout_s: How long the first run waits for the replicas to start and warm
            up before their steps fail (a cluster without the CPUs asked for never starts
            them).
        init_kwargs: Extra ``ray.init`` arguments when this executor starts or joins Ray
            (``runtime_env``, ``namespace``, ...).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        replicas: int | Mapping[str, int] = 1,
        num_cpus_per_replica: float = 1.0,
        num_gpus_per_replica: float = 0.0,
        max_redeliveries: int = 3,
        start_timeout_s: float = 600.0,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        counts = {"*": replicas} if isinstance(replicas, int) else dict(replicas)
        bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"replicas must be whole numbers >= 1; got {bad}")
        self.address = address
        self.replicas = counts
        self.num_cpus_per_replica = num_cpus_per_replica
        self.num_gpus_per_replica = num_gpus_per_replica
        self.max_redeliveries = max_redeliveries
        self.start_timeout_s = start_timeout_s
        self.init_kwargs = dict(init_kwargs or {})
        self.pools: dict[str, _Pool] = {}  # step name -> its agent's pool (last prepared)
        self.batchers: dict[str, MicroBatcher] = {}
        self._ray: Any = None
        self._owns_ray = False
        self._actor_class: Any = None
        self._all_pools: list[_Pool] = []  # of every workflow prepared, to close them all
        self._prepare_once = PrepareOnce(self._prepare)
        self._knowledge: tuple[Any, Any] = (None, None)

    async def prepare(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        # Concurrent first runs must not start two sets of replicas.
        return await self._prepare_once(workflow)

    async def _prepare(self, workflow: CompiledWorkflow) -> dict[str, Invoker]:
        ray = self._connect()
        pools: dict[int, _Pool] = {}
        for step in workflow.steps.values():
            if id(step.agent) not in pools:
                pool = self._pool(ray, step)
                pool.start(self._count(step))
                pools[id(step.agent)] = pool
        failed: dict[int, Exception] = {}
        for key, pool in pools.items():
            try:
                await pool.warmed()
            except Exception as exc:  # e.g. a missing model artifact in the replica
                failed[key] = exc
        invokers: dict[str, Invoker] = {}
        for name, step in workflow.steps.items():
            self.pools[name] = pools[id(step.agent)]
            if id(step.agent) in failed:
                invokers[name] = _failing(failed[id(step.agent)])
            else:
                invokers[name] = self._invoker(step, pools[id(step.agent)])
        return invokers

    def _connect(self) -> Any:
        ray = self._ray = self._ray or _import_ray()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, **self.init_kwargs}
            ray.init(address=self.address, **kwargs)
            self._owns_ray = True
        return ray

    def _pool(self, ray: Any, step: CompiledStep) -> _Pool:
        if self._actor_class is None:  # exported to the cluster once per executor
            self._actor_class = ray.remote(
                num_cpus=self.num_cpus_per_replica,
                num_gpus=self.num_gpus_per_replica,
                max_restarts=0,  # replaced by the executor, which also redelivers the call
            )(Replica)
        label = f"'{step.agent_name}' (step '{step.name}')"
        pool = _Pool(
            ray, self._actor_class, step.agent, label, self.max_redeliveries, self.start_timeout_s
        )
        self._all_pools.append(pool)
        return pool

    def _count(self, step: CompiledStep) -> int:
        counts = self.replicas
        return counts.get(step.name, counts.get(step.agent_name, counts.get("*", 1)))

    def _invoker(self, step: CompiledStep, pool: _Pool) -> Invoker:
        offload = step.agent.blocking or step.spec.timeout_s is not None
        if step.spec.batch is not None:

            async def send(inputs: list[Any], ctxs: list[RunContext]) -> Any:
                contexts = [self._context(c) for c in ctxs]
                return await pool.call("call_batch", inputs, contexts, offload)

            batcher = step_batcher(step, send)
            self.batchers[step.name] = batcher
            return batcher.submit

        async def call(input: BaseModel, ctx: RunContext) -> Any:
            return await pool.call("call", input, self._context(ctx), offload)

        return call

    def _context(self, ctx: RunContext) -> CallContext:
        handle, converted = self._knowledge
        if ctx.knowledge is not handle:  # one engine, one handle: convert it once
            converted = _transportable(ctx.knowledge)
            self._knowledge = (ctx.knowledge, converted)
        return CallContext.of(ctx, converted)

    def actors(self, step: str) -> list[Any]:
        """The Ray actor handles now serving ``step``'s agent (to inspect, or kill in tests).

        Raises:
            KeyError: ``step`` is not a step of a workflow this executor prepared.
        """
        try:
            return [slot.actor for slot in self.pools[step].slots]
        except KeyError:
            known = ", ".join(sorted(self.pools)) or "(none prepared yet)"
            raise KeyError(f"No replicas for step '{step}'. Steps: {known}.") from None

    def stats(self) -> dict[str, list[Any]]:
        """Per step, its replicas' calls, batch sizes and process ids (blocking)."""
        return {step: pool.stats() for step, pool in self.pools.items()}

    async def aclose(self) -> None:
        """Finish pending batches, stop every replica, and leave Ray if this executor joined it."""
        for batcher in self.batchers.values():
            await batcher.aclose()
        for pool in self._all_pools:
            pool.close()
        self.pools, self.batchers, self._all_pools = {}, {}, []
        self._prepare_once.forget()
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
            self._owns_ray = False


def _failing(cause: Exception) -> Invoker:
    """Every call of an agent whose replicas could not warm up fails its step."""

    async def fail(input: BaseModel, ctx: RunContext) -> Any:
        raise cause

    return fail


def _transportable(knowledge: Any) -> Any:
    """A ``Database`` crosses as its URL (absolute for SQLite files); anything else as is."""
    from knowledge import Database  # noqa: PLC0415 - agents already imported knowledge

    if not isinstance(knowledge, Database):
        return knowledge
    url = knowledge.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=os.path.abspath(url.database))
    elif url.get_backend_name() == "sqlite":
        raise AgentError(
            "An in-memory SQLite knowledge base cannot be shared with Ray replicas (each "
            "process would get its own empty one). Use a SQLite file or PostgreSQL."
        )
    return DatabaseHandle(url.render_as_string(hide_password=False))


def executor_from_env(env: Mapping[str, str] | None = None) -> Executor | None:
    """The executor that environment variables choose (for the CLI and the service).

    ``TASKLOOM_EXECUTOR``: ``local`` (default: returns None, so ``Engine`` or
    ``create_app`` keep their own default local executor) or ``ray``. For ``ray``:
    ``TASKLOOM_RAY_ADDRESS`` (default: start or join a local instance; ``auto``;
    ``ray://host:10001``), ``TASKLOOM_RAY_REPLICAS`` (per agent, default 1) and
    ``TASKLOOM_RAY_CPUS_PER_REPLICA`` (default 1).

    Raises:
        ValueError: An unknown executor name or a malformed number.
    """
    env = os.environ if env is None else env
    kind = env.get(EXECUTOR_ENV, "local").strip().lower() or "local"
    if kind == "local":
        return None
    if kind != "ray":
        raise ValueError(f"{EXECUTOR_ENV}={kind!r} is not an executor. Executors: local, ray.")
    try:
        replicas = int(env.get("TASKLOOM_RAY_REPLICAS", "1"))
        cpus = float(env.get("TASKLOOM_RAY_CPUS_PER_REPLICA", "1"))
    except ValueError as exc:
        raise ValueError(
            f"TASKLOOM_RAY_REPLICAS must be a whole number and TASKLOOM_RAY_CPUS_PER_REPLICA "
            f"a number: {exc}"
        ) from exc
    return RayExecutor(
        address=env.get("TASKLOOM_RAY_ADDRESS") or None,
        replicas=replicas,
        num_cpus_per_replica=cpus,
    )
