"""Scale: the four-agent model workflow on the local executor and on Ray, plus a capacity model.

    python -m benchmarks.scale [--quick] [--json PATH]

In one process, on the same shuffled Banking77 messages, three engines serve the inference
benchmark's workflow (intent classifier -> retriever -> policy -> action selector, every
step micro-batched, a SQLite knowledge base recording predictions and actions):

- **local**: ``LocalExecutor``, the four models in this process;
- **ray x1** / **ray x2**: ``RayExecutor`` on a local Ray instance with 1 and 2 replicas
  per agent (4 and 8 actor processes, each loading its model once).

Rounds alternate the engines so machine noise hits all alike; the table reports medians of
runs/s (64 runs in flight) and the latency of a run alone (p50). Every process runs torch
with one thread (``OMP_NUM_THREADS=1``): replicas then share the cores the way separate
machines' cores would not, so on 2 cores Ray can win only by using the second core that the
local executor's single forward-pass thread leaves idle, and it pays its dispatch costs.

The overhead Ray adds per step is measured twice: on the model workflow (p50 latency
difference / 4 steps) and on a 4-step workflow of fakes that do nothing (pure dispatch:
a pickled call to another process and back).

The capacity model takes each agent's best items/s from ``benchmarks/results/inference.json``
(the raw forward-pass limit at its best batch size), divides it by the cores that run used,
and projects how many 1-core replicas each agent needs for a target load at 70% utilisation.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from agents.testing import FakeAgent, FakeInput
from benchmarks import _inference_setup as setup
from benchmarks._report import write_json
from benchmarks.inference import AGENT_BATCH, CONCURRENCY, measure_latency, measure_workflow
from knowledge import Database, MemoryRunStore
from workflow import CompiledWorkflow, Engine, Executor, LocalExecutor, RayExecutor, Workflow

ENGINES: dict[str, int | None] = {"local": None, "ray x1": 1, "ray x2": 2}
STEPS = 4
INFERENCE_JSON = Path(__file__).parent / "results" / "inference.json"
UTILISATION = 0.7  # plan replicas to run at 70% of their measured limit
TARGETS_RUNS_S = (10, 50, 200, 1000)


def executor(replicas: int | None) -> Executor:
    if replicas is None:
        return LocalExecutor()
    # No CPU reservation: 4 or 8 replicas share this machine's cores, as the local one does.
    return RayExecutor(replicas=replicas, num_cpus_per_replica=0)


async def serve(
    compiled: CompiledWorkflow, database: Database, texts: list[str], sizes: dict[str, int]
) -> dict[str, Any]:
    """Alternating rounds of each engine; then each one's latency of runs alone."""
    speeds: dict[str, list[float]] = {name: [] for name in ENGINES}
    startup: dict[str, float] = {}
    async with AsyncExitStack() as stack:
        engines = {}
        for name, replicas in ENGINES.items():
            engine = Engine(
                MemoryRunStore(max_finished=0), executor=executor(replicas), knowledge=database
            )
            engines[name] = await stack.enter_async_context(engine)
            start = time.perf_counter()  # replicas start and load their models here
            await measure_workflow(engine, compiled, texts[-CONCURRENCY:], CONCURRENCY)
            startup[name] = time.perf_counter() - start
        for round_ in range(sizes["rounds"]):
            offset = round_ * sizes["runs"]
            for name, engine in engines.items():
                print(f"  round {round_ + 1}: {name} ...", flush=True)
                speed = await measure_workflow(engine, compiled, texts[offset:], sizes["runs"])
                speeds[name].append(speed)
        latency = {
            name: await measure_latency(engine, compiled, texts[: sizes["latency"]])
            for name, engine in engines.items()
        }
    return {
        name: {
            "runs_s": round(statistics.median(speeds[name]), 2),
            "rounds_runs_s": [round(s, 2) for s in speeds[name]],
            "latency_p50_ms": round(statistics.median(latency[name]), 2),
            "first_round_s": round(startup[name], 2),
        }
        for name in ENGINES
    }


def fake_workflow() -> CompiledWorkflow:
    wf = Workflow("dispatch", task=FakeInput)
    names = [f"s{i}" for i in range(STEPS)]
    for name in names:
        wf.step(name, FakeAgent())
    for a, b in itertools.pairwise(names):
        wf.route(a, b)
    return wf.compile()


async def dispatch_overhead(runs: int) -> dict[str, float]:
    """Milliseconds per step of a 4-step workflow of fakes, runs one after the other."""
    compiled = fake_workflow()
    result = {}
    for name, replicas in (("local", None), ("ray", 1)):
        async with Engine(MemoryRunStore(max_finished=0), executor=executor(replicas)) as engine:
            await engine.run(compiled, {"text": "warm"})
            times = []
            for i in range(runs):
                start = time.perf_counter()
                await engine.run(compiled, {"text": f"t{i}"})
                times.append(time.perf_counter() - start)
        result[f"{name}_ms_per_step"] = round(1000 * statistics.median(times) / STEPS, 3)
    result["ray_adds_ms_per_step"] = round(
        result["ray_ms_per_step"] - result["local_ms_per_step"], 3
    )
    return result


def capacity(measured: dict[str, Any]) -> dict[str, Any] | None:
    """Replicas per agent for target loads, from the inference benchmark's limits."""
    if not INFERENCE_JSON.exists():
        return None
    inference = json.loads(INFERENCE_JSON.read_text())
    meta = inference["meta"]
    cores = int(meta.get("omp_num_threads") or meta.get("cpus") or 1)
    per_core = {
        name: model["best_items_s"] / cores for name, model in inference["fp32"]["models"].items()
    }
    plans = {}
    for target in TARGETS_RUNS_S:
        replicas = {
            name: math.ceil(target / (speed * UTILISATION)) for name, speed in per_core.items()
        }
        plans[str(target)] = {"replicas": replicas, "cores": sum(replicas.values())}
    chain_per_core = 1 / sum(1 / s for s in per_core.values())
    return {
        "source": str(INFERENCE_JSON.relative_to(Path(__file__).parents[1])),
        "cores_of_that_run": cores,
        "items_s_per_core": {k: round(v, 1) for k, v in per_core.items()},
        "chain_runs_s_per_core": round(chain_per_core, 2),
        "utilisation": UTILISATION,
        "plans": plans,
        "this_machine_projection_runs_s": round(
            chain_per_core * (os.cpu_count() or 1) * UTILISATION, 2
        ),
        "this_machine_measured_best_runs_s": max(m["runs_s"] for m in measured.values()),
    }


def print_tables(results: dict[str, Any]) -> None:
    serving, local = results["serving"], results["serving"]["local"]
    print("\n| engine | runs/s | vs local | run alone p50 ms | first round s |")
    print("|---|---|---|---|---|")
    for name, row in serving.items():
        ratio = row["runs_s"] / local["runs_s"]
        print(
            f"| {name} | {row['runs_s']} | {ratio:.2f}x | {row['latency_p50_ms']} "
            f"| {row['first_round_s']} |"
        )
    per_step = (serving["ray x1"]["latency_p50_ms"] - local["latency_p50_ms"]) / STEPS
    dispatch = results["dispatch"]
    print(
        f"\nRay adds per step: {per_step:.2f} ms on the model workflow (p50 latency); "
        f"{dispatch['ray_adds_ms_per_step']} ms on fakes ({dispatch['local_ms_per_step']} ms "
        f"local, {dispatch['ray_ms_per_step']} ms on Ray)."
    )
    plan = results.get("capacity")
    if plan is None:
        print(f"\n(no capacity model: run python -m benchmarks.inference --json {INFERENCE_JSON})")
        return
    names = list(plan["items_s_per_core"])
    print(f"\nCapacity at {plan['utilisation']:.0%} utilisation, 1 core per replica:")
    print(f"| runs/s | {' | '.join(names)} | cores |")
    print(f"|---|{'---|' * len(names)}---|")
    print(f"| per core | {' | '.join(str(plan['items_s_per_core'][n]) for n in names)} | 1 |")
    for target, row in plan["plans"].items():
        cells = " | ".join(str(row["replicas"][n]) for n in names)
        print(f"| {target} | {cells} | {row['cores']} |")


def prepare(root: Path) -> tuple[CompiledWorkflow, Database, list[str]]:
    """Artifacts (in a child process), the warmed local agents, the indexed knowledge base."""
    data = setup.read_data(seed=0)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        paths = pool.submit(setup.build_artifacts, root, data).result()
    agents = setup.build_agents(paths, batch_size=AGENT_BATCH)
    database = Database(f"sqlite:///{root / 'kb.db'}")
    setup.index_articles(database, agents.retriever, data.articles)
    texts, _ = data.split("serve")
    return setup.build_workflow(agents, max_batch=CONCURRENCY), database, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds (CI smoke)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    # Before torch is imported and Ray started (replicas inherit it): one thread a process.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sizes = (
        {"rounds": 1, "runs": 128, "latency": 10, "dispatch": 50}
        if args.quick
        else {"rounds": 3, "runs": 384, "latency": 40, "dispatch": 300}
    )
    import ray  # noqa: PLC0415 - the ray extra

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taskloom-scale-") as tmp:
        compiled, database, texts = prepare(Path(tmp))
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            print(f"serving: {sizes['rounds']} rounds of {sizes['runs']} runs per engine ...")
            results["serving"] = asyncio.run(serve(compiled, database, texts, sizes))
            results["dispatch"] = asyncio.run(dispatch_overhead(sizes["dispatch"]))
        finally:
            ray.shutdown()
            database.dispose()
    results["capacity"] = capacity(results["serving"])
    print_tables(results)
    if args.json:
        meta = {"benchmark": "scale", "quick": args.quick, **sizes, "concurrency": CONCURRENCY}
        meta["ray"] = ray.__version__
        write_json(args.json, meta, results, started)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
