"""The Ray executor on a real local Ray instance: replicas, batching, faults, resume.

The scenario table also runs on Ray (``tests/workflow/test_scenarios.py``). Side effects
here are facts written with ``run_once`` into a knowledge base on a SQLite file and, when
configured, on PostgreSQL (``TASKLOOM_TEST_POSTGRES_URL``), which the replicas reopen.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from agents import Agent, AgentError, Role, RunContext
from agents.testing import AsyncFakeAgent, FakeAgent
from knowledge import Database, FactIn, RunStatus, SqlRunStore, add_fact, find_facts, run_once
from workflow import (
    Engine,
    RayExecutor,
    StepTimeoutError,
    Workflow,
    executor_from_env,
)

POSTGRES_URL_ENV = "TASKLOOM_TEST_POSTGRES_URL"


class Order(BaseModel):
    order: str


class FakeTask(BaseModel):
    text: str


class Receipt(BaseModel):
    order: str
    fact_id: int


def _lines(path: str) -> list[str]:
    return Path(path).read_text().splitlines() if Path(path).exists() else []


def _note(path: str, line: str) -> None:
    with open(path, "a") as file:
        file.write(line + "\n")


class Refund(Agent[Order, Receipt]):
    """Refunds an order once per step visit: a fact written with ``run_once``.

    Notes each call's process id in ``calls`` when it starts and in ``committed`` once the
    effect is committed; the first call of a visit then holds ``hold_s`` (a test kills it
    there: the effect is done, the answer never comes back).
    """

    name = "refund"
    role = Role.EXECUTION
    blocking = True

    def __init__(self, *, calls: str, committed: str, hold_s: float = 0.0) -> None:
        self.calls, self.committed, self.hold_s = calls, committed, hold_s

    def run(self, input: Order, ctx: RunContext) -> Receipt:
        _note(self.calls, f"{ctx.idempotency_key} {os.getpid()}")
        database: Database = ctx.knowledge

        def refund(session: Any) -> dict[str, Any]:
            fact = add_fact(
                session,
                FactIn(
                    subject=input.order,
                    relation="refunded",
                    object=ctx.step,
                    provenance={"key": ctx.idempotency_key},
                ),
            )
            return {"order": input.order, "fact_id": fact.id}

        with database.transaction() as session:
            stored = run_once(session, ctx.idempotency_key, refund, run_id=ctx.run_id)
        _note(self.committed, f"{ctx.idempotency_key} {os.getpid()}")
        first = sum(line.startswith(ctx.idempotency_key) for line in _lines(self.calls)) == 1
        if self.hold_s and first:
            time.sleep(self.hold_s)
        return Receipt.model_validate(stored)


class Patient(Agent[FakeTask, FakeTask]):
    """Waits until its call is cancelled (or 20 s pass), then notes what it saw in ``seen``."""

    name = "patient"
    role = Role.REASONING
    blocking = True

    def __init__(self, *, seen: str) -> None:
        self.seen = seen

    def run(self, input: FakeTask, ctx: RunContext) -> FakeTask:
        deadline = time.monotonic() + 20
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        _note(self.seen, f"cancelled={ctx.cancelled}")
        return input


class BrokenModel(FakeAgent):
    """A fake whose model cannot load."""

    name = "broken"

    def warm_up(self) -> None:
        raise FileNotFoundError("model.safetensors is missing")


def refund_workflow(folder: Path, steps: tuple[str, ...], hold: dict[str, float]) -> Any:
    """Steps that each refund the task's order; ``hold``: step -> its first call's hold."""
    wf = Workflow("refunds", task=Order)
    calls, committed = str(folder / "calls.txt"), str(folder / "committed.txt")
    for name in steps:
        wf.step(name, Refund(calls=calls, committed=committed, hold_s=hold.get(name, 0.0)))
    for a, b in itertools.pairwise(steps):
        wf.route(a, b)
    return wf.compile()


def refunds(database: Database) -> list[Any]:
    with database.session() as session:
        return find_facts(session, relation="refunded")


@pytest.fixture
def ray_session(ray_cluster: Any) -> Any:
    """The session's Ray instance, with this module's agents shipped to workers by value."""
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_cluster


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A throwaway database on the test server; skips (fails under CI=true) without one."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if not raw:
        _unavailable(f"{POSTGRES_URL_ENV} is not set")
    admin = create_engine(
        make_url(str(raw)).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    name = f"taskloom_t_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        admin.dispose()
        _unavailable(f"the PostgreSQL server in {POSTGRES_URL_ENV} is unreachable ({exc.orig})")
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated knowledge base that other processes can open: a SQLite file or PostgreSQL."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'kb.db'}"
        else:
            url = stack.enter_context(_postgres_database())
        database = stack.enter_context(Database(url))
        database.upgrade()
        yield database


async def _wait_for(path: Path, count: int, timeout_s: float = 60.0) -> list[str]:
    """Poll ``path`` until it has ``count`` lines (what another process wrote)."""
    deadline = time.monotonic() + timeout_s
    while len(lines := _lines(str(path))) < count:
        assert time.monotonic() < deadline, f"{path} got {lines}, expected {count} lines"
        await asyncio.sleep(0.05)
    return lines


# --------------------------------------------------------------------------- no Ray needed


def test_environment_chooses_the_executor() -> None:
    assert executor_from_env({}) is None  # Engine / create_app keep their local default
    assert executor_from_env({"TASKLOOM_EXECUTOR": "local"}) is None
    ray_executor = executor_from_env(
        {"TASKLOOM_EXECUTOR": "ray", "TASKLOOM_RAY_ADDRESS": "auto", "TASKLOOM_RAY_REPLICAS": "3"}
    )
    assert isinstance(ray_executor, RayExecutor)  # nothing is started before a run
    assert (ray_executor.address, ray_executor.replicas) == ("auto", {"*": 3})
    with pytest.raises(ValueError, match="Executors: local, ray"):
        executor_from_env({"TASKLOOM_EXECUTOR": "dask"})
    with pytest.raises(ValueError, match="replicas must be whole numbers"):
        RayExecutor(replicas={"classify": 0})


# --------------------------------------------------------------------------- on Ray


@pytest.mark.ray
def test_replicas_share_the_calls_and_models_load_only_there(ray_session: Any) -> None:
    agent = AsyncFakeAgent(echo=True, delay_s=0.05)
    wf = Workflow("spread", task=FakeTask)
    compiled = (
        wf.step("classify", agent).step("after", FakeAgent()).route("classify", "after").compile()
    )
    executor = RayExecutor(replicas={"classify": 2}, num_cpus_per_replica=0)

    async def main() -> list[Any]:
        async with Engine(executor=executor) as engine:
            results = await engine.run_many(compiled, [{"text": f"t{i}"} for i in range(12)])
            stats = executor.stats()
        return [results, stats]

    results, stats = asyncio.run(main())
    assert [r.outputs["classify"].label for r in results] == [f"t{i}" for i in range(12)]
    classify, after = stats["classify"], stats["after"]
    assert len({s["pid"] for s in classify}) == 2
    assert all(s["calls"] > 0 for s in classify)  # least-loaded dispatch used both
    assert sum(s["calls"] for s in classify) == 12
    assert [s["calls"] for s in after] == [12]
    assert os.getpid() not in {s["pid"] for s in classify + after}
    assert agent.warm_ups == 0  # warmed up in the replicas, not in the driver


@pytest.mark.ray
def test_batch_steps_send_groups_to_run_batch_in_a_replica(ray_session: Any) -> None:
    wf = Workflow("batched", task=FakeTask)
    wf.step("classify", FakeAgent(echo=True), batch=True).step("after", FakeAgent())
    compiled = wf.route("classify", "after").compile()
    executor = RayExecutor(num_cpus_per_replica=0)

    async def main() -> list[Any]:
        async with Engine(executor=executor) as engine:
            results = await engine.run_many(compiled, [{"text": f"t{i}"} for i in range(20)])
            return [results, executor.stats()["classify"]]

    results, (replica,) = asyncio.run(main())
    assert [r.outputs["classify"].label for r in results] == [f"t{i}" for i in range(20)]
    assert sum(replica["batch_sizes"]) == 20
    assert max(replica["batch_sizes"]) > 1  # concurrent runs shared a run_batch call


@pytest.mark.ray
def test_an_agent_that_cannot_warm_up_fails_its_step(ray_session: Any) -> None:
    compiled = Workflow("broken", task=FakeTask).step("load", BrokenModel()).compile()
    engine = Engine(executor=RayExecutor(num_cpus_per_replica=0))
    result = engine.run_sync(compiled, {"text": "x"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error.__cause__, AgentError)
    assert "could not warm up in its Ray replica: FileNotFoundError: model.safetensors" in str(
        result.error
    )


@pytest.mark.ray
def test_replicas_that_cannot_be_placed_fail_their_step_in_time(ray_session: Any) -> None:
    compiled = Workflow("big", task=FakeTask).step("huge", FakeAgent()).compile()
    executor = RayExecutor(num_cpus_per_replica=64, start_timeout_s=1)  # the cluster has 2
    result = Engine(executor=executor).run_sync(compiled, {"text": "x"})

    assert result.status is RunStatus.FAILED
    assert "did not start within 1 s: the cluster may lack the resources" in str(result.error)


@pytest.mark.ray
def test_a_timeout_cancels_the_call_in_the_replica(ray_session: Any, tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    compiled = (
        Workflow("patient", task=FakeTask)
        .step("wait", Patient(seen=str(seen)), timeout=0.3)
        .compile()
    )

    async def main() -> Any:
        async with Engine(executor=RayExecutor(num_cpus_per_replica=0)) as engine:
            result = await engine.run(compiled, {"text": "x"})
            return result, await _wait_for(seen, 1, timeout_s=15)

    result, lines = asyncio.run(main())
    assert isinstance(result.error, StepTimeoutError)
    assert lines == ["cancelled=True"]  # the agent saw ctx.cancelled, long before 20 s


@pytest.mark.ray
def test_killed_replica_call_is_redelivered_without_a_second_effect(
    ray_session: Any, kb: Database, tmp_path: Path
) -> None:
    compiled = refund_workflow(tmp_path, ("pay",), {"pay": 60})
    executor = RayExecutor(replicas=2, num_cpus_per_replica=0)

    async def main() -> Any:
        async with Engine(SqlRunStore(kb), executor=executor, knowledge=kb) as engine:
            _, run = await engine.start(compiled, {"order": "o-1"})
            (line,) = await _wait_for(tmp_path / "committed.txt", 1)
            pid = int(line.split()[1])
            (serving,) = [
                a for a in executor.actors("pay") if ray_session.get(a.stats.remote())["pid"] == pid
            ]
            ray_session.kill(serving)  # after its effect committed, before it answers
            result = await asyncio.wait_for(run, 60)
            return result, engine.store.steps(result.run_id), executor.actors("pay"), serving

    result, records, actors, killed = asyncio.run(main())
    assert result.ok, result.error
    calls = _lines(str(tmp_path / "calls.txt"))
    assert len({line.split()[1] for line in calls}) == 2  # served again by another replica
    (fact,) = refunds(kb)  # one effect, although the call ran twice
    assert result.output == Receipt(order="o-1", fact_id=fact.id)
    assert [(r.step, r.attempts) for r in records] == [("pay", 1)]  # not an engine retry
    assert len(actors) == 2  # the dead replica was replaced
    assert killed._actor_id not in {a._actor_id for a in actors}


_DRIVER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ray_first_driver", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.first_driver(*sys.argv[2:])
"""


def first_driver(db_url: str, address: str, folder: str) -> None:
    """The driver that the resume test kills: two runs, each stuck in its second step."""
    import ray  # noqa: PLC0415 - in the subprocess only

    ray.init(address=address, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    database = Database(db_url)
    compiled = refund_workflow(Path(folder), ("pay", "ship"), {"ship": 600})
    executor = RayExecutor(num_cpus_per_replica=0)
    engine = Engine(SqlRunStore(database), executor=executor, knowledge=database)
    asyncio.run(engine.run_many(compiled, [{"order": "o-1"}, {"order": "o-2"}]))


@pytest.mark.ray
def test_a_new_driver_resumes_runs_from_the_knowledge_base(
    ray_session: Any, kb: Database, tmp_path: Path
) -> None:
    address = ray_session.get_runtime_context().gcs_address
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, __file__, kb.url, address, str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Both runs recorded 'pay' and committed 'ship''s effect; 'ship' never answers.
        asyncio.run(_wait_for(tmp_path / "committed.txt", 4, timeout_s=90))
    finally:
        driver.send_signal(signal.SIGKILL)
        _, stderr = driver.communicate(timeout=30)
    assert driver.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    store = SqlRunStore(kb)
    assert len(store.unfinished("refunds")) == 2

    compiled = refund_workflow(tmp_path, ("pay", "ship"), {"ship": 600})

    async def resume() -> list[Any]:
        executor = RayExecutor(num_cpus_per_replica=0)
        async with Engine(store, executor=executor, knowledge=kb) as engine:
            return await engine.resume_all(compiled)

    results = asyncio.run(resume())
    assert sorted(r.output.order for r in results) == ["o-1", "o-2"]
    assert all(r.ok for r in results)
    assert store.unfinished("refunds") == []
    calls = [line.split()[0].split(":")[1] for line in _lines(str(tmp_path / "calls.txt"))]
    assert sorted(calls) == ["pay", "pay", "ship", "ship", "ship", "ship"]  # pay not re-run
    facts = refunds(kb)
    assert sorted((f.subject, f.object) for f in facts) == [
        ("o-1", "pay"), ("o-1", "ship"), ("o-2", "pay"), ("o-2", "ship"),
    ]  # fmt: skip
    ids = {(f.subject, f.object): f.id for f in facts}
    assert all(r.output.fact_id == ids[(r.output.order, "ship")] for r in results)
