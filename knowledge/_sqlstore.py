"""The SQL run store: every step the engine records is committed before the next starts.

``SqlRunStore`` implements ``RunStore`` on the ``runs`` and ``steps`` tables. Each write is
one short transaction: one statement and its commit. Because the engine calls
``record_step`` after a step and before the next one starts, a committed record is a
checkpoint the run resumes from after a crash.

Writes are on the engine's hot path, so SQLAlchemy Core builds and compiles each write
statement once, and every call executes that SQL on a pooled DBAPI connection, which the
driver keeps prepared (sqlite3's statement cache; psycopg prepares it on the server after a
few uses). Going through ``Connection.execute`` instead measured 2-3x the cost of the insert
itself (events, execution contexts, a separate BEGIN), which would break the 1 ms budget
per durable step on SQLite. Reads use SQLAlchemy Core as usual.

What "committed" survives: on PostgreSQL, a crash of the process or of the machine. On
SQLite, the connections run WAL with ``synchronous=NORMAL``: a commit survives the process
being killed (SIGKILL included); after a power loss or OS crash the last few commits may be
rolled back, never corrupted (SQLite's documented WAL guarantee). Set ``synchronous=FULL``
on the database's connections if you need the stronger guarantee; it costs an fsync per step.

Inputs, outputs and tasks are stored as JSON (``model_dump(mode="json")`` for pydantic
models) after passing through the database's redactor; they come back as dicts, which the
engine validates again against the step's types on resume. One run is resumed by one
engine at a time: a second engine recording the same step of the same run gets
``RunConflictError`` instead of a silent duplicate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import Connection, Engine, Row, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import UpdateBase

from knowledge._db import READ_ONLY
from knowledge._errors import RunConflictError, RunNotFoundError
from knowledge._models import Run, Step
from knowledge._records import (
    RouteDecision,
    RunRecord,
    RunStatus,
    StepFailure,
    StepRecord,
    StepStatus,
)
from knowledge._runstore import check_list_args

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from knowledge._db import Database

__all__ = ["SqlRunStore"]

_RUNS = cast("Table", Run.__table__)  # typed as a FromClause
_STEPS = cast("Table", Step.__table__)  # typed as a FromClause
_RUN_KEYS = ("id", "workflow", "task", "status", "created_at", "finished_at", "error")
_STEP_COLUMNS = (
    _STEPS.c.seq, _STEPS.c.step, _STEPS.c.agent, _STEPS.c.status, _STEPS.c.visit,
    _STEPS.c.attempts, _STEPS.c.input, _STEPS.c.output, _STEPS.c.error, _STEPS.c.started_at,
    _STEPS.c.duration_s, _STEPS.c.decision_kind, _STEPS.c.decision_route,
    _STEPS.c.decision_targets, _STEPS.c.decision_rule, _STEPS.c.decision_reason,
)  # fmt: skip
_STEP_KEYS = ("run_id", *(column.key for column in _STEP_COLUMNS))


def _json(value: Any, redact: Callable[[Any], Any]) -> str | None:
    """JSON text of ``value`` (pydantic models dumped in JSON mode), redacted; None stays NULL."""
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return json.dumps(redact(value.model_dump(mode="json")))
    return json.dumps(redact(to_jsonable_python(value)))


class _Write:
    """A write statement compiled once, run on a pooled DBAPI connection, then committed."""

    __slots__ = ("_engine", "_integrity_error", "_order", "_sql")

    def __init__(self, engine: Engine, statement: UpdateBase, keys: Sequence[str] = ()) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=list(keys) or None)
        self._engine = engine
        self._sql = str(compiled)
        # qmark drivers (sqlite3) take a tuple in the compiled order; pyformat ones a dict.
        self._order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError

    def __call__(self, params: dict[str, Any]) -> int:
        """Execute and commit; return the row count. Raises ``IntegrityError`` (SQLAlchemy's)."""
        args = params if self._order is None else tuple(params[k] for k in self._order)
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, args)
                count = int(cursor.rowcount)
            finally:
                cursor.close()
            # PostgreSQL: ends the transaction the statement opened. SQLite: a no-op, as
            # Database switches the driver's implicit BEGIN off, so the single statement
            # was its own transaction, waiting on the busy timeout for the write lock.
            connection.commit()
        except self._integrity_error as exc:
            connection.rollback()
            raise IntegrityError(self._sql, params, exc) from exc
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool
        return count


class SqlRunStore:
    """A ``RunStore`` on the knowledge base's ``runs`` and ``steps`` tables.

    Safe to share between threads, engines and processes (each call checks a connection out
    of the database's pool for one transaction). It does not own the database: dispose of
    the ``Database`` when done. The first call makes the schema ready (an embedded SQLite
    database is migrated; a server's schema is checked, raising ``SchemaError``).

    Args:
        database: The knowledge base to record into.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._redact: Callable[[Any], Any] = database.redactor.json
        self._redact_text: Callable[[str], str] = database.redactor.text
        self._writes: tuple[_Write, _Write, _Write] | None = None
        self._get_run = select(
            _RUNS.c.workflow, _RUNS.c.task, _RUNS.c.status, _RUNS.c.created_at,
            _RUNS.c.finished_at, _RUNS.c.error,
        ).where(_RUNS.c.id == bindparam("run_id"))  # fmt: skip
        self._get_steps = (
            select(*_STEP_COLUMNS)
            .where(_STEPS.c.run_id == bindparam("run_id"))
            .order_by(_STEPS.c.seq)
        )

    def __repr__(self) -> str:
        return f"SqlRunStore({self.database!r})"

    def _ready(self) -> tuple[_Write, _Write, _Write]:
        """The write statements (create run, record step, finish run), schema made ready."""
        if self._writes is None:
            # Opening a session migrates an embedded database or checks a shared one.
            self.database.session().close()
            engine = self.database.engine
            finish = (
                update(_RUNS)
                .where(_RUNS.c.id == bindparam("run_id"))
                .values(
                    status=bindparam("new_status"),
                    finished_at=bindparam("at"),
                    error=bindparam("message"),
                )
            )
            self._writes = (
                _Write(engine, insert(_RUNS).inline(), _RUN_KEYS),
                _Write(engine, insert(_STEPS).inline(), _STEP_KEYS),
                _Write(engine, finish),
            )
        return self._writes

    def create_run(self, run: RunRecord) -> None:
        """Store a new run; committed when this returns."""
        self._ready()[0](
            {
                "id": run.run_id,
                "workflow": run.workflow,
                "task": _json(run.task, self._redact),
                "status": run.status.value,
                "created_at": run.created_at,
                "finished_at": run.finished_at,
                "error": None if run.error is None else self._redact_text(run.error),
            }
        )

    def record_step(self, record: StepRecord) -> None:
        """Append one step record to its run; committed (durable) when this returns.

        Raises:
            RunNotFoundError: The run was never created in this database.
            RunConflictError: The run already has a record with this sequence number:
                another engine is running or resuming the same run.
        """
        redact, decision = self._redact, record.decision
        params = {
            "run_id": record.run_id,
            "seq": record.seq,
            "step": record.step,
            "agent": record.agent,
            "status": record.status.value,
            "visit": record.visit,
            "attempts": record.attempts,
            "input": _json(record.input, redact),
            "output": _json(record.output, redact),
            "error": _json(record.error, redact),
            "started_at": record.started_at,
            "duration_s": record.duration_s,
            "decision_kind": decision.kind,
            "decision_route": decision.route,
            "decision_targets": json.dumps(decision.targets),
            "decision_rule": decision.rule,
            "decision_reason": decision.reason,
        }
        try:
            self._ready()[1](params)
        except IntegrityError as exc:
            self.get_run(record.run_id)  # raises RunNotFoundError: the foreign key failed
            raise RunConflictError(record.run_id, record.seq, record.step) from exc

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        """Mark a run finished; committed when this returns.

        Raises:
            RunNotFoundError: The run is not in this database.
        """
        params = {
            "run_id": run_id,
            "new_status": status.value,
            "at": time.time(),
            "message": None if error is None else self._redact_text(error),
        }
        if not self._ready()[2](params):
            raise RunNotFoundError(run_id)

    def _connect(self) -> Connection:
        """A connection for reads: on SQLite it reads without taking the write lock."""
        self._ready()
        return self.database.engine.connect().execution_options(**{READ_ONLY: True})

    def get_run(self, run_id: str) -> RunRecord:
        """Return a run (its task as a dict); raise ``RunNotFoundError`` if it is unknown."""
        with self._connect() as conn:
            row = conn.execute(self._get_run, {"run_id": run_id}).first()
        if row is None:
            raise RunNotFoundError(run_id)
        return _run_record(run_id, row)

    def steps(self, run_id: str) -> list[StepRecord]:
        """Return a run's step records in execution order, inputs and outputs as dicts."""
        with self._connect() as conn:
            rows = conn.execute(self._get_steps, {"run_id": run_id}).all()
        if not rows:
            self.get_run(run_id)  # an unknown run is an error, a new one has no steps
        return [_step_record(run_id, row) for row in rows]

    def unfinished(self, workflow: str | None = None) -> list[str]:
        """Return ids of runs still RUNNING (of one workflow, if given), oldest first."""
        query = select(_RUNS.c.id).where(_RUNS.c.status == RunStatus.RUNNING.value)
        if workflow is not None:
            query = query.where(_RUNS.c.workflow == workflow)
        query = query.order_by(_RUNS.c.created_at, _RUNS.c.id)
        with self._connect() as conn:
            return list(conn.execute(query).scalars())

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[RunRecord]:
        """Return runs newest first (tasks as dicts); see ``RunStore.list_runs``.

        Walks the ``created_at`` index backwards from ``before``, so a page costs the same
        however many runs are older.
        """
        wanted = check_list_args(limit, status)
        query = select(_RUNS.c.id, *self._get_run.selected_columns)
        if workflow is not None:
            query = query.where(_RUNS.c.workflow == workflow)
        if wanted is not None:
            query = query.where(_RUNS.c.status == wanted.value)
        if before is not None:
            query = query.where(_RUNS.c.created_at < before)
        query = query.order_by(_RUNS.c.created_at.desc(), _RUNS.c.id.desc()).limit(limit)
        with self._connect() as conn:
            rows = conn.execute(query).all()
        return [_run_record(row.id, row) for row in rows]


def _run_record(run_id: str, row: Row[Unpack[tuple[Any, ...]]]) -> RunRecord:
    return RunRecord(
        run_id, row.workflow, row.task, RunStatus(row.status), row.created_at,
        row.finished_at, row.error,
    )  # fmt: skip


def _step_record(run_id: str, row: Row[Unpack[tuple[Any, ...]]]) -> StepRecord:
    decision = RouteDecision(
        row.decision_kind,
        row.decision_route,
        tuple(row.decision_targets),
        row.decision_rule,
        row.decision_reason,
    )
    return StepRecord(
        run_id, row.seq, row.step, row.agent, StepStatus(row.status), row.visit, row.attempts,
        row.input, row.output,
        None if row.error is None else StepFailure.model_validate(row.error),
        row.started_at, row.duration_s, decision,
    )  # fmt: skip
