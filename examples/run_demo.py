"""Customer-support triage that learns from feedback, end to end (``make demo``).

    python examples/run_demo.py [--quick] [--out DIR] [--db URL] [--tickets N] [--rounds N]
                                [--budget N] [--seed N] [--threads N] [--base-model DIR]
                                [--data CSV --articles JSON] [--serve PORT]

1. Creates a knowledge base (SQLite in ``--out``, or ``--db`` PostgreSQL) and ingests one
   help article per intent.
2. Trains the first agents: the intent classifier from a small seed of labels (a recorded
   fine-tuning round, which also freezes the promotion gate's holdout), the slot extractor
   on NLU++, the policy model; the retriever serves the base MiniLM as it is.
3. Streams unseen Banking77 tickets through the workflow, concurrently, in rounds. After
   each batch a simulated reviewer labels the most uncertain intent predictions (within a
   budget), a fine-tuning round trains a candidate, and the promotion gate decides whether
   it replaces the serving model, which the workflow then picks up without stopping.
4. Prints a table per round and writes ``report.md`` and ``rounds.png`` into ``--out``.
5. With ``--serve PORT`` (the ``service`` extra), serves the workflow and the dashboard over
   the demo's knowledge base until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the base model is packaged: never download
sys.path.insert(0, str(Path(__file__).parent))  # run as a script: support_triage imports

from runner_kit import add_run_args, progress_bar, quiet_libraries, say, serve
from support_triage import data, flow, training
from support_triage.actions import count_rows, create_tables
from support_triage.report import RoundRow, plot_rounds, table, write_report
from support_triage.review import batch_stats, review

from agents import EntityExtractor, Retriever, TextClassifier
from finetune import TrainConfig
from knowledge import Database, SqlRunStore, add_document, model_versions, serving_version
from workflow import CompiledWorkflow, Engine, RunResult

# --quick: 20 intents that are easy to confuse (card delivery, card trouble, payments,
# top-ups, transfers), the two card-at-risk ones included, so there is something to learn.
QUICK_INTENTS = [
    "card_arrival",
    "card_delivery_estimate",
    "get_physical_card",
    "order_physical_card",
    "card_not_working",
    "card_swallowed",
    "lost_or_stolen_card",
    "compromised_card",
    "card_payment_not_recognised",
    "card_payment_fee_charged",
    "declined_card_payment",
    "pending_card_payment",
    "transaction_charged_twice",
    "reverted_card_payment?",
    "top_up_failed",
    "top_up_reverted",
    "pending_top_up",
    "topping_up_by_card",
    "pending_transfer",
    "transfer_timing",
]


@dataclass(frozen=True)
class Preset:
    """Sizes of a run; ``--quick`` makes it a few-minute smoke run."""

    intents: list[str] | None
    tickets: int
    rounds: int
    budget: int
    seed_per_intent: int
    calibration_per_intent: int
    seed_epochs: int
    round_epochs: int
    slot_folds: list[int]
    slot_epochs: int
    policy_epochs: int


FULL = Preset(None, 4000, 4, 400, 10, 2, 5, 3, list(range(6)), 2, 4)
QUICK = Preset(QUICK_INTENTS, 480, 2, 80, 13, 5, 5, 3, [0, 1, 2], 1, 4)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: minutes, 20 intents")
    parser.add_argument("--tickets", type=int, help="tickets to stream (all rounds)")
    parser.add_argument("--rounds", type=int, help="feedback fine-tuning rounds")
    parser.add_argument("--budget", type=int, help="reviewer labels per round")
    parser.add_argument("--data", type=Path, help="your own tickets: CSV with text,category")
    parser.add_argument("--articles", type=Path, help="your own articles: JSON intent -> text")
    add_run_args(parser, out="demo-output", serves="the workflow and dashboard")
    args = parser.parse_args(argv)
    if (args.data is None) != (args.articles is None):
        parser.error("--data and --articles go together (one article per intent of the data)")
    return args


def prepare_out(out: Path, db_url: str | None) -> str:
    """Clear what an earlier demo run left in ``out``; return the knowledge base's URL."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("models", "runs"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("demo.db", "demo.db-wal", "demo.db-shm", "report.md", "rounds.png"):
        (out / name).unlink(missing_ok=True)
    return db_url or f"sqlite:///{(out / 'demo.db').resolve()}"


def index_articles(database: Database, retriever: Retriever, articles: dict[str, str]) -> None:
    """Store one document per intent (source = the intent), embedded by the retriever."""
    with database.transaction() as session:
        for intent, body in sorted(articles.items()):
            add_document(
                session,
                body,
                source=intent,
                title=intent.replace("_", " "),
                embedder=retriever.embedder,
            )


@dataclass
class Demo:
    """One demo run: its settings, knowledge base, data and output folder."""

    args: argparse.Namespace
    preset: Preset
    database: Database
    splits: data.Splits
    articles: dict[str, str]
    out: Path
    setup: list[str] = field(default_factory=list)  # set-up lines for the report

    def intent_config(self, epochs: int) -> TrainConfig:
        return training.intent_config(
            self.out / "runs", epochs=epochs, seed=self.args.seed, base_model=self.args.base_model
        )


def build_agents(demo: Demo) -> flow.TriageAgents:
    """Train or save every first model and return the serving agents."""
    models, preset, database, intents = (
        demo.out / "models",
        demo.preset,
        demo.database,
        demo.splits.intents,
    )
    retriever_art, selector_art = training.save_base_artifacts(models, demo.args.base_model)
    retriever = Retriever(retriever_art.path, sha256=retriever_art.sha256, k=3)
    index_articles(database, retriever, {i: demo.articles[i] for i in intents})
    demo.setup.append(f"knowledge base: {len(intents)} help articles indexed by the retriever")
    say(f"[1/3] knowledge base ready: {len(intents)} articles ({database.display_url})")

    say("[2/3] training the first agents")
    slots = training.train_extractor(
        models / "slots",
        folds=preset.slot_folds,
        epochs=preset.slot_epochs,
        seed=demo.args.seed,
        base_model=demo.args.base_model,
        progress=progress_bar,
    )
    demo.setup.append(
        f"slot extractor: NLU++ banking folds {preset.slot_folds}, {preset.slot_epochs} epoch(s)"
    )
    intent = first_intent_model(demo)
    examples = training.policy_examples(database, intent, retriever, demo.splits.calibration)
    say(f"  policy model: training on {len(examples)} calibration examples")
    policy = training.train_policy(
        models / "policy",
        examples,
        epochs=preset.policy_epochs,
        seed=demo.args.seed,
        base_model=demo.args.base_model,
        progress=progress_bar,
    )
    demo.setup.append(
        f"policy model: {len(examples)} calibration tickets, {preset.policy_epochs} "
        "epochs; rules: lost/stolen/compromised card -> escalate + freeze; disputes and "
        "missing money -> escalate; intent confidence < 0.5 -> clarify"
    )
    return flow.TriageAgents(
        intent=intent,
        slots=EntityExtractor(slots.path, sha256=slots.sha256),
        article=retriever,
        policy=flow.policy_agent(
            policy.path, policy.sha256, min_intent_confidence=0.5, min_confidence=None
        ),
        act=flow.selector_agent(selector_art.path, selector_art.sha256),
    )


def first_intent_model(demo: Demo) -> TextClassifier:
    """Record the seed labels, run round 0 (it freezes the holdout) and serve its model."""
    labelled = training.record_seed_labels(demo.database, demo.splits.seed, demo.splits.intents)
    say(f"  training intent classifier on {labelled} seed labels (round 0, a recorded job) ...")
    began = time.perf_counter()
    first = training.train_round(demo.database, demo.intent_config(demo.preset.seed_epochs))
    if not first.promoted or first.decision is None:
        raise SystemExit(f"The first intent model was not promoted: {first.job.error}")
    holdout = first.decision.candidate["accuracy"]
    say(
        f"  intent model {first.job.candidate_version}: holdout accuracy {holdout:.3f} "
        f"({time.perf_counter() - began:.0f} s)"
    )
    demo.setup.append(
        f"intent classifier: {labelled} seed labels ({demo.preset.seed_per_intent} per "
        f"intent), {demo.preset.seed_epochs} epochs; frozen-holdout accuracy {holdout:.3f}"
    )
    return TextClassifier.from_registry(demo.database, training.INTENT_AGENT)


async def run_batch(
    engine: Engine, compiled: Any, rows: Sequence[data.TicketRow], start: int
) -> list[RunResult]:
    tasks = [{"ticket_id": f"T{start + i:05d}", "text": row.text} for i, row in enumerate(rows)]
    return await engine.run_many(compiled, tasks, concurrency=64)


async def run_rounds(
    demo: Demo, agents: flow.TriageAgents, compiled: CompiledWorkflow
) -> list[RoundRow]:
    """Stream the batches; review, fine-tune and refresh between them."""
    rounds = demo.preset.rounds
    size = max(1, len(demo.splits.stream) // (rounds + 1))
    batches = [demo.splits.stream[i * size : (i + 1) * size] for i in range(rounds + 1)]
    rows: list[RoundRow] = []
    truth: dict[str, str] = {}  # every ticket's true intent, by run: the reviewer's knowledge
    say(
        f"[3/3] streaming {size * len(batches)} tickets in {len(batches)} batches; "
        f"{rounds} feedback rounds, {demo.preset.budget} labels each"
    )
    # Every step is committed to the knowledge base (durable runs), and so are the
    # predictions, which the review queue finds by run.
    async with Engine(SqlRunStore(demo.database), knowledge=demo.database) as engine:
        for index, batch in enumerate(batches):
            began, since = time.perf_counter(), time.time()
            model = agents.intent.model_version
            results = await run_batch(engine, compiled, batch, index * size)
            stats = batch_stats(results, [r.intent for r in batch])
            row = RoundRow(index, model, stats, time.perf_counter() - began)
            if index < rounds:
                truth.update({r.run_id: t.intent for r, t in zip(results, batch, strict=True)})
                row = await asyncio.to_thread(feedback_round, demo, agents, row, truth, since)
            rows.append(row)
            say(f"round {index}: {_summary(row)}")
    print(f"\n{table(rows)}\n", flush=True)
    return rows


def _summary(row: RoundRow) -> str:
    b = row.batch
    line = (
        f"{b.tickets} tickets on {row.model} in {row.stream_s:.0f} s: intent accuracy "
        f"{b.accuracy:.3f}, auto-resolved {b.auto_resolved:.1%}, {b.wrong_replies} wrong replies"
    )
    if row.review is None:
        return line
    line += f"; {row.review.labelled} labels ({row.review.corrected} corrections)"
    if row.holdout is not None:
        serving = "-" if row.holdout[1] is None else f"{row.holdout[1]:.3f}"
        line += f"; candidate {row.holdout[0]:.3f} vs serving {serving} on the holdout"
    return f"{line} -> {row.outcome} ({row.train_s:.0f} s)"


def feedback_round(
    demo: Demo, agents: flow.TriageAgents, row: RoundRow, truth: dict[str, str], since: float
) -> RoundRow:
    """Review the batch, fine-tune a candidate, and serve it if the gate promoted it."""
    reviewed = review(demo.database, truth, budget=demo.preset.budget, since=since)
    began = time.perf_counter()
    result = training.train_round(demo.database, demo.intent_config(demo.preset.round_epochs))
    agents.intent.refresh_from_registry(demo.database)
    decision = result.decision
    holdout = None
    if decision is not None:
        serving = decision.serving["accuracy"] if decision.serving else None
        holdout = (float(decision.candidate["accuracy"]), serving)
    outcome = "promoted" if result.promoted else result.job.status
    return dataclasses.replace(
        row,
        review=reviewed,
        outcome=outcome,
        holdout=holdout,
        train_s=time.perf_counter() - began,
    )


def choose_preset(args: argparse.Namespace) -> Preset:
    """The preset, with the sizes given on the command line."""
    preset = QUICK if args.quick else FULL
    changes = {k: getattr(args, k) for k in ("tickets", "rounds", "budget") if getattr(args, k)}
    if args.data is not None:
        changes["intents"] = None  # every intent of the user's data
    return dataclasses.replace(preset, **changes)


def finish(demo: Demo, rows: list[RoundRow], elapsed: float) -> None:
    """Print the totals; write the report and the plot."""
    with demo.database.session() as session:
        final = serving_version(session, training.INTENT_AGENT)
    totals = (
        f"Serving intent model at the end: {final.version if final else '-'}. Rows written "
        f"by the actions: {count_rows(demo.database)}. Total time {elapsed:.0f} s."
    )
    preset = demo.preset
    settings = (
        f"{'--quick, ' if demo.args.quick else ''}{preset.tickets} tickets, "
        f"{preset.rounds} rounds, budget {preset.budget}, seed {demo.args.seed}"
    )
    plot = plot_rounds(rows, demo.out / "rounds.png")
    report = write_report(
        demo.out / "report.md", rows, settings=settings, setup=demo.setup, totals=totals
    )
    print(f"\n{totals}\nReport: {report}\nPlot: {plot}")


def holds_a_run(url: str) -> bool:
    """Whether the database at ``url`` has intent models already (an earlier demo run)."""
    with Database(url, auto_upgrade=True) as database, database.session() as session:
        return bool(model_versions(session, training.INTENT_AGENT))


def load_data(args: argparse.Namespace, preset: Preset) -> tuple[data.Splits, dict[str, str]]:
    """The tickets, split, and the articles; refuse data the demo cannot run on."""
    splits = data.split_tickets(
        data.load_banking77(args.data),
        seed_per_intent=preset.seed_per_intent,
        calibration_per_intent=preset.calibration_per_intent,
        tickets=preset.tickets,
        seed=args.seed,
        intents=preset.intents,
    )
    articles = data.load_articles(args.articles or data.ARTICLES_FILE, intents=splits.intents)
    if not set(splits.intents) & training.HUMAN_INTENTS:
        raise ValueError(
            "The policy learns when to escalate from the intents a person handles "
            f"({', '.join(sorted(training.HUMAN_INTENTS))}), and the data has none of them: "
            "name one of your categories like one of these."
        )
    return splits, articles


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; see the module docstring."""
    args = parse_args(argv)
    preset = choose_preset(args)
    started = time.perf_counter()
    out = args.out.resolve()
    try:
        splits, articles = load_data(args, preset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_libraries(args.threads)
    if args.db and holds_a_run(args.db):
        print(f"error: {args.db} holds an earlier demo run: use an empty one.", file=sys.stderr)
        return 2
    database = Database(prepare_out(out, args.db), auto_upgrade=True)
    create_tables(database)
    demo = Demo(args, preset, database, splits, articles, out)
    demo.setup.append(
        f"data: {len(splits.intents)} intents; {len(splits.stream)} unseen tickets, split by "
        "intent and fixed by seed"
    )
    agents = build_agents(demo)
    compiled = flow.build_workflow(agents)
    rows = asyncio.run(run_rounds(demo, agents, compiled))
    finish(demo, rows, time.perf_counter() - started)
    status = serve(database, compiled, args.serve, name="demo") if args.serve else 0
    database.dispose()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
