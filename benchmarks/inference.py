"""Model inference: the four-agent workflow vs the raw forward-pass limit, fp32 and int8.

    python -m benchmarks.inference [--quick] [--json PATH]

In one process, on the same texts (shuffled Banking77 messages), for each precision:

1. **The limit**: for each of the four models (intent classifier, retriever bi-encoder,
   policy classifier, action selector), tokenization plus forward pass with nothing around
   them, at batch sizes 1..64; its best items/s. The chain limit is what one item through
   all four costs at each model's best batch size: ``1 / sum(1 / best_i)`` items/s.
2. **taskloom**: the workflow perceive -> reason -> decide -> execute on the engine, 64
   concurrent runs, each step micro-batched across runs, with a SQLite knowledge base: every
   prediction is recorded, the retriever searches the indexed articles, the action runs
   under an idempotency key. Throughput in runs/s, and the latency of a run alone (p50,
   p99) against the sum of the four single-item forward passes (the limit for one run).
3. **int8**: each artifact quantized with ``quantize_artifact`` and served the same way.

Rounds alternate the limit and the workflow so machine noise hits both alike; tables
report medians over rounds. Resident memory is the serving process's peak (VmHWM) after
loading the four fp32 agents and serving one round through the workflow, before the limit's
own batches run (they are not serving) and before anything int8 exists; the artifacts are
built in a child process so that fitting their heads does not count.

The classifiers' heads are fitted on frozen base embeddings of a train split (seconds, not a
fine-tune): speed does not depend on the weights, but the int8 gate then measures real
accuracy on a disjoint validation split.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import _inference_setup as setup
from benchmarks._report import write_json
from knowledge import Database, MemoryRunStore
from workflow import CompiledWorkflow, Engine

BATCH_SIZES = (1, 8, 16, 32, 64)
CONCURRENCY = 64
# A micro-batch holds up to 64 runs; the agents cut it into length-sorted forward passes of
# 32, so each pads only to the longest of similar texts.
AGENT_BATCH = 32
TARGETS = {
    "workflow_vs_limit": 0.8,  # workflow runs/s >= 0.8x the chain limit
    "latency_vs_forwards": 1.3,  # single-run p50 <= 1.3x the sum of single-item forwards
    "rss_mb_fp32": 1200.0,  # resident memory serving all four agents, fp32
    "int8_speedup": 1.4,  # int8 workflow throughput >= 1.4x fp32
}


def rss_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak (Linux ``/proc``), in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"now": round(fields["VmRSS"], 1), "peak": round(fields["VmHWM"], 1)}


def forward_timer(agent: Any) -> Callable[[list[str]], None]:
    """Tokenize and run the agent's loaded model on a batch: the raw work, no framework."""
    import torch  # noqa: PLC0415 - heavy, lazy

    loaded = agent.loaded

    def run(texts: list[str]) -> None:
        tokens = loaded.tokenizer(
            texts, padding=True, truncation=True, max_length=setup.MAX_LENGTH, return_tensors="pt"
        )
        with torch.inference_mode():
            loaded.model(tokens["input_ids"], tokens["attention_mask"])

    return run


def measure_limit(agents: setup.Agents, data: setup.Data, items: int) -> dict[str, Any]:
    """Items/s of each model at each batch size over ``items`` texts (one round)."""
    texts, intents = data.split("serve")
    inputs = {
        name: setup.model_inputs(name, texts[:items], intents[:items]) for name in setup.MODELS
    }
    result: dict[str, Any] = {}
    for name, agent in zip(setup.MODELS, agents.all(), strict=True):
        run = forward_timer(agent)
        run(inputs[name][:8])  # warm the allocator for this model
        speeds, single_s = {}, []
        for size in BATCH_SIZES:
            count = min(items, 64) if size == 1 else items
            start = time.perf_counter()
            for i in range(0, count, size):
                t0 = time.perf_counter()
                run(inputs[name][i : i + size])
                if size == 1:
                    single_s.append(time.perf_counter() - t0)
            speeds[size] = count / (time.perf_counter() - start)
        result[name] = {"items_s": speeds, "single_ms": 1000 * statistics.median(single_s)}
    return result


async def measure_workflow(
    engine: Engine, compiled: CompiledWorkflow, texts: list[str], runs: int
) -> float:
    """Runs/s of ``runs`` tasks with ``CONCURRENCY`` in flight (one round)."""
    tasks = [{"text": text} for text in texts[:runs]]
    start = time.perf_counter()
    results = await engine.run_many(compiled, tasks, concurrency=CONCURRENCY)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if r.status.value != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark runs failed, e.g. {failed[0]}")
    return runs / elapsed


async def measure_latency(
    engine: Engine, compiled: CompiledWorkflow, texts: list[str]
) -> list[float]:
    """Milliseconds of each run alone, one after the other."""
    times = []
    for text in texts:
        start = time.perf_counter()
        await engine.run(compiled, {"text": text})
        times.append(1000 * (time.perf_counter() - start))
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(
    limits: list[dict[str, Any]], speeds: list[float], latency: list[float]
) -> dict[str, Any]:
    """Medians over rounds; the chain limit; the workflow's ratios to it."""
    models = {}
    for name in setup.MODELS:
        per_size = {
            size: statistics.median(r[name]["items_s"][size] for r in limits)
            for size in BATCH_SIZES
        }
        best = max(per_size, key=per_size.__getitem__)
        models[name] = {
            "items_s_by_batch": {str(k): round(v, 1) for k, v in per_size.items()},
            "best_batch": best,
            "best_items_s": round(per_size[best], 1),
            "single_ms": round(statistics.median(r[name]["single_ms"] for r in limits), 2),
        }
    chain = 1 / sum(1 / m["best_items_s"] for m in models.values())
    runs_s = statistics.median(speeds)
    forwards_ms = sum(m["single_ms"] for m in models.values())
    p50 = statistics.median(latency)
    return {
        "models": models,
        "chain_limit_items_s": round(chain, 2),
        "workflow_runs_s": round(runs_s, 2),
        "workflow_rounds_runs_s": [round(s, 2) for s in speeds],
        "workflow_vs_limit": round(runs_s / chain, 3),
        "sum_single_forwards_ms": round(forwards_ms, 2),
        "latency_p50_ms": round(p50, 2),
        "latency_p99_ms": round(percentile(latency, 0.99), 2),
        "latency_vs_forwards": round(p50 / forwards_ms, 3),
    }


def serve(
    agents: setup.Agents, database: Database, data: setup.Data, sizes: dict[str, int]
) -> dict[str, Any]:
    """Measure one precision: a serving-only round (then resident memory), alternating
    rounds of the limit and the workflow, then the latency of runs alone."""
    compiled = setup.build_workflow(agents, max_batch=max(BATCH_SIZES))
    texts, _ = data.split("serve")

    async def workflow_side() -> dict[str, Any]:
        limits, speeds = [], []
        async with Engine(MemoryRunStore(max_finished=0), knowledge=database) as engine:
            await measure_workflow(engine, compiled, texts[-sizes["runs"] :], sizes["runs"])
            memory = rss_mb()  # serving only: the limit's own batches are not serving
            for round_ in range(sizes["rounds"]):
                limits.append(measure_limit(agents, data, sizes["items"]))
                offset = round_ * sizes["runs"]
                speeds.append(
                    await measure_workflow(engine, compiled, texts[offset:], sizes["runs"])
                )
            latency = await measure_latency(engine, compiled, texts[: sizes["latency"]])
        return {**summarise(limits, speeds, latency), "rss_mb_serving": memory}

    return asyncio.run(workflow_side())


def quantize(
    paths: dict[str, Path], root: Path, data: setup.Data
) -> tuple[dict[str, Path], dict[str, Any]]:
    """int8 artifacts of the four models and their serving checks on the validation split.

    Each check is the real gate (0.5 points): the classifiers are scored on the split's
    labels, the retriever on one held-out query per intent, which must rank its own
    intent's article first among the 77. A model whose int8 variant the gate refuses would
    serve fp32; to still time int8 on it, the benchmark quantizes it again with the gate
    opened (``tolerance_points=100``) and says so in ``speed_only``.
    """
    from agents import quantize_artifact  # noqa: PLC0415 - imports torch

    texts, intents = data.split("validation")
    int8, reports = {}, {}
    for name in setup.MODELS:
        if name == "retriever":
            inputs, labels = data.queries, data.passages
        else:
            inputs = setup.model_inputs(name, texts, intents)
            labels = setup.model_labels(name, intents)
        int8[name] = root / f"{name}-int8"
        report = quantize_artifact(paths[name], int8[name], texts=inputs, labels=labels)
        reports[name] = {**report.model_dump(mode="json"), "speed_only": not report.accepted}
        if not report.accepted:
            int8[name] = root / f"{name}-int8-speed-only"
            quantize_artifact(
                paths[name], int8[name], texts=inputs, labels=labels, tolerance_points=100.0
            )
    return int8, reports


def checks(fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured value and whether it was met."""
    speedup = int8["workflow_runs_s"] / fp32["workflow_runs_s"]
    measured = {
        "workflow_vs_limit": fp32["workflow_vs_limit"],
        "latency_vs_forwards": fp32["latency_vs_forwards"],
        "rss_mb_fp32": fp32["rss_mb_serving"]["peak"],
        "int8_speedup": round(speedup, 3),
    }
    at_most = {"latency_vs_forwards", "rss_mb_fp32"}
    return {
        name: {
            "target": target,
            "measured": measured[name],
            "met": measured[name] <= target if name in at_most else measured[name] >= target,
        }
        for name, target in TARGETS.items()
    }


def print_gate(reports: dict[str, Any]) -> None:
    print("\nint8 serving gate (validation split; accepted within 0.5 points of fp32)")
    print(f"{'model':<10} {'metric':<9} {'n':>5} {'fp32':>7} {'int8':>7} {'delta':>7}  verdict")
    for name, r in reports.items():
        verdict = "accepted" if r["accepted"] else "refused: fp32 serves (int8 timed anyway)"
        print(f"{name:<10} {r['metric']:<9} {r['examples']:>5} {r['fp32']:>7.4f} "
              f"{r['int8']:>7.4f} {100 * (r['int8'] - r['fp32']):>+7.2f}  {verdict}")  # fmt: skip


def print_tables(fp32: dict[str, Any], int8: dict[str, Any], met: dict[str, Any]) -> None:
    print("\nRaw forward limit (tokenize + forward, items/s, median over rounds)")
    print(f"{'model':<10} {'precision':<9} " + " ".join(f"{'bs' + str(b):>7}" for b in BATCH_SIZES)
          + f" {'best':>7} {'1-item ms':>10}")  # fmt: skip
    for name in setup.MODELS:
        for label, side in (("fp32", fp32), ("int8", int8)):
            m = side["models"][name]
            cells = " ".join(f"{m['items_s_by_batch'][str(b)]:>7.1f}" for b in BATCH_SIZES)
            print(
                f"{name:<10} {label:<9} {cells} {m['best_items_s']:>7.1f} {m['single_ms']:>10.2f}"
            )
    print("\n4-agent workflow vs the limit")
    rows = [
        ("chain limit (items/s)", "chain_limit_items_s"),
        (f"workflow, {CONCURRENCY} concurrent (runs/s)", "workflow_runs_s"),
        ("workflow / limit", "workflow_vs_limit"),
        ("sum of 1-item forwards (ms)", "sum_single_forwards_ms"),
        ("run alone p50 (ms)", "latency_p50_ms"),
        ("run alone p99 (ms)", "latency_p99_ms"),
        ("p50 / sum of forwards", "latency_vs_forwards"),
    ]
    print(f"{'':<34} {'fp32':>10} {'int8':>10}")
    for label, key in rows:
        print(f"{label:<34} {fp32[key]:>10} {int8[key]:>10}")
    print("\nTargets")
    for name, row in met.items():
        print(f"{name:<22} target {row['target']:>8}  measured {row['measured']:>8}  "
              f"{'met' if row['met'] else 'MISSED'}")  # fmt: skip


def serve_precision(
    precision: str, agents: setup.Agents, root: Path, data: setup.Data, sizes: dict[str, int]
) -> dict[str, Any]:
    """Index the articles with this precision's retriever, then measure serving."""
    database = Database(f"sqlite:///{root / f'kb-{precision}.db'}")
    try:
        setup.index_articles(database, agents.retriever, data.articles)
        print(f"serving {precision}: {sizes['rounds']} rounds of {sizes['runs']} runs ...")
        return serve(agents, database, data, sizes)
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds (CI smoke)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    sizes = (
        {"rounds": 2, "runs": 128, "items": 128, "latency": 30}
        if args.quick
        else {"rounds": 3, "runs": 512, "items": 512, "latency": 100}
    )
    started = time.perf_counter()
    data = setup.read_data(seed=0)
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-") as tmp:
        root = Path(tmp)
        # In a child process: fitting the heads must not count in the serving process's
        # peak memory.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            paths = pool.submit(setup.build_artifacts, root, data).result()
        results: dict[str, Any] = {}
        fp32 = setup.build_agents(paths, batch_size=AGENT_BATCH)
        results["fp32"] = serve_precision("fp32", fp32, root, data, sizes)
        int8_paths, results["int8_checks"] = quantize(paths, root, data)
        del fp32
        int8 = setup.build_agents(int8_paths, batch_size=AGENT_BATCH)
        results["int8"] = serve_precision("int8", int8, root, data, sizes)
    results["checks"] = checks(results["fp32"], results["int8"])
    print_gate(results["int8_checks"])
    print_tables(results["fp32"], results["int8"], results["checks"])
    if args.json:
        meta = {"benchmark": "inference", "quick": args.quick, **sizes, "concurrency": CONCURRENCY}
        write_json(args.json, meta, results, started)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
