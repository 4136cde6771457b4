"""Engine overhead per step: taskloom vs LangGraph vs Haystack, no-op agents, one process.

    python -m benchmarks.engine_overhead [--quick] [--json PATH]

Every engine runs the same workflows (the 4-step support workflow with one conditional
route, and linear chains of 10, 50 and 200 steps) with steps that do nothing but pass a
small state on, so the time measured is the engine's own. The engines take turns in every
round (interleaved, so machine noise hits all of them alike); each round times a batch of
runs, and the table reports the median over rounds of microseconds per step. taskloom runs
inside one asyncio event loop, as a service would; the peers use their synchronous
``invoke`` / ``run``. taskloom records every step in its in-memory run store during the run
but, like the peers, keeps nothing once a run has finished (``max_finished=0``): retaining
runs costs garbage-collection time that grows with the heap, which is the store's cost, not
the engine's. No engine persists anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Haystack's documented telemetry opt-out; must be set before haystack is imported.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from benchmarks import _taskloom_side
from benchmarks._peers import CHAIN_LENGTHS, PEERS, SUPPORT4_STEPS, check_peers, peer_versions
from benchmarks._report import write_json
from knowledge import MemoryRunStore
from workflow import CompiledWorkflow, Engine

ENGINES = ("taskloom", "langgraph", "haystack")
TARGET_US = 25.0
TARGET_RATIO = 10.0
TARGET_SCALING = 1.5
TASKS = ("reset my password please", "URGENT: my card was stolen")


def _taskloom_runner(engine: Engine, workflow: CompiledWorkflow) -> Callable[[int], float]:
    """Returns ``time(k)``: seconds for ``k`` runs, measured inside the event loop."""
    loop = asyncio.new_event_loop()

    async def batch(k: int) -> float:
        start = time.perf_counter()
        for i in range(k):
            await engine.run(workflow, {"text": TASKS[i % 2]})
        return time.perf_counter() - start

    loop.run_until_complete(batch(3))  # warm up: agents, batchers, caches
    return lambda k: loop.run_until_complete(batch(k))


def _peer_runner(run: Callable[[str], object]) -> Callable[[int], float]:
    for text in TASKS:
        run(text)  # warm up

    def timed(k: int) -> float:
        start = time.perf_counter()
        for i in range(k):
            run(TASKS[i % 2])
        return time.perf_counter() - start

    return timed


def _runners() -> dict[str, tuple[int, dict[str, Callable[[int], float]]]]:
    """Per workflow: its step count and a timer per engine."""
    engine = Engine(MemoryRunStore(max_finished=0))
    shapes: dict[str, tuple[int, Any, Callable[..., Any]]] = {
        "support4": (SUPPORT4_STEPS, _taskloom_side.support4(), lambda p: p.support4()),
    }
    for n in CHAIN_LENGTHS:
        shapes[f"chain{n}"] = (n, _taskloom_side.chain(n), lambda p, n=n: p.chain(n))
    runners = {}
    for name, (steps, compiled, build_peer) in shapes.items():
        timers = {"taskloom": _taskloom_runner(engine, compiled)}
        for peer, spec in PEERS.items():
            timers[peer] = _peer_runner(build_peer(spec))
        runners[name] = (steps, timers)
    return runners


def measure(rounds: int, steps_per_batch: int) -> dict[str, dict[str, list[float]]]:
    """Microseconds per step of every batch, per workflow and engine."""
    samples: dict[str, dict[str, list[float]]] = {}
    for workflow, (steps, timers) in _runners().items():
        runs = max(1, steps_per_batch // steps)
        samples[workflow] = {e: [] for e in timers}
        for _ in range(rounds):
            for engine_name, timed in timers.items():
                seconds = timed(runs)
                samples[workflow][engine_name].append(seconds / (runs * steps) * 1e6)
    return samples


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians, ratios and the issue's targets."""
    medians = {wf: {e: statistics.median(v) for e, v in per.items()} for wf, per in samples.items()}
    ratios = {
        wf: {f"{peer}/taskloom": m[peer] / m["taskloom"] for peer in PEERS}
        for wf, m in medians.items()
    }
    taskloom = {wf: m["taskloom"] for wf, m in medians.items()}
    scaling = taskloom["chain200"] / taskloom["chain10"]
    targets = {
        f"taskloom support4 <= {TARGET_US} us/step": taskloom["support4"] <= TARGET_US,
        f"support4 >= {TARGET_RATIO}x lower than every peer": min(ratios["support4"].values())
        >= TARGET_RATIO,
        f"chain200 within {TARGET_SCALING}x of chain10 per step": scaling <= TARGET_SCALING,
    }
    return {
        "median_us_per_step": medians,
        "ratios": ratios,
        "scaling_chain200_over_chain10": scaling,
        "targets": targets,
    }


def render(summary: dict[str, Any], rounds: int) -> str:
    """The results as a Markdown table."""
    head = "| workflow | " + " | ".join(f"{e} us/step" for e in ENGINES)
    head += " | " + " | ".join(f"{p}/taskloom" for p in PEERS) + " |"
    lines = [head, "|" + "---|" * (1 + len(ENGINES) + len(PEERS))]
    for wf, m in summary["median_us_per_step"].items():
        cells = [f"{m[e]:.1f}" for e in ENGINES]
        cells += [f"{summary['ratios'][wf][f'{p}/taskloom']:.1f}x" for p in PEERS]
        lines.append(f"| {wf} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"medians over {rounds} interleaved rounds; taskloom chain200/chain10 per-step "
        f"cost: {summary['scaling_chain200_over_chain10']:.2f}x"
    )
    lines += [f"- [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in summary["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 60 s)")
    parser.add_argument("--json", type=Path, help="write results as JSON to this path")
    args = parser.parse_args(argv)
    check_peers()  # every engine really runs the intended steps and routes
    rounds, steps_per_batch = (5, 400) if args.quick else (21, 2000)
    started = time.perf_counter()
    summary = summarize(measure(rounds, steps_per_batch))
    print(render(summary, rounds))
    if args.json:
        meta = {"benchmark": "engine_overhead", "quick": args.quick, "rounds": rounds,
                "peers": peer_versions()}  # fmt: skip
        write_json(args.json, meta, summary, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
