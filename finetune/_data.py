"""Examples, their checks, and batches: length-bucketed, seeded, dynamically padded.

Everything here is checked before a model is loaded, so a bad dataset fails in
milliseconds with a message naming the problem rather than minutes into a run.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from finetune._errors import TrainingDataError

__all__ = [
    "BucketBatchSampler",
    "Example",
    "check_examples",
    "collate",
    "label_names",
    "length_bucketed_batches",
    "targets",
]


@dataclass(frozen=True)
class Example:
    """One labelled text.

    Attributes:
        text: The input text.
        label: Single-label: the label's name. Multi-label: the names of every label that
            applies (a tuple, possibly empty; a single name means just that one).
    """

    text: str
    label: str | tuple[str, ...]

    def label_set(self) -> tuple[str, ...]:
        """The labels as a tuple, whatever form they were given in."""
        return (self.label,) if isinstance(self.label, str) else tuple(self.label)


def label_names(examples: Sequence[Example]) -> list[str]:
    """The label set of the training examples, sorted: the order of the logits."""
    return sorted({name for example in examples for name in example.label_set()})


def check_examples(task: str, train: Sequence[Example], val: Sequence[Example]) -> list[str]:
    """Refuse data that cannot train or validate a model; return the label names.

    Raises:
        TrainingDataError: A split is empty, a single-label example has several labels,
            a validation label never occurs in training, or a label has fewer than two
            training examples (too few to learn and to check anything).
    """
    for split, rows in (("training", train), ("validation", val)):
        if not rows:
            raise TrainingDataError(
                f"The {split} set is empty. Give at least two examples of each label for "
                "training and a held-out validation set."
            )
        if task == "single_label":
            several = [e.text for e in rows if len(e.label_set()) != 1]
            if several:
                raise TrainingDataError(
                    f"{len(several)} {split} example(s) of a single_label task have no label "
                    f"or several (first: {several[0]!r}). Give one label each, or train with "
                    "task='multi_label'."
                )
    labels = label_names(train)
    counts = Counter(name for example in train for name in example.label_set())
    rare = sorted(name for name in labels if counts[name] < 2)  # noqa: PLR2004 - a pair
    if rare:
        raise TrainingDataError(
            f"Label(s) {', '.join(rare)} have fewer than 2 training examples. Add examples "
            "of them or drop them from the dataset."
        )
    unseen = sorted({n for e in val for n in e.label_set()} - set(labels))
    if unseen:
        raise TrainingDataError(
            f"Validation label(s) {', '.join(unseen)} never occur in training, so the model "
            f"could not predict them. Training labels: {', '.join(labels)}. Split the data "
            "stratified by label."
        )
    return labels


def targets(task: str, examples: Sequence[Example], labels: Sequence[str]) -> list[Any]:
    """Training targets: class indices (single-label) or multi-hot rows (multi-label)."""
    index = {name: i for i, name in enumerate(labels)}
    if task == "single_label":
        return [index[example.label_set()[0]] for example in examples]
    rows = []
    for example in examples:
        row = [0.0] * len(labels)
        for name in example.label_set():
            row[index[name]] = 1.0
        rows.append(row)
    return rows


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, bucket_batches: int = 50
) -> list[list[int]]:
    """Shuffled batches of similar-length rows, the same for the same seed and epoch.

    The rows are shuffled, cut into buckets of ``bucket_batches`` batches, sorted by length
    within each bucket and cut into batches, whose order is shuffled again. Padding then
    wastes little, yet every epoch sees different batches in a random order.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lengths.__getitem__)
        batches.extend(bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size))
    rng.shuffle(batches)
    return batches


class BucketBatchSampler:
    """A DataLoader batch sampler over ``length_bucketed_batches``; call ``set_epoch``.

    The batches depend only on the seed and epoch, so a resumed run that skips the first
    ``k`` batches of an epoch continues with exactly the batches it would have seen.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, seed: int, bucket_batches: int
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        return iter(
            length_bucketed_batches(
                self.lengths,
                self.batch_size,
                seed=self.seed,
                epoch=self.epoch,
                bucket_batches=self.bucket_batches,
            )
        )

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def collate(rows: Sequence[tuple[list[int], Any]], pad_id: int) -> dict[str, Any]:
    """Pad a batch to its own longest row (dynamic padding): ids, mask and targets."""
    import torch  # noqa: PLC0415 - heavy, lazy

    from agents.models import pad_batch  # noqa: PLC0415 - imports torch

    input_ids, attention_mask = pad_batch([ids for ids, _ in rows], pad_id, "cpu")
    first = rows[0][1]
    dtype = torch.float32 if isinstance(first, list) else torch.long
    labels = torch.tensor([target for _, target in rows], dtype=dtype)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
