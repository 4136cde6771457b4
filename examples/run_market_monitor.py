"""Market-sentiment monitoring that learns from analysts' verdicts, end to end.

    python examples/run_market_monitor.py [--quick] [--out DIR] [--db URL] [--days N]
                                          [--seed N] [--threads N] [--webhook URL]
                                          [--base-model DIR] [--serve PORT]

1. Creates a knowledge base (SQLite in ``--out``, or ``--db`` PostgreSQL), stores the
   entity gazetteer as facts and puts the watchlist's entities on it.
2. Trains the sentiment classifier on the financial tweets' training split (a recorded
   round: it freezes a holdout and promotes the first model).
3. Replays the other tweets as days of news with injected event and chatter bursts (fixed
   by ``--seed``; see ``market_monitor.data``), five-minute bucket by bucket.
4. Day 0 calibrates: the workflow only observes, and the simulated analyst labels the
   decisions the rules would leave to the model; the first alert policy is trained on them.
5. Every later day runs the whole workflow (alerts into the outbox, and to ``--webhook`` if
   given); then the analyst judges every alert useful or noise and labels the most
   uncertain decisions, a round trains a candidate policy, and the gate decides whether it
   serves the next day.
6. Prints the round table and the digest's first lines; writes ``report.md``,
   ``rounds.png`` and ``digest.md`` (the last day) into ``--out``.
7. With ``--serve PORT`` (the ``service`` extra), serves the workflow, the dashboard and
   the analysts' alert routes over the knowledge base until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the base model is packaged: never download
sys.path.insert(0, str(Path(__file__).parent))  # run as a script: market_monitor imports

from market_monitor import analyst, data, training
from market_monitor.analyst import Ran
from market_monitor.digest import write_digest
from market_monitor.entities import load_entities, set_watchlist, store_entities
from market_monitor.flow import (
    DECISION_AGENT,
    DECISIONS,
    AlertRules,
    build_workflow,
    monitor_agents,
)
from market_monitor.history import bucket_start
from market_monitor.report import RoundRow, plot_rounds, table, write_report
from market_monitor.tables import create_tables
from runner_kit import add_run_args, quiet_libraries, say, serve

from knowledge import Database, SqlRunStore, model_versions
from workflow import CompiledWorkflow, Engine

BUCKET_S = 300.0
CASHTAG_TICKER = re.compile(r"[A-Z]{1,5}")  # bursts put "$TICKER" in front of a tweet
WATCHLIST = ("BA",)


@dataclass(frozen=True)
class Preset:
    """Sizes of a run; ``--quick`` makes it a smoke run of a couple of minutes."""

    sentiment_tweets: int
    sentiment_epochs: int
    stream: data.StreamConfig
    seed_labels: int
    review_budget: int
    policy_epochs: int


FULL = Preset(4000, 3, data.StreamConfig(5, 500, 8, 8), 60, 60, 8)
QUICK = Preset(1200, 2, data.StreamConfig(3, 250, 5, 5), 60, 30, 8)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: about two minutes")
    parser.add_argument("--days", type=int, help="days of news, the calibration day included")
    parser.add_argument("--webhook", help="also deliver the alerts to this URL (outbox pattern)")
    add_run_args(parser, out="monitor-output", serves="the workflow, dashboard and alert routes")
    args = parser.parse_args(argv)
    if args.days is not None and args.days < 2:
        parser.error("--days must be at least 2 (a calibration day and a day of alerts)")
    return args


def prepare_out(out: Path, db_url: str | None) -> str:
    """Clear what an earlier run left in ``out``; return the knowledge base's URL."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)
    for name in ("monitor.db", "monitor.db-wal", "monitor.db-shm"):
        (out / name).unlink(missing_ok=True)
    for name in ("report.md", "rounds.png", "digest.md"):
        (out / name).unlink(missing_ok=True)
    return db_url or f"sqlite:///{(out / 'monitor.db').resolve()}"


@dataclass
class Monitor:
    """One run: its settings, knowledge base, stream and output folder."""

    args: argparse.Namespace
    preset: Preset
    database: Database
    stream: data.Stream
    out: Path
    rules: AlertRules = field(default_factory=AlertRules)
    setup: list[str] = field(default_factory=list)
    runs: list[Ran] = field(default_factory=list)  # every tweet run so far, with its run

    def policy_config(self) -> training.TrainConfig:
        return training.policy_config(
            self.out / "runs" / "policy",
            epochs=self.preset.policy_epochs,
            seed=self.args.seed,
            base_model=self.args.base_model,
        )


async def stream_day(
    monitor: Monitor, engine: Engine, compiled: CompiledWorkflow, day: int
) -> list[Ran]:
    """Run the day's tweets bucket by bucket; tweets of one bucket run concurrently."""
    buckets: dict[float, list[data.Item]] = defaultdict(list)
    for item in monitor.stream.day(day):
        buckets[bucket_start(item.published_at, BUCKET_S)].append(item)
    runs: list[Ran] = []
    for start in sorted(buckets):
        items = buckets[start]
        tasks = [
            {"item_id": i.item_id, "text": i.text, "published_at": i.published_at} for i in items
        ]
        results = await engine.run_many(compiled, tasks, concurrency=64)
        runs += list(zip(items, results, strict=True))
    if monitor.args.webhook:
        from market_monitor.webhook import deliver  # noqa: PLC0415 - only with --webhook

        delivery = deliver(monitor.database, monitor.args.webhook)
        say(f"  webhook: {delivery.delivered} delivered, {delivery.pending} pending")
    monitor.runs += runs
    return runs


def sentiment_accuracy(runs: Sequence[Ran]) -> float:
    """The classifier's accuracy on the day's tweets (true labels from the dataset)."""
    done = [(i, r) for i, r in runs if r.ok]
    right = sum(r.outputs["sentiment"].label == i.sentiment for i, r in done)  # type: ignore[attr-defined]
    return right / max(1, len(done))


def train_sentiment(monitor: Monitor, tweets: Sequence[data.Tweet]) -> None:
    args, preset = monitor.args, monitor.preset
    say(f"[1/3] sentiment classifier: {len(tweets)} labelled tweets (a recorded round) ...")
    began = time.perf_counter()
    config = training.sentiment_config(
        monitor.out / "runs" / "sentiment",
        epochs=preset.sentiment_epochs,
        seed=args.seed,
        base_model=args.base_model,
    )
    result = training.sentiment_round(monitor.database, tweets, config)
    if not result.promoted or result.decision is None:
        raise SystemExit(f"The sentiment model was not promoted: {result.job.error}")
    accuracy = result.decision.candidate["accuracy"]
    say(
        f"  sentiment {result.job.candidate_version}: holdout accuracy {accuracy:.3f} "
        f"({time.perf_counter() - began:.0f} s)"
    )
    monitor.setup.append(
        f"sentiment classifier: {len(tweets)} tweets (a fifth held out), "
        f"{preset.sentiment_epochs} epochs; frozen-holdout accuracy {accuracy:.3f}"
    )


async def calibrate(monitor: Monitor, engine: Engine) -> None:
    """Day 0: observe, label the rules' undecided cases, train the first alert policy."""
    agents = monitor_agents(monitor.database, None, bucket_s=BUCKET_S)
    runs = await stream_day(monitor, engine, build_workflow(agents), 0)
    examples = analyst.calibration_labels(
        runs,
        monitor.stream.bursts,
        monitor.rules,
        limit=monitor.preset.seed_labels,
        seed=monitor.args.seed,
    )
    wanted = sum(label == "alert" for _, label in examples)
    say(
        f"[2/3] calibration day: {len(runs)} tweets observed; the analyst labels "
        f"{len(examples)} undecided cases ({wanted} alert) ..."
    )
    training.record_labels(monitor.database, DECISION_AGENT, examples, DECISIONS)
    result = await asyncio.to_thread(
        training.policy_round, monitor.database, monitor.policy_config()
    )
    if not result.promoted or result.decision is None:
        raise SystemExit(f"The first alert policy was not promoted: {result.job.error}")
    f1 = result.decision.candidate["macro_f1"]
    say(f"  alert policy {result.job.candidate_version}: holdout macro F1 {f1:.3f}")
    monitor.setup.append(
        f"alert policy: {len(examples)} calibration labels ({wanted} alert), "
        f"{monitor.preset.policy_epochs} epochs; frozen-holdout macro F1 {f1:.3f}"
    )


def feedback_round(monitor: Monitor, row: RoundRow) -> RoundRow:
    """The analyst's verdicts and review, then a round of the alert policy."""
    db, bursts = monitor.database, monitor.stream.bursts
    verdicts = analyst.mark_day(db, bursts, row.day)
    reviewed = analyst.review_uncertain(
        db, analyst.seen_in(monitor.runs), bursts, budget=monitor.preset.review_budget
    )
    began = time.perf_counter()
    result = training.policy_round(db, monitor.policy_config())
    decision = result.decision
    holdout = None
    if decision is not None:
        serving = decision.serving["macro_f1"] if decision.serving else None
        holdout = (float(decision.candidate["macro_f1"]), serving)
    return dataclasses.replace(
        row,
        verdicts=verdicts,
        reviewed=reviewed,
        holdout=holdout,
        outcome="promoted" if result.promoted else result.job.status,
        train_s=time.perf_counter() - began,
    )


def _summary(row: RoundRow) -> str:
    s = row.score
    line = (
        f"{row.tweets} tweets on {row.model} in {row.stream_s:.0f} s: {s.alerts} alerts "
        f"(+{s.watchlist} watchlist), precision {s.precision:.2f}, recall {s.recall:.2f} "
        f"({s.caught}/{s.events} events)"
    )
    if row.outcome:
        line += f"; verdicts {row.verdicts}, queue labels {row.reviewed} -> {row.outcome}"
    return line


async def run_days(monitor: Monitor) -> list[RoundRow]:
    """Calibrate on day 0, then stream each day, learning between days."""
    rows: list[RoundRow] = []
    days = monitor.preset.stream.days
    # Every step is committed to the knowledge base (durable runs), and so are predictions.
    async with Engine(SqlRunStore(monitor.database), knowledge=monitor.database) as engine:
        await calibrate(monitor, engine)
        agents = monitor_agents(monitor.database, monitor.rules, bucket_s=BUCKET_S)
        compiled = build_workflow(agents)
        say(f"[3/3] streaming {days - 1} days of news; the analyst's feedback after each")
        for day in range(1, days):
            assert agents.policy is not None  # built with rules
            began = time.perf_counter()
            runs = await stream_day(monitor, engine, compiled, day)
            row = RoundRow(
                day=day,
                model=agents.policy.model_version,
                tweets=len(runs),
                failed=sum(not r.ok for _, r in runs),
                sentiment_accuracy=sentiment_accuracy(runs),
                score=analyst.score_day(monitor.database, monitor.stream.bursts, day),
                stream_s=time.perf_counter() - began,
            )
            if day < days - 1:
                row = await asyncio.to_thread(feedback_round, monitor, row)
                agents.policy.refresh_from_registry(monitor.database)
            rows.append(row)
            say(f"day {day}: {_summary(row)}")
    return rows


def finish(monitor: Monitor, rows: list[RoundRow], elapsed: float) -> None:
    """Print the table and the digest's head; write the report, the plot and the digest."""
    last = rows[-1].day
    since = data.START + last * data.DAY_S
    digest = write_digest(monitor.database, since, since + data.DAY_S)
    (monitor.out / "digest.md").write_text(digest, "utf-8")
    failed = sum(r.failed for r in rows)
    totals = f"Runs failed: {failed}. Total time {elapsed:.0f} s."
    s = monitor.preset.stream
    settings = (
        f"{'--quick, ' if monitor.args.quick else ''}{s.days} days ({s.background_per_day} "
        f"background tweets, {s.events_per_day} event and {s.chatter_per_day} chatter bursts "
        f"a day), review budget {monitor.preset.review_budget}, seed {monitor.args.seed}"
    )
    plot = plot_rounds(rows, monitor.out / "rounds.png")
    report = write_report(
        monitor.out / "report.md",
        rows,
        settings=settings,
        setup=monitor.setup,
        totals=totals,
        digest_file="digest.md",
    )
    print(f"\n{table(rows)}\n\n{totals}\n", flush=True)
    print("\n".join(digest.splitlines()[:12]))
    print(f"...\nReport: {report}\nPlot: {plot}\nDigest: {monitor.out / 'digest.md'}")


def setup_knowledge(args: argparse.Namespace, out: Path) -> Database | None:
    """The knowledge base with the example's tables, the gazetteer and the watchlist; None
    when ``--db`` holds an earlier run (its alert policy has versions)."""
    if args.db:  # refused before anything in --out is cleared
        with Database(args.db, auto_upgrade=True) as probe, probe.session() as session:
            if model_versions(session, DECISION_AGENT):
                return None
    database = Database(prepare_out(out, args.db), auto_upgrade=True)
    create_tables(database)
    store_entities(database, load_entities(), source="entities.json")
    for ticker in WATCHLIST:
        set_watchlist(database, ticker, on=True, author="run_market_monitor")
    return database


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor; see the module docstring."""
    args = parse_args(argv)
    preset = QUICK if args.quick else FULL
    if args.days:
        preset = dataclasses.replace(
            preset, stream=dataclasses.replace(preset.stream, days=args.days)
        )
    started = time.perf_counter()
    out = args.out.resolve()
    tweets, pool = data.split_tweets(
        data.load_tweets(), train=preset.sentiment_tweets, seed=args.seed
    )
    entities = load_entities()
    tickers = [e.ticker for e in entities if CASHTAG_TICKER.fullmatch(e.ticker)]
    try:
        stream = data.build_stream(pool, tickers, preset.stream, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    database = setup_knowledge(args, out)
    if database is None:
        print(f"error: {args.db} holds an earlier monitor run: use an empty one.", file=sys.stderr)
        return 2
    quiet_libraries(args.threads)
    monitor = Monitor(args, preset, database, stream, out)
    monitor.setup.append(
        f"data: {len(pool)} unseen tweets replayed as {preset.stream.days} days; "
        f"{len(stream.bursts)} bursts injected; gazetteer of {len(entities)} entities; "
        f"watchlist {', '.join(WATCHLIST)}"
    )
    train_sentiment(monitor, tweets)
    rows = asyncio.run(run_days(monitor))
    finish(monitor, rows, time.perf_counter() - started)
    status = 0
    if args.serve:
        from market_monitor.service import market_router  # noqa: PLC0415 - the service extra

        agents = monitor_agents(database, monitor.rules, bucket_s=BUCKET_S)
        workflow, routers = build_workflow(agents), [market_router(database)]
        status = serve(database, workflow, args.serve, name="market", routers=routers)
    database.dispose()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
