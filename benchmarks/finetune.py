"""Fine-tuning benchmarks: throughput vs Trainer, Banking77 accuracy, few-shot, the loop.

    python -m benchmarks.finetune [--quick] [--json PATH] [--parts throughput,banking77,...]

Four measurements, each side by side in this one run, all on MiniLM-L6 (the packaged
all-MiniLM-L6-v2) and the shipped Banking77 file, split once (stratified, seed 0) into
train / validation / test; every accuracy is on test, which no training or choice saw:

1. throughput: taskloom's ``train`` vs Hugging Face ``Trainer``, same module, rows, batch
   size, max_length and epochs (examples/s, median of interleaved repeats);
2. banking77: the full training split -> test accuracy;
3. few-shot: 10 examples per intent -> test accuracy;
4. loop: a seed of 10 per intent, then rounds of labels chosen by the review queue vs at
   random, same budget, each round through the promotion gate -> test accuracy per round.

``--quick`` runs every part on a few intents and a few rows (a smoke test, under a minute);
its numbers say nothing about accuracy. ``--parts`` runs some of the four (default: all).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._finetune_data import RECIPE, Splits, banking77_splits, per_label, subset
from benchmarks._finetune_loop import ARMS, run_loop
from benchmarks._finetune_throughput import measure_throughput
from benchmarks._report import write_json
from finetune import Example, TrainConfig, evaluate, train

TARGETS = {"throughput_ratio": 1.2, "banking77": 0.925, "few_shot": 0.85}

# Sizes per mode. full: the settings; quick: a smoke test of the same code.
FULL: dict[str, Any] = {
    "intents": 77,
    "throughput_per_label": 20,
    "throughput_repeats": 3,
    "epochs": 8,
    "patience": 3,
    "shots": 10,
    "few_shot_val_per_label": 3,
    "contrastive_epochs": 4,
    "few_shot_epochs": 20,
    "few_shot_patience": 4,
    "loop_rounds": 4,
    "loop_traffic": 1000,
    "loop_budget": 400,
    "loop_epochs": 4,
}
QUICK: dict[str, Any] = {
    "intents": 6,
    "per_label": 20,
    "throughput_per_label": 8,
    "throughput_repeats": 1,
    "epochs": 2,
    "patience": 2,
    "shots": 8,
    "few_shot_val_per_label": 2,
    "contrastive_epochs": 1,
    "few_shot_epochs": 2,
    "few_shot_patience": 2,
    "loop_rounds": 2,
    "loop_traffic": 24,
    "loop_budget": 12,
    "loop_epochs": 1,
}


def _config(out: Path, epochs: int, patience: int, contrastive_epochs: int = 0) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out),
        epochs=epochs,
        patience=patience,
        contrastive_epochs=contrastive_epochs,
        **RECIPE,  # type: ignore[arg-type]
    )


def _few_shot_config(out: Path, sizes: dict[str, Any]) -> TrainConfig:
    """Few labels per intent: the contrastive warm-up first, then the classifier."""
    return _config(
        out, sizes["few_shot_epochs"], sizes["few_shot_patience"], sizes["contrastive_epochs"]
    )


def _accuracy(model_dir: Path, test: list[Example]) -> float:
    return evaluate(model_dir, [e.text for e in test], [e.label for e in test]).accuracy


def run_banking77(splits: Splits, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """The full training split, early-stopped on validation, scored on test."""
    config = _config(out / "banking77", sizes["epochs"], sizes["patience"])
    started = time.perf_counter()
    result = train(config, splits.train, splits.validation)
    return {
        "train": len(splits.train),
        "validation": len(splits.validation),
        "test": len(splits.test),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "validation_accuracy": result.best_metric,
        "test_accuracy": _accuracy(result.model_dir, splits.test),
        "seconds": time.perf_counter() - started,
    }


def run_few_shot(splits: Splits, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """``shots`` per intent to train on, a few per intent to stop on, scored on test."""
    rows = per_label(splits.train, sizes["shots"])
    val = per_label(splits.validation, sizes["few_shot_val_per_label"])
    config = _few_shot_config(out / "few-shot", sizes)
    started = time.perf_counter()
    result = train(config, rows, val)
    return {
        "shots": sizes["shots"],
        "train": len(rows),
        "validation": len(val),
        "epochs_run": result.epochs_run,
        "test_accuracy": _accuracy(result.model_dir, splits.test),
        "seconds": time.perf_counter() - started,
    }


def run_feedback_loop(splits: Splits, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """Seed, then rounds of fresh traffic labelled by the queue vs at random."""
    seed_rows = per_label(splits.train, sizes["shots"])
    seen = {e.text for e in seed_rows}
    unseen = [e for e in splits.train if e.text not in seen]
    random.Random(0).shuffle(unseen)
    size = sizes["loop_traffic"]
    traffic = [unseen[i * size : (i + 1) * size] for i in range(sizes["loop_rounds"])]
    seed_config = _few_shot_config(out / "loop" / "seed", sizes)
    # A round continues from the serving encoder, warmed up already by the seed round.
    round_config = dataclasses.replace(
        seed_config,
        epochs=sizes["loop_epochs"],
        patience=sizes["patience"],
        contrastive_epochs=0,
        out_dir=str(out / "loop"),
    )
    return run_loop(
        seed_rows=seed_rows,
        traffic=traffic,
        test=splits.test,
        budget=sizes["loop_budget"],
        config=round_config,
        seed_config=seed_config,
        out=out / "loop",
    )


def _loop_checks(loop: dict[str, Any]) -> dict[str, Any]:
    arms = loop["arms"]
    beats = [
        u["test_accuracy"] > r["test_accuracy"]
        for u, r in zip(arms["uncertainty"], arms["random"], strict=True)
    ][1:]
    worse = [
        row
        for arm in ARMS
        for row in arms[arm]
        if row["promoted"] and row["candidate_holdout"] < row["serving_holdout"]
    ]
    return {
        "uncertainty_beats_random_after_round_1": {
            "target": True,
            "measured": beats,
            "met": all(beats),
        },
        "no_worse_promotion": {"target": 0, "measured": len(worse), "met": not worse},
    }


def checks(results: dict[str, Any]) -> dict[str, Any]:
    """Each target of the parts that ran, what was measured, and whether it was met."""
    measured = {
        name: results[part][key]
        for name, part, key in (
            ("throughput_ratio", "throughput", "ratio_vs_trainer"),
            ("banking77", "banking77", "test_accuracy"),
            ("few_shot", "few_shot", "test_accuracy"),
        )
        if part in results
    }
    table: dict[str, Any] = {
        name: {"target": TARGETS[name], "measured": round(value, 4), "met": value >= TARGETS[name]}
        for name, value in measured.items()
    }
    if "loop" in results:
        table.update(_loop_checks(results["loop"]))
    return table


def print_throughput(tp: dict[str, Any]) -> None:
    print(f"\n1. Training throughput, examples/s: {tp['examples']} rows x {tp['epochs']} "
          f"epoch(s), median of {tp['repeats']}")  # fmt: skip
    for side, rate in tp["examples_per_s"].items():
        print(f"   {side:<16} {rate:>8.1f}")
    print(f"   taskloom / Trainer {tp['ratio_vs_trainer']:.2f}x, "
          f"/ Trainer grouped {tp['ratio_vs_trainer_grouped']:.2f}x")  # fmt: skip


def print_banking77(b77: dict[str, Any]) -> None:
    print(f"\n2. Banking77: {b77['train']} train / {b77['validation']} val / {b77['test']} test")
    print(f"   test accuracy {b77['test_accuracy']:.4f} "
          f"(validation {b77['validation_accuracy']:.4f}, best epoch {b77['best_epoch']} "
          f"of {b77['epochs_run']}, {b77['seconds']:.0f} s)")  # fmt: skip


def print_few_shot(few: dict[str, Any]) -> None:
    print(f"\n3. Few-shot: {few['shots']} per intent ({few['train']} rows)")
    print(f"   test accuracy {few['test_accuracy']:.4f} ({few['seconds']:.0f} s)")


def print_loop(loop: dict[str, Any]) -> None:
    print(f"\n4. The loop: a seed, then rounds of {loop['budget']} labels; serving model on test")
    print(f"   seed round: test {loop['seed']['test_accuracy']:.4f}")
    print(f"   {'round':>5} {'arm':<12} {'promoted':>8} {'cand.':>7} {'serving':>7} "
          f"{'test':>7} {'s':>5}")  # fmt: skip
    for arm in ARMS:
        for row in loop["arms"][arm]:
            print(f"   {row['round']:>5} {arm:<12} {'yes' if row['promoted'] else 'no':>8} "
                  f"{row['candidate_holdout'] or 0:>7.4f} {row['serving_holdout'] or 0:>7.4f} "
                  f"{row['test_accuracy']:>7.4f} {row['seconds']:>5.0f}")  # fmt: skip
    print("   (cand./serving: the gate's metric on the frozen holdout)")


def print_checks(table: dict[str, Any]) -> None:
    print("\nTargets")
    for name, row in table.items():
        print(f"   {name:<40} target {row['target']!s:>6}  measured {row['measured']!s:>22}  "
              f"{'met' if row['met'] else 'MISSED'}")  # fmt: skip


PARTS = ("throughput", "banking77", "few_shot", "loop")
PRINTERS = {
    "throughput": print_throughput,
    "banking77": print_banking77,
    "few_shot": print_few_shot,
    "loop": print_loop,
}


def run_part(part: str, splits: Splits, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    if part == "throughput":
        return measure_throughput(
            per_label(splits.train, sizes["throughput_per_label"]),
            per_label(splits.validation, 2),
            {**RECIPE, "patience": 1},
            epochs=1,
            repeats=sizes["throughput_repeats"],
        )
    runner = {"banking77": run_banking77, "few_shot": run_few_shot, "loop": run_feedback_loop}
    return runner[part](splits, sizes, out)


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"unknown part(s) {unknown}; parts: {', '.join(PARTS)}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few intents and rows (smoke)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--parts", type=_parts, default=list(PARTS), help="comma-separated")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    splits = banking77_splits()
    if args.quick:
        splits = subset(splits, sizes["intents"], sizes["per_label"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taskloom-finetune-bench-") as tmp:
        for number, part in enumerate(args.parts, start=1):
            print(f"{number}/{len(args.parts)} {part} ...", flush=True)
            results[part] = run_part(part, splits, sizes, Path(tmp))
    results["checks"] = checks(results)
    if args.quick:
        print("\n--quick: a smoke test of the code on a few intents; not a measurement.")
    for part in args.parts:
        PRINTERS[part](results[part])
    print_checks(results["checks"])
    if args.json:
        meta = {"benchmark": "finetune", "quick": args.quick, "parts": args.parts,
                "recipe": RECIPE, **sizes}  # fmt: skip
        write_json(args.json, meta, results, started)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
