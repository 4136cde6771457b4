"""Banking77 splits and the training recipe shared by the fine-tuning benchmarks.

The shipped Banking77 file (10,003 labelled queries, 77 intents) is split once, stratified
by intent and fixed by seed: 10% test, then 1/9 of the rest validation (about 80/10/10).
Every benchmark reports on ``test`` only; recipes were chosen on ``validation``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune import Example, read_labelled, split_examples

__all__ = ["BANKING77", "RECIPE", "Splits", "banking77_splits", "per_label", "subset"]

BANKING77 = Path(__file__).resolve().parents[1] / "examples" / "data" / "banking77" / "train.csv"
SEED = 0

# The recipe, chosen on the validation split: the full tier with a large head rate (the head
# starts random, MiniLM's encoder does not), short inputs (Banking77 queries are short) and a
# little label smoothing across 77 intents.
RECIPE: dict[str, float | int | str] = {
    "tier": "full",
    "batch_size": 32,
    "lr": 1e-4,
    "head_lr": 3e-3,
    "max_length": 64,
    "warmup_ratio": 0.1,
    "label_smoothing": 0.1,
}


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]


def banking77_splits(path: Path = BANKING77, seed: int = SEED) -> Splits:
    """The fixed stratified train/validation/test split of the shipped Banking77 file."""
    examples = read_labelled(path, text_column="text", label_column="category")
    rest, test = split_examples(examples, 0.1, seed=seed)
    train, validation = split_examples(rest, 1 / 9, seed=seed)
    return Splits(train, validation, test)


def per_label(examples: Sequence[Example], count: int, seed: int = SEED) -> list[Example]:
    """``count`` examples of each label, drawn by seed (all of a label that has fewer)."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[str(example.label)].append(example)
    rng = random.Random(seed)
    return [
        e
        for name in sorted(groups)
        for e in rng.sample(groups[name], min(count, len(groups[name])))
    ]


def subset(splits: Splits, labels: int, per_label_count: int) -> Splits:
    """The first ``labels`` intents, at most ``per_label_count`` of each per split (``--quick``)."""
    names = sorted({str(e.label) for e in splits.train})[:labels]

    def take(rows: Sequence[Example]) -> list[Example]:
        return per_label([e for e in rows if e.label in names], per_label_count)

    return Splits(take(splits.train), take(splits.validation), take(splits.test))
