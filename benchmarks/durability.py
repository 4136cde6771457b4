"""Durable steps: taskloom's SQL run store vs LangGraph's checkpointers, same 4 no-op steps.

    python -m benchmarks.durability [--quick] [--json PATH] [--postgres-url URL]

Both engines run the 4-step support workflow (perceive -> reason -> decide -> execute or
escalate, one conditional route) with no-op steps, persisting every step before the next
starts: taskloom records each step through ``SqlRunStore`` (one committed insert per step,
plus the run's own row); LangGraph checkpoints each superstep with ``durability="sync"``,
each run on a new thread. Backends, side by side in one process:

- SQLite file, ``synchronous=NORMAL`` (taskloom's setting: a commit survives the process
  being killed, the last commits may be lost on power failure). LangGraph's connection gets
  the same pragma, so both promise the same durability. This row carries the target.
- SQLite file, ``synchronous=FULL`` (what ``SqliteSaver`` gets by default: an fsync per
  commit, survives power loss). taskloom's connections get the same pragma.
- PostgreSQL (``--postgres-url``, else env ``TASKLOOM_TEST_POSTGRES_URL``): a throwaway
  database per engine on that server, dropped afterwards; skipped when no URL is given.

Rounds are interleaved (every engine/backend times one batch of runs per round, so machine
noise hits all alike); the table reports the median over rounds of milliseconds per step
(batch time / (runs x 4)), run creation and completion included. After timing, the
databases are checked: every taskloom run has its 4 step rows and every LangGraph thread
its checkpoints. A last row measures feedback ingest on SQLite: ``submit_feedback_many`` in
batches of 1,000, one transaction per batch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.pool import NullPool

from benchmarks._peers import SUPPORT4_STEPS, check_peers, langgraph_support4_durable
from benchmarks._report import write_json
from benchmarks._taskloom_side import support4
from benchmarks.engine_overhead import _peer_runner, _taskloom_runner
from knowledge import (
    Database,
    FeedbackIn,
    PredictionIn,
    SqlRunStore,
    record_predictions,
    submit_feedback_many,
)
from workflow import Engine

TARGET_MS = 1.0
TARGET_RATIO = 3.0
TARGET_FEEDBACK_ROWS_S = 5_000.0
FEEDBACK_BATCH = 1_000
Timer = Callable[[int], float]


class Backends(contextlib.ExitStack):
    """Creates every engine/backend pair, and removes their databases on exit."""

    def __init__(self, folder: Path, postgres_url: str | None) -> None:
        super().__init__()
        self.folder = folder
        self.postgres_url = postgres_url
        self.checks: dict[str, Callable[[], dict[str, Any]]] = {}

    def timers(self) -> dict[str, dict[str, Timer]]:
        """Per backend: a timer per engine (``time(k)``: seconds for ``k`` runs)."""
        found = {}
        for sync in ("NORMAL", "FULL"):
            label = f"sqlite synchronous={sync}"
            found[label] = {
                "taskloom": self._taskloom(label, f"sqlite:///{self.folder}/tl-{sync}.db", sync),
                "langgraph": self._langgraph_sqlite(label, self.folder / f"lg-{sync}.db", sync),
            }
        if self.postgres_url:
            found["postgresql"] = {
                "taskloom": self._taskloom("postgresql", self._pg_database("taskloom"), None),
                "langgraph": self._langgraph_postgres(self._pg_database("langgraph")),
            }
        return found

    def _taskloom(self, label: str, url: str, synchronous: str | None) -> Timer:
        database = self.enter_context(Database(url))
        if database.dialect == "postgresql":
            database.upgrade()
        if synchronous is not None:  # runs after Database's own pragmas: overrides NORMAL
            pragma = f"PRAGMA synchronous = {synchronous}"
            event.listen(database.engine, "connect", lambda conn, _: conn.execute(pragma))
            database.dispose()
        self.checks[f"taskloom {label}"] = lambda: _check_taskloom(database)
        return _taskloom_runner(Engine(SqlRunStore(database)), support4())

    def _langgraph_sqlite(self, label: str, path: Path, synchronous: str) -> Timer:
        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: PLC0415 - optional peer

        # As SqliteSaver.from_conn_string opens it, plus the pragma under test.
        conn = sqlite3.connect(path, check_same_thread=False)
        self.callback(conn.close)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        saver = SqliteSaver(conn)
        saver.setup()
        self.checks[f"langgraph {label}"] = lambda: _check_langgraph(conn.execute, "writes")
        return _peer_runner(langgraph_support4_durable(saver))

    def _langgraph_postgres(self, url: str) -> Timer:
        from langgraph.checkpoint.postgres import PostgresSaver  # noqa: PLC0415

        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        saver = self.enter_context(PostgresSaver.from_conn_string(libpq))
        saver.setup()
        conn: Any = saver.conn  # a Connection here (from_conn_string), not a pool
        self.checks["langgraph postgresql"] = lambda: _check_langgraph(
            conn.execute, "checkpoint_writes"
        )
        return _peer_runner(langgraph_support4_durable(saver))

    def _pg_database(self, engine: str) -> str:
        """A fresh database on the server; dropped when the benchmark ends."""
        assert self.postgres_url is not None
        server = make_url(self.postgres_url).set(drivername="postgresql+psycopg")
        admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        name = f"taskloom_bench_{engine}_{uuid.uuid4().hex[:8]}"

        def run(sql: str) -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(sql)

        run(f'CREATE DATABASE "{name}"')
        self.callback(admin.dispose)
        self.callback(run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return server.set(database=name).render_as_string(hide_password=False)


def _check_taskloom(database: Database) -> dict[str, Any]:
    with database.engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
        steps = conn.execute(text("SELECT count(*) FROM steps")).scalar_one()
        unfinished = conn.execute(
            text("SELECT count(*) FROM runs WHERE status <> 'succeeded'")
        ).scalar_one()
    if steps != runs * SUPPORT4_STEPS or unfinished:
        raise AssertionError(f"taskloom: {runs} runs, {steps} steps, {unfinished} unfinished")
    return {"runs": runs, "step_rows": steps}


def _check_langgraph(execute: Callable[[str], Any], writes_table: str) -> dict[str, Any]:
    def values(sql: str) -> tuple[Any, ...]:
        row = execute(sql).fetchone()  # a tuple (sqlite3) or a dict (PostgresSaver's rows)
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)

    threads, checkpoints = values(
        "SELECT count(DISTINCT thread_id) AS threads, count(*) AS n FROM checkpoints"
    )
    (writes,) = values(f"SELECT count(*) AS n FROM {writes_table}")
    if not threads or checkpoints < threads * SUPPORT4_STEPS:
        raise AssertionError(f"langgraph: {threads} threads, {checkpoints} checkpoints")
    return {
        "runs": threads,
        "checkpoints_per_run": checkpoints / threads,
        "writes_per_run": writes / threads,
    }


def measure(
    timers: dict[str, dict[str, Timer]], rounds: int, runs: int
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per step of every batch, per backend and engine."""
    samples: dict[str, dict[str, list[float]]] = {
        backend: {e: [] for e in per} for backend, per in timers.items()
    }
    for _ in range(rounds):
        for backend, per in timers.items():
            for engine_name, timed in per.items():
                seconds = timed(runs)
                samples[backend][engine_name].append(seconds / (runs * SUPPORT4_STEPS) * 1e3)
    return samples


LABELS = ["card_lost", "balance", "transfer"]


def _prediction(i: int) -> PredictionIn:
    label = LABELS[i % 3]
    return PredictionIn(
        agent="intent",
        model_version="v1",
        input={"text": f"query {i}"},
        output={"label": label},
        label=label,
        confidence=0.5,
        probabilities=[0.5, 0.3, 0.2],
        label_set=LABELS,
    )


def feedback_ingest(folder: Path, rows: int, rounds: int) -> float:
    """Median feedback rows per second into SQLite, in batches of ``FEEDBACK_BATCH``."""
    with Database(f"sqlite:///{folder}/feedback.db") as database:
        with database.transaction() as session:
            predictions = record_predictions(session, [_prediction(i) for i in range(rows)])
        rates = []
        for round_ in range(rounds):  # a new reviewer per round: no duplicate feedback
            items = [
                FeedbackIn(
                    prediction_id=p.id,
                    label=LABELS[(i + 1) % 3],
                    source="human",
                    author=f"reviewer-{round_}",
                    shown={"text": f"query {i}"},
                )
                for i, p in enumerate(predictions)
            ]
            start = time.perf_counter()
            for at in range(0, rows, FEEDBACK_BATCH):
                with database.transaction() as session:
                    submit_feedback_many(session, items[at : at + FEEDBACK_BATCH])
            rates.append(rows / (time.perf_counter() - start))
    return statistics.median(rates)


def summarize(samples: dict[str, dict[str, list[float]]], feedback: float) -> dict[str, Any]:
    """Medians, ratios and the issue's targets."""
    medians = {b: {e: statistics.median(v) for e, v in per.items()} for b, per in samples.items()}
    ratios = {b: {"langgraph/taskloom": m["langgraph"] / m["taskloom"]} for b, m in medians.items()}
    main = "sqlite synchronous=NORMAL"
    targets = {
        f"taskloom on SQLite <= {TARGET_MS} ms/step, every step durable": medians[main]["taskloom"]
        <= TARGET_MS,
        f">= {TARGET_RATIO}x lower than LangGraph's SQLite checkpointer (same durability)": (
            ratios[main]["langgraph/taskloom"] >= TARGET_RATIO
        ),
        f">= {TARGET_FEEDBACK_ROWS_S:,.0f} feedback rows/s on SQLite": feedback
        >= TARGET_FEEDBACK_ROWS_S,
    }
    return {
        "median_ms_per_step": medians,
        "ratios": ratios,
        "feedback_ingest_rows_per_s": {"sqlite": feedback},
        "targets": targets,
    }


def render(summary: dict[str, Any], rounds: int, runs: int) -> str:
    """The results as a Markdown table."""
    lines = [
        "| backend | taskloom ms/step | langgraph ms/step | langgraph/taskloom |",
        "|---|---|---|---|",
    ]
    for backend, m in summary["median_ms_per_step"].items():
        ratio = summary["ratios"][backend]["langgraph/taskloom"]
        lines.append(f"| {backend} | {m['taskloom']:.3f} | {m['langgraph']:.3f} | {ratio:.1f}x |")
    rate = summary["feedback_ingest_rows_per_s"]["sqlite"]
    lines += [
        "",
        f"feedback ingest on SQLite (submit_feedback_many, batches of {FEEDBACK_BATCH:,}): "
        f"{rate:,.0f} rows/s",
        f"medians over {rounds} interleaved rounds of {runs} runs ({runs * SUPPORT4_STEPS} steps)",
    ]
    lines += [f"- [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in summary["targets"].items()]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("langgraph", "langgraph-checkpoint-sqlite", "langgraph-checkpoint-postgres"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["sqlite"] = sqlite3.sqlite_version
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 60 s)")
    parser.add_argument("--json", type=Path, help="write results as JSON to this path")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TASKLOOM_TEST_POSTGRES_URL"),
        help="PostgreSQL server for the postgresql rows (default: env "
        "TASKLOOM_TEST_POSTGRES_URL; none: those rows are skipped)",
    )
    args = parser.parse_args(argv)
    check_peers()  # the peer graph really runs the intended steps and routes
    rounds, runs, feedback_rows = (5, 20, 5_000) if args.quick else (21, 100, 20_000)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="taskloom-durability-") as tmp,
        Backends(Path(tmp), args.postgres_url) as backends,
    ):
        folder = Path(tmp)
        samples = measure(backends.timers(), rounds, runs)
        checks = {name: check() for name, check in backends.checks.items()}
        feedback = feedback_ingest(folder, feedback_rows, 3)
    summary = summarize(samples, feedback)
    print(render(summary, rounds, runs))
    if not args.postgres_url:
        print("postgresql: skipped (pass --postgres-url or set TASKLOOM_TEST_POSTGRES_URL)")
    if args.json:
        meta = {"benchmark": "durability", "quick": args.quick, "rounds": rounds,
                "runs_per_batch": runs, "versions": _versions()}  # fmt: skip
        write_json(args.json, meta, {**summary, "checks": checks}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
