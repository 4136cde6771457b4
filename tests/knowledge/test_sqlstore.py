"""The SQL run store: the RunStore contract, and the engine on it matching the memory store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from agents import RunContext
from agents.testing import FakeAgent, FakeInput, FakeOutput, JoinAgent
from knowledge import (
    Database,
    MemoryRunStore,
    RouteDecision,
    RunConflictError,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    RunStore,
    SchemaError,
    SqlRunStore,
    StepFailure,
    StepRecord,
    StepStatus,
)
from knowledge._models import Run, Step
from workflow import CompiledWorkflow, Engine, Retry, Workflow, failure, state

EMAIL = "jane.doe@example.com"


class Task(BaseModel):
    text: str
    n: int = 0


def run_record(run_id: str, workflow: str = "wf", created_at: float | None = None) -> RunRecord:
    at = time.time() if created_at is None else created_at
    return RunRecord(run_id, workflow, {"text": run_id}, RunStatus.RUNNING, at)


def step_record(run_id: str, seq: int, **fields: Any) -> StepRecord:
    values: dict[str, Any] = {
        "step": "s",
        "agent": "fake",
        "status": StepStatus.OK,
        "visit": 1,
        "attempts": 1,
        "input": FakeInput(text="in"),
        "output": FakeOutput(text="out", label="ok"),
        "error": None,
        "decision": RouteDecision("rule", 0, ("t",), "state('s').label == 'ok'", "rule held"),
    }
    values.update(fields)
    return StepRecord(
        run_id, seq, values["step"], values["agent"], values["status"], values["visit"],
        values["attempts"], values["input"], values["output"], values["error"], 12.5, 0.25,
        values["decision"],
    )  # fmt: skip


# --------------------------------------------------------------------------- the contract


def test_it_is_a_run_store(database: Any) -> None:
    assert isinstance(SqlRunStore(database), RunStore)


def test_records_runs_and_steps_in_order_and_reads_them_back(database: Any) -> None:
    store = SqlRunStore(database)
    store.create_run(run_record("a"))
    failed = StepFailure(step="s", agent="fake", error_type="RuntimeError", message="x", attempts=2)
    store.record_step(step_record("a", 0))
    store.record_step(
        step_record(
            "a", 1, status=StepStatus.FAILED, output=None, error=failed, attempts=2,
            decision=RouteDecision("error", None, ("fix",), None, "step failed"),
        )
    )  # fmt: skip
    first, second = store.steps("a")
    assert (first.seq, second.seq) == (0, 1)
    assert first.input == {"text": "in", "n": 0}
    assert first.output == {"text": "out", "label": "ok", "score": 1.0, "n": 0}
    assert first.decision == RouteDecision(
        "rule", 0, ("t",), "state('s').label == 'ok'", "rule held"
    )
    assert (first.started_at, first.duration_s, first.status) == (12.5, 0.25, StepStatus.OK)
    assert (second.status, second.output, second.error, second.attempts) == (
        StepStatus.FAILED, None, failed, 2,
    )  # fmt: skip
    assert store.unfinished() == ["a"]
    store.finish_run("a", RunStatus.FAILED, "boom")
    finished = store.get_run("a")
    assert (finished.status, finished.error, finished.task) == (
        RunStatus.FAILED, "boom", {"text": "a"},
    )  # fmt: skip
    assert finished.finished_at is not None
    assert finished.finished_at >= finished.created_at
    assert store.unfinished() == []


def test_a_new_run_has_no_steps(database: Any) -> None:
    store = SqlRunStore(database)
    store.create_run(run_record("fresh"))
    assert store.steps("fresh") == []


def test_unknown_runs_are_clear_errors(database: Any) -> None:
    store = SqlRunStore(database)
    with pytest.raises(RunNotFoundError, match="Run 'x' is not in the run store"):
        store.get_run("x")
    with pytest.raises(RunNotFoundError):
        store.record_step(step_record("x", 0))
    with pytest.raises(RunNotFoundError):
        store.steps("x")
    with pytest.raises(RunNotFoundError):
        store.finish_run("x", RunStatus.SUCCEEDED)


def test_unfinished_filters_by_workflow_oldest_first(database: Any) -> None:
    store = SqlRunStore(database)
    for run_id, wf, at in (("c", "one", 3.0), ("a", "one", 1.0), ("b", "two", 2.0)):
        store.create_run(run_record(run_id, wf, at))
    assert store.unfinished("one") == ["a", "c"]
    assert store.unfinished() == ["a", "b", "c"]
    assert store.unfinished("none") == []


def test_a_second_record_of_the_same_checkpoint_is_a_conflict(database: Any) -> None:
    store = SqlRunStore(database)
    store.create_run(run_record("a"))
    store.record_step(step_record("a", 0))
    with pytest.raises(RunConflictError, match=r"Run 'a' already has a checkpoint #0") as info:
        store.record_step(step_record("a", 0, step="other"))
    assert (info.value.run_id, info.value.seq, info.value.step) == ("a", 0, "other")
    assert [r.step for r in store.steps("a")] == ["s"]


def test_every_call_is_committed_when_it_returns(database: Any) -> None:
    """Another process's view: a separate engine sees each record as soon as it is written."""
    store = SqlRunStore(database)
    with Database(database.url) as other:
        reader = SqlRunStore(other)
        store.create_run(run_record("a"))
        assert reader.unfinished() == ["a"]
        store.record_step(step_record("a", 0))
        assert [r.seq for r in reader.steps("a")] == [0]
        store.finish_run("a", RunStatus.SUCCEEDED)
        assert reader.get_run("a").status is RunStatus.SUCCEEDED


def test_first_use_migrates_an_embedded_database_or_names_the_migration(
    database_url: str,
) -> None:
    with Database(database_url) as fresh:
        store = SqlRunStore(fresh)  # cheap: nothing connects yet
        if fresh.dialect == "sqlite":
            store.create_run(run_record("a"))
            assert store.unfinished() == ["a"]
        else:
            with pytest.raises(SchemaError, match="taskloom db upgrade"):
                store.create_run(run_record("a"))


def test_user_text_is_redacted_before_it_is_stored(database: Any) -> None:
    store = SqlRunStore(database)
    store.create_run(RunRecord("a", "wf", Task(text=f"mail {EMAIL}"), RunStatus.RUNNING, 1.0))
    failed = StepFailure(step="s", agent="f", error_type="E", message=f"bad {EMAIL}", attempts=1)
    store.record_step(
        step_record("a", 0, input=FakeInput(text=EMAIL), output=FakeOutput(label=EMAIL))
    )
    store.record_step(step_record("a", 1, error=failed, output=None))
    store.finish_run("a", RunStatus.FAILED, f"failed for {EMAIL}")
    with database.engine.connect() as conn:
        stored = [
            *conn.execute(select(Run.task, Run.error)).one(),
            *(v for row in conn.execute(select(Step.input, Step.output, Step.error)) for v in row),
        ]
    assert EMAIL not in repr(stored)
    assert "mail " in repr(stored)  # the rest of the text is kept


# --------------------------------------------------------------------------- engine on it


def linear(fail_times: int = 0, retry: int = 1) -> Workflow:
    wf = Workflow("linear", task=Task)
    wf.step("a", FakeAgent(label="x")).step("b", FakeAgent(fail_times=fail_times))
    wf.step("c", FakeAgent(echo=True), inputs={"text": state("a").label}, retry=Retry(retry))
    return wf.route("a", "b").route("b", "c")


def scenario_ok() -> CompiledWorkflow:
    return linear().compile()


def scenario_fails() -> CompiledWorkflow:
    return linear(fail_times=5).compile()


def scenario_retries() -> CompiledWorkflow:
    wf = Workflow("retries", task=Task)
    wf.step("a", FakeAgent()).step("b", FakeAgent(fail_times=2), retry=Retry(3, backoff_s=0))
    return wf.route("a", "b").compile()


def scenario_error_route() -> CompiledWorkflow:
    wf = Workflow("error_route", task=Task)
    wf.step("a", FakeAgent(fail_times=1))
    wf.step("fix", FakeAgent(echo=True), inputs={"text": failure("a").error_type})
    return wf.on_error("a", "fix").compile()


def branch_labels(s: Any) -> dict[str, list[str]]:
    return {"texts": [s.outputs["left"].label, s.outputs["right"].label]}


def scenario_fan_out() -> CompiledWorkflow:
    wf = Workflow("fan_out", task=Task)
    wf.step("a", FakeAgent()).step("left", FakeAgent(label="l")).step("right", FakeAgent())
    wf.step("join", JoinAgent(), join=["left", "right"], inputs=branch_labels)
    wf.route("a", ["left", "right"]).route("left", "join").route("right", "join")
    return wf.compile()


SCENARIOS: dict[str, Callable[[], CompiledWorkflow]] = {
    "ok": scenario_ok,
    "fails": scenario_fails,
    "retries": scenario_retries,
    "error_route": scenario_error_route,
    "fan_out": scenario_fan_out,
}


def comparable(store: RunStore, run_id: str) -> tuple[Any, list[Any]]:
    """A run and its records without ids, clocks, and with models dumped as JSON."""
    run = store.get_run(run_id)
    task_json = run.task.model_dump(mode="json") if isinstance(run.task, BaseModel) else run.task
    head = (run.workflow, task_json, run.status, run.error)
    steps = []
    for r in store.steps(run_id):
        dumped = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                  for v in (r.input, r.output, r.error)]  # fmt: skip
        steps.append((r.seq, r.step, r.agent, r.status, r.visit, r.attempts, *dumped, r.decision))
    # Fan-out branches interleave differently from run to run: compare them as a set.
    return head, sorted(steps, key=repr)


def run_on(store: RunStore, build: Callable[[], CompiledWorkflow]) -> str:
    async def main() -> str:
        async with Engine(store) as engine:
            result = await engine.run(build(), {"text": "hello"})
            return result.run_id

    return asyncio.run(main())


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_engine_records_match_the_memory_store(database: Any, scenario: str) -> None:
    build = SCENARIOS[scenario]
    memory = MemoryRunStore()
    sql = SqlRunStore(database)
    expected = comparable(memory, run_on(memory, build))
    got = comparable(sql, run_on(sql, build))
    assert got == expected
    assert got[0][2] is (RunStatus.FAILED if scenario == "fails" else RunStatus.SUCCEEDED)
    assert sql.unfinished() == []


class SimulatedCrash(BaseException):
    """Not an Exception: the engine does not catch it, like a process dying."""


class CrashIn(FakeAgent):
    """Crashes (simulated) on calls while ``armed``."""

    name = "crash_in"
    armed = True

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        if CrashIn.armed:
            raise SimulatedCrash
        return super().run(input, ctx)


def test_engine_resumes_from_the_sql_store_without_rerunning_steps(database: Any) -> None:
    calls: list[tuple[str, str]] = []
    wf = Workflow("crashy", task=Task)
    wf.step("a", FakeAgent(journal=calls, label="from-a")).step("b", FakeAgent(journal=calls))
    wf.step("c", CrashIn(journal=calls))
    wf.step("d", FakeAgent(journal=calls, echo=True), inputs={"text": state("a").label})
    compiled = wf.route("a", "b").route("b", "c").route("c", "d").compile()
    CrashIn.armed = True
    with pytest.raises(SimulatedCrash):
        asyncio.run(Engine(SqlRunStore(database)).run(compiled, {"text": "t"}))
    CrashIn.armed = False
    store = SqlRunStore(database)  # a new store and engine, as after a restart
    (run_id,) = store.unfinished("crashy")

    async def restart() -> list[Any]:
        async with Engine(store) as engine:
            return await engine.resume_all(compiled)

    (result,) = asyncio.run(restart())
    assert result.ok
    assert result.output == FakeOutput(text="from-a", label="from-a", n=1)  # replayed state
    assert [step for step, _ in calls] == ["a", "b", "c", "d"]  # c crashed, then ran once
    assert [(r.seq, r.step) for r in store.steps(run_id)] == list(enumerate("abcd"))
    assert store.get_run(run_id).status is RunStatus.SUCCEEDED
    assert store.unfinished() == []


# --------------------------------------------------------------------------- list_runs, both stores


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[RunStore]:
    """Each RunStore implementation, empty: the same list_runs tests run on all of them."""
    if request.param == "memory":
        yield MemoryRunStore()
        return
    if request.param == "sqlite":
        with Database(f"sqlite:///{tmp_path / 'runs.db'}") as db:
            yield SqlRunStore(db)
        return
    server = request.getfixturevalue("postgres_server")  # tests/knowledge/conftest.py
    url = server.acquire()
    try:
        with Database(url) as db:
            yield SqlRunStore(db)
    finally:
        server.release(url)


def fill(store: RunStore) -> None:
    """Runs a..f created at 1..6 in two workflows, b and e finished."""
    for i, (run_id, wf) in enumerate(zip("abcdef", ["one", "two"] * 3, strict=True), start=1):
        store.create_run(run_record(run_id, wf, float(i)))
    store.finish_run("b", RunStatus.SUCCEEDED)
    store.finish_run("e", RunStatus.FAILED, "boom")


def ids(runs: list[RunRecord]) -> str:
    return "".join(r.run_id for r in runs)


def test_list_runs_is_newest_first_and_filters(any_store: RunStore) -> None:
    fill(any_store)
    assert ids(any_store.list_runs()) == "fedcba"
    assert ids(any_store.list_runs(workflow="two")) == "fdb"
    assert ids(any_store.list_runs(status=RunStatus.RUNNING)) == "fdca"
    assert ids(any_store.list_runs(workflow="two", status=RunStatus.RUNNING)) == "fd"
    assert ids(any_store.list_runs(workflow="none")) == ""
    failed = any_store.list_runs(status=RunStatus.FAILED)
    assert [(r.run_id, r.workflow, r.status, r.error) for r in failed] == [
        ("e", "one", RunStatus.FAILED, "boom")
    ]
    assert failed[0].finished_at is not None
    assert failed[0].created_at == 5.0
    assert failed[0].task == {"text": "e"}


def test_list_runs_pages_with_limit_and_before(any_store: RunStore) -> None:
    fill(any_store)
    assert ids(any_store.list_runs(limit=2)) == "fe"
    assert ids(any_store.list_runs(limit=2, before=5.0)) == "dc"  # strictly older
    assert ids(any_store.list_runs(before=4.5)) == "dcba"
    assert ids(any_store.list_runs(workflow="one", before=3.0)) == "a"
    assert ids(any_store.list_runs(before=1.0)) == ""

    pages, before = [], None
    while page := any_store.list_runs(limit=4, before=before):
        pages.append(ids(page))
        before = page[-1].created_at
    assert pages == ["fedc", "ba"]


def test_list_runs_breaks_created_at_ties_by_id(any_store: RunStore) -> None:
    for run_id in ("m", "z", "a"):
        any_store.create_run(run_record(run_id, "wf", 7.0))
    assert ids(any_store.list_runs()) == "zma"
    assert ids(any_store.list_runs(limit=1)) == "z"


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_list_runs_refuses_a_limit_out_of_range(any_store: RunStore, limit: int) -> None:
    with pytest.raises(ValueError, match=f"limit must be 1 to 1000, got {limit}"):
        any_store.list_runs(limit=limit)


def test_list_runs_takes_status_names_and_refuses_unknown_ones(any_store: RunStore) -> None:
    fill(any_store)
    assert ids(any_store.list_runs(status="succeeded")) == "b"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Unknown run status 'done'\. Valid: running, succeeded"):
        any_store.list_runs(status="done")  # type: ignore[arg-type]
