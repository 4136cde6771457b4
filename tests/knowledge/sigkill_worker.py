"""The process that test_sigkill.py kills: a batch of runs with a side effect, then resume.

    python sigkill_worker.py start URL N    start N runs at once (the test SIGKILLs it)
    python sigkill_worker.py resume URL     resume every unfinished run; print one JSON line

Every agent call is logged, committed, in ``agent_calls`` (with the phase, start or resume)
before the agent does anything, so the test can count calls that a crash would hide. The
execute step performs its side effect, a row in ``effects``, through ``run_once`` keyed on
``ctx.idempotency_key`` and then keeps working a while: a kill in that window leaves an
effect committed whose step was never recorded, the case exactly-once is about.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.orm import Session

from agents import Agent, Role, RunContext
from knowledge import Database, SqlRunStore, run_once
from workflow import CompiledWorkflow, Engine, Workflow

METADATA = MetaData()
AGENT_CALLS = Table(
    "agent_calls",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("step", String(50), nullable=False),
    Column("phase", String(10), nullable=False),
)
EFFECTS = Table(
    "effects",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("receipt", String(100), nullable=False),
)
PHASE = {"phase": "start"}


class Job(BaseModel):
    """The task and every step's input: ``delay_ms`` spreads the runs out in time."""

    text: str
    delay_ms: int


class Done(BaseModel):
    text: str
    receipt: str = ""


def _log_call(ctx: RunContext) -> Any:
    database: Any = ctx.knowledge
    with database.engine.begin() as conn:
        conn.execute(
            insert(AGENT_CALLS), {"run_id": ctx.run_id, "step": ctx.step, "phase": PHASE["phase"]}
        )
    return database


class Work(Agent[Job, Done]):
    """A step that takes a while."""

    name = "sigkill_work"
    role = Role.REASONING

    async def run(self, input: Job, ctx: RunContext) -> Done:
        _log_call(ctx)
        await asyncio.sleep(input.delay_ms / 1000)
        return Done(text=input.text)


class Execute(Agent[Job, Done]):
    """The execution step: one side effect per run, then more work before it returns."""

    name = "sigkill_execute"
    role = Role.EXECUTION

    async def run(self, input: Job, ctx: RunContext) -> Done:
        database = _log_call(ctx)

        def effect(session: Session) -> dict[str, str]:
            receipt = f"receipt-{ctx.run_id}"
            session.execute(insert(EFFECTS), {"run_id": ctx.run_id, "receipt": receipt})
            return {"receipt": receipt}

        with database.transaction() as session:
            done = run_once(session, ctx.idempotency_key, effect, run_id=ctx.run_id, step=ctx.step)
        await asyncio.sleep(input.delay_ms / 1000)  # the window between effect and record
        return Done(text=input.text, receipt=done["receipt"])


def workflow() -> CompiledWorkflow:
    """perceive -> reason -> decide -> execute."""
    wf = Workflow("sigkill", task=Job)
    for name in ("perceive", "reason", "decide"):
        wf.step(name, Work())
    wf.step("execute", Execute())
    wf.route("perceive", "reason").route("reason", "decide").route("decide", "execute")
    return wf.compile()


async def start(url: str, runs: int) -> None:
    database = Database(url)
    tasks = [{"text": f"job {i}", "delay_ms": 20 + (i % 10) * 15} for i in range(runs)]
    async with Engine(SqlRunStore(database), knowledge=database) as engine:
        await engine.run_many(workflow(), tasks)


async def resume(url: str) -> None:
    PHASE["phase"] = "resume"
    database = Database(url)
    async with Engine(SqlRunStore(database), knowledge=database) as engine:
        results = await engine.resume_all(workflow())
    print(json.dumps({r.run_id: r.status.value for r in results}))
    database.dispose()


if __name__ == "__main__":
    command, url = sys.argv[1], sys.argv[2]
    if command == "start":
        asyncio.run(start(url, int(sys.argv[3])))
    else:
        asyncio.run(resume(url))
