"""Examples, their checks, and batches: length-bucketed, seeded, dynamically padded.

Three kinds of example, one per kind of model: ``Example`` (a labelled text, sequence
classification), ``SpanExample`` (a text and its typed character spans, token
classification) and ``PairExample`` (a query and the passage that answers it, the
bi-encoder).

Everything here is checked before a model is loaded, so a bad dataset fails in
milliseconds with a message naming the problem rather than minutes into a run.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agents._bio import IGNORE, Span
from finetune._errors import TrainingDataError

__all__ = [
    "BucketBatchSampler",
    "Example",
    "PairExample",
    "SpanExample",
    "check_examples",
    "check_pair_examples",
    "check_span_examples",
    "collate",
    "collate_pairs",
    "collate_tokens",
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


@dataclass(frozen=True)
class SpanExample:
    """One text with its entities (slots), for token classification.

    Attributes:
        text: The input text.
        spans: Typed character spans ``[start, end)`` on ``text`` (possibly none); they
            must not overlap. Training tags each word that a span touches.
    """

    text: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class PairExample:
    """A query and the passage that answers it, for the bi-encoder.

    Attributes:
        query: What a user asks.
        passage: The text that should be retrieved for it. Several queries may share a
            passage; within a batch, a shared passage is never counted as a negative.
        group: Pairs of one group are right answers for each other (texts of one intent,
            say): within a batch another pair's passage of the group is never a negative,
            and validation finds the query right when it ranks its group first. Empty:
            the passage is the group.
    """

    query: str
    passage: str
    group: str = ""

    @property
    def key(self) -> str:
        """What a right answer is identified by: the group, else the passage."""
        return self.group or self.passage


def label_names(examples: Sequence[Example]) -> list[str]:
    """The label set of the training examples, sorted: the order of the logits."""
    return sorted({name for example in examples for name in example.label_set()})


def check_examples(
    task: str, train_rows: Sequence[object], val_rows: Sequence[object]
) -> list[str]:
    """Refuse data that cannot train or validate a classifier; return the label names.

    Raises:
        TrainingDataError: A split is empty or holds rows of another kind, a single-label
            example has several labels, a validation label never occurs in training, or a
            label has fewer than two training examples (too few to learn and check).
    """
    train = _of_kind(Example, task, train_rows)
    val = _of_kind(Example, task, val_rows)
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


RowT = TypeVar("RowT")


def _of_kind(kind: type[RowT], task: str, rows: Sequence[object]) -> list[RowT]:
    """The rows, typed; refuses rows of another kind (a dataset built for another task)."""
    wrong = [row for row in rows if not isinstance(row, kind)]
    if wrong:
        raise TrainingDataError(
            f"task='{task}' trains on {kind.__name__} rows, got {len(wrong)} "
            f"{type(wrong[0]).__name__} row(s). Build the dataset from {kind.__name__}, or "
            "choose the task that fits the rows (Example: single_label or multi_label, "
            "SpanExample: token_classification, PairExample: embedding)."
        )
    return [row for row in rows if isinstance(row, kind)]


def _check_not_empty(split: str, rows: Sequence[object]) -> None:
    if not rows:
        raise TrainingDataError(
            f"The {split} set is empty. Give training examples and a held-out validation set."
        )


def check_span_examples(train: Sequence[object], val: Sequence[object]) -> list[str]:
    """Refuse span data that cannot train a tagger; return the entity types, sorted.

    Raises:
        TrainingDataError: A split is empty or holds other rows, a span is out of its
            text or empty, spans overlap, training has no span at all, or a validation
            type never occurs in training.
    """
    splits = {}
    for split, rows in (("training", train), ("validation", val)):
        _check_not_empty(split, rows)
        splits[split] = _of_kind(SpanExample, "token_classification", rows)
        for row in splits[split]:
            _check_spans(split, row)
    types = sorted({s.type for row in splits["training"] for s in row.spans})
    if not types:
        raise TrainingDataError(
            "No training example has a span, so there is nothing to learn. Add examples "
            "with their entities marked."
        )
    unseen = sorted({s.type for row in splits["validation"] for s in row.spans} - set(types))
    if unseen:
        raise TrainingDataError(
            f"Validation entity type(s) {', '.join(unseen)} never occur in training. "
            f"Training types: {', '.join(types)}. Split the data so each type is in both."
        )
    return types


def _check_spans(split: str, row: SpanExample) -> None:
    spans = sorted(row.spans, key=lambda s: (s.start, s.end))
    for span in spans:
        if not span.type or not 0 <= span.start < span.end <= len(row.text):
            raise TrainingDataError(
                f"A {split} span {span} does not fit its text {row.text!r} (length "
                f"{len(row.text)}): a span needs a type and 0 <= start < end <= length."
            )
    for first, second in itertools.pairwise(spans):
        if second.start < first.end:
            raise TrainingDataError(
                f"The {split} spans {first} and {second} overlap in {row.text!r}. A word "
                "takes one tag, so keep one of them."
            )


def check_pair_examples(train: Sequence[object], val: Sequence[object]) -> list[str]:
    """Refuse pairs that cannot train or validate a bi-encoder; return ``[]`` (no labels).

    Raises:
        TrainingDataError: A split is empty or holds other rows, a query or passage is
            blank, or a split has a single distinct passage (nothing to rank against).
    """
    for split, rows in (("training", train), ("validation", val)):
        _check_not_empty(split, rows)
        pairs = _of_kind(PairExample, "embedding", rows)
        blank = [r for r in pairs if not r.query.strip() or not r.passage.strip()]
        if blank:
            raise TrainingDataError(
                f"{len(blank)} {split} pair(s) have a blank query or passage (first: "
                f"{blank[0]!r}). Drop them or fill them in."
            )
        if len({r.key for r in pairs}) < 2:  # noqa: PLR2004 - one to find, one to pass
            raise TrainingDataError(
                f"The {split} pairs have a single distinct passage (or group), so there is "
                "nothing to rank it against. Give pairs for at least two different passages."
            )
    return []


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
    # The short batch goes last, where Accelerate's sharding across processes expects it
    # (a short batch elsewhere makes it skip a round of batches).
    batches.sort(key=lambda batch: len(batch) < batch_size)
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


def collate_tokens(rows: Sequence[tuple[list[int], list[int], int]], pad_id: int) -> dict[str, Any]:
    """Pad a token-classification batch: ids, mask, tag ids (padded with ``IGNORE``) and
    each row's index in its split (validation decodes spans on the original texts)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    from agents.models import pad_batch  # noqa: PLC0415 - imports torch

    input_ids, attention_mask = pad_batch([ids for ids, _, _ in rows], pad_id, "cpu")
    labels = torch.full(input_ids.shape, IGNORE, dtype=torch.long)
    for i, (_, tags, _) in enumerate(rows):
        labels[i, : len(tags)] = torch.tensor(tags, dtype=torch.long)
    index = torch.tensor([i for _, _, i in rows], dtype=torch.long)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "index": index,
    }


def collate_pairs(rows: Sequence[tuple[list[int], list[int], int]], pad_id: int) -> dict[str, Any]:
    """Pad both sides of a batch of pairs on their own; ``labels`` is each pair's passage
    id, which tells the loss which in-batch passages are the same (not negatives)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    from agents.models import pad_batch  # noqa: PLC0415 - imports torch

    input_ids, attention_mask = pad_batch([query for query, _, _ in rows], pad_id, "cpu")
    passage_ids, passage_mask = pad_batch([passage for _, passage, _ in rows], pad_id, "cpu")
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "passage_ids": passage_ids,
        "passage_mask": passage_mask,
        "labels": torch.tensor([p for _, _, p in rows], dtype=torch.long),
    }
