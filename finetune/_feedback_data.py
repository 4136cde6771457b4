"""Datasets from feedback: labelled examples, a frozen holdout, stratified train/validation.

The flow, per training round of one agent:

1. ``labelled_examples`` reads the agent's predictions that have usable feedback (status
   ``new`` or ``used``; ``rejected`` feedback is never trained on) and takes each prediction's
   text from its input JSON (``text`` or ``query``) and its label from the winning feedback.
   A policy agent's input (``{"text": ..., "signals": {...}}``) gives the string its model
   reads, ``agents.policy_text(text, signals)``, so the model trains (and the gate scores it)
   on what it sees when it serves.
2. ``build_dataset`` de-duplicates identical texts, checks the labels (allowed set, enough
   per class), and splits them. The first round draws a stratified holdout and records it in
   the knowledge base as a dataset snapshot with ``meta["role"] == "holdout"`` (the examples
   themselves are kept in its meta, so pruning predictions never shrinks it). Every later
   round reuses that holdout as recorded: new examples only ever go to train or validation,
   and an example whose normalised text is in the holdout never goes to training.
3. The train and validation examples are snapshotted as one content-hashed dataset version
   (the split each example is in is part of the content), so the same data gives the same
   version on every round.

Splits are stratified per label and fixed by the seed: within a label, examples are ordered by
a seeded hash of their normalised text, not by arrival, so adding examples moves few others.
The caller commits.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents import policy_text
from finetune._errors import (
    EmptyDatasetError,
    FeedbackDataError,
    HoldoutOverlapError,
    LabelOutsideSetError,
    TooFewExamplesError,
)
from knowledge import Dataset, DatasetIn, snapshot_dataset

# No public knowledge function lists an agent's labelled predictions or finds a dataset by
# its meta; these two read-only queries are the only use of knowledge's tables here.
from knowledge import _models as orm

__all__ = [
    "DatasetSplit",
    "EmptyDatasetError",
    "FeedbackDataError",
    "HoldoutOverlapError",
    "LabelOutsideSetError",
    "LabelledExample",
    "TooFewExamplesError",
    "build_dataset",
    "check_holdout_disjoint",
    "labelled_examples",
    "normalise_text",
]

TEXT_FIELDS = ("text", "query")
USABLE_STATUSES = ("new", "used")
# Lower wins: a reviewer's label is ground truth; an observed outcome is a noisier signal.
# ``rule`` feedback is left out: training on it would only teach the model the rule.
SOURCE_RANK = {"human": 0, "outcome": 1}
HOLDOUT_ROLE = "holdout"
TRAINING_ROLE = "training"
LISTED = 5  # overlapping texts quoted in an error message


def normalise_text(text: str) -> str:
    """The identity of a text for de-duplication: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class LabelledExample:
    """One training example: a prediction's text and the label its feedback gave.

    Attributes:
        text: The text the agent saw.
        label: The label from the winning feedback.
        prediction_id: The prediction it came from.
        feedback_id: The feedback that labelled it.
    """

    text: str
    label: str
    prediction_id: int
    feedback_id: int

    @property
    def key(self) -> str:
        """The normalised text: two examples with equal keys are the same example."""
        return normalise_text(self.text)

    def to_json(self) -> dict[str, JsonValue]:
        """Everything, as JSON (how the frozen holdout is kept in its snapshot's meta)."""
        return {
            "text": self.text,
            "label": self.label,
            "prediction_id": self.prediction_id,
            "feedback_id": self.feedback_id,
        }


def check_holdout_disjoint(
    training: Iterable[LabelledExample], holdout: Iterable[LabelledExample]
) -> None:
    """Refuse training data that shares a (normalised) text with the holdout.

    A model evaluated on texts it was trained on looks better than it is, and the promotion
    gate would then promote on a false margin.

    Raises:
        HoldoutOverlapError: Some texts are in both; the message quotes a few.
    """
    held = {example.key for example in holdout}
    shared = sorted({example.key for example in training} & held)
    if shared:
        quoted = ", ".join(repr(text[:60]) for text in shared[:LISTED])
        raise HoldoutOverlapError(
            f"{len(shared)} training/validation texts are also in the holdout ({quoted}"
            f"{', ...' if len(shared) > LISTED else ''}). Remove them from training: the "
            "holdout must stay unseen for the promotion gate to mean anything."
        )


@dataclass(frozen=True)
class DatasetSplit:
    """One round's data: train, validation and the agent's frozen holdout.

    Attributes:
        train: Examples to train on.
        validation: Examples for early stopping and calibration (never reported).
        holdout: The frozen holdout, on which candidate and serving model are compared.
        label_set: The labels, in the order the model's head uses.
        content_hash: The content hash of train + validation (the snapshot's).
        dataset: The train + validation snapshot.
        holdout_dataset: The holdout's snapshot (the same one on every round).
        labels_added: Labels the serving model does not have.
        labels_removed: Labels the serving model has that this dataset drops.
    """

    train: tuple[LabelledExample, ...]
    validation: tuple[LabelledExample, ...]
    holdout: tuple[LabelledExample, ...]
    label_set: tuple[str, ...]
    content_hash: str
    dataset: Dataset
    holdout_dataset: Dataset
    labels_added: tuple[str, ...] = field(default=())
    labels_removed: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        check_holdout_disjoint((*self.train, *self.validation), self.holdout)

    @property
    def label_set_changed(self) -> bool:
        """A label was added or removed: the classification head must be re-initialised."""
        return bool(self.labels_added or self.labels_removed)


def _text(prediction_id: int, value: Any) -> str:
    """The text a prediction's model read: the input, its ``text``/``query``, or a policy's."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and isinstance(value.get("signals"), dict):
            return policy_text(value["text"], value["signals"])
        for name in TEXT_FIELDS:
            if isinstance(value.get(name), str):
                return str(value[name])
    keys = sorted(value) if isinstance(value, dict) else type(value).__name__
    raise FeedbackDataError(
        f"Prediction {prediction_id} has no text to train on: its input has no string field "
        f"{' or '.join(TEXT_FIELDS)} (it has {keys}). Only text agents' feedback can be used."
    )


def labelled_examples(session: Session, agent: str) -> list[LabelledExample]:
    """Return one labelled example per prediction of ``agent`` that has usable feedback.

    When a prediction has several feedback rows, ``human`` beats ``outcome``, and within a
    source the newest (highest id) wins. Feedback that is ``rejected``, from a ``rule``, or
    without a label is ignored.

    Args:
        session: A session.
        agent: The agent.

    Returns:
        The examples, in prediction order.

    Raises:
        FeedbackDataError: A labelled prediction's input holds no text.
    """
    query = (
        select(
            orm.Prediction.id,
            orm.Prediction.input,
            orm.Feedback.id,
            orm.Feedback.source,
            orm.Feedback.label,
        )
        .join(orm.Feedback, orm.Feedback.prediction_id == orm.Prediction.id)
        .where(
            orm.Prediction.agent == agent,
            orm.Feedback.status.in_(USABLE_STATUSES),
            orm.Feedback.source.in_(SOURCE_RANK),
            orm.Feedback.label.is_not(None),
        )
    )
    best: dict[int, tuple[tuple[int, int], LabelledExample]] = {}
    for prediction_id, input_, feedback_id, source, label in session.execute(query):
        rank = (SOURCE_RANK[source], -feedback_id)
        if prediction_id not in best or rank < best[prediction_id][0]:
            example = LabelledExample(
                _text(prediction_id, input_), label, prediction_id, feedback_id
            )
            best[prediction_id] = (rank, example)
    return [best[id_][1] for id_ in sorted(best)]


def _dedupe(examples: Iterable[LabelledExample]) -> list[LabelledExample]:
    """One example per normalised text: the most recently labelled one (its label wins)."""
    newest: dict[str, LabelledExample] = {}
    for example in examples:
        kept = newest.get(example.key)
        if kept is None or example.feedback_id > kept.feedback_id:
            newest[example.key] = example
    return list(newest.values())


def _share(count: int, fraction: float) -> int:
    """How many of ``count`` examples a split of ``fraction`` gets: at least one if any."""
    return 0 if fraction == 0 else max(1, int(count * fraction + 0.5))


def _stratified(
    examples: Iterable[LabelledExample], fraction: float, seed: int
) -> tuple[list[LabelledExample], list[LabelledExample]]:
    """Split off ``fraction`` of each label: (the rest, the part split off)."""
    by_label: dict[str, list[LabelledExample]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rest: list[LabelledExample] = []
    part: list[LabelledExample] = []
    for label in sorted(by_label):
        ordered = sorted(
            by_label[label],
            key=lambda e: hashlib.sha256(f"{seed}\x00{e.key}".encode()).hexdigest(),
        )
        taken = _share(len(ordered), fraction)
        part.extend(ordered[:taken])
        rest.extend(ordered[taken:])
    return rest, part


def _check_fractions(holdout_fraction: float, val_fraction: float, min_per_class: int) -> None:
    if not 0 < holdout_fraction < 1 or not 0 <= val_fraction < 1 or min_per_class < 1:
        raise FeedbackDataError(
            f"Invalid split: holdout_fraction={holdout_fraction} (must be in (0, 1)), "
            f"val_fraction={val_fraction} (in [0, 1)), min_per_class={min_per_class} (>= 1)."
        )


def _choose_labels(
    examples: Sequence[LabelledExample],
    label_set: Sequence[str] | None,
    serving_labels: Sequence[str] | None,
) -> tuple[str, ...]:
    """The label set: the one given (checked), else the serving order plus new labels."""
    seen = Counter(example.label for example in examples)
    if label_set is not None:
        outside = sorted(set(seen) - set(label_set))
        if outside:
            counts = ", ".join(f"'{label}' ({seen[label]})" for label in outside)
            raise LabelOutsideSetError(
                f"Feedback has labels outside the label set: {counts}. Valid labels: "
                f"{', '.join(label_set)}. Add them to the label set or reject that feedback."
            )
        return tuple(label_set)
    kept = [label for label in serving_labels or () if label in seen]
    return (*kept, *sorted(set(seen) - set(kept)))


def _check_counts(
    examples: Sequence[LabelledExample], label_set: Sequence[str], minimum: int, where: str
) -> None:
    counts = Counter(example.label for example in examples)
    short = [label for label in label_set if counts[label] < minimum]
    if short:
        listed = ", ".join(f"'{label}' has {counts[label]}" for label in short)
        raise TooFewExamplesError(
            f"Too few examples per class (need at least {minimum} {where}): {listed}. Label "
            "more examples of these classes, or leave them out of the label set."
        )


def _find_holdout(session: Session, agent: str) -> tuple[Dataset, list[LabelledExample]] | None:
    """The agent's frozen holdout (its first holdout snapshot) and its examples, or None."""
    row = session.scalar(
        select(orm.Dataset)
        .where(orm.Dataset.agent == agent, orm.Dataset.meta["role"].as_string() == HOLDOUT_ROLE)
        .order_by(orm.Dataset.version)
        .limit(1)
    )
    if row is None:
        return None
    dataset = Dataset.model_validate(row)
    return dataset, [LabelledExample(**item) for item in dataset.meta["examples"]]


def _snapshot(
    session: Session,
    agent: str,
    splits: dict[str, Sequence[LabelledExample]],
    label_set: Sequence[str],
    meta: dict[str, JsonValue],
) -> Dataset:
    """Snapshot examples tagged with their split (part of the hashed content)."""
    examples: list[dict[str, JsonValue]] = [
        {"text": example.text, "label": example.label, "split": name}
        for name, part in splits.items()
        for example in part
    ]
    return snapshot_dataset(
        session,
        DatasetIn(agent=agent, examples=examples, label_set=list(label_set), meta=meta),
    )


def _record_holdout(
    session: Session, agent: str, drawn: Sequence[LabelledExample], fraction: float, seed: int
) -> Dataset:
    """Snapshot a newly drawn holdout, keeping its examples in the meta (it is frozen)."""
    meta: dict[str, JsonValue] = {
        "role": HOLDOUT_ROLE,
        "seed": seed,
        "holdout_fraction": fraction,
        "examples": [example.to_json() for example in drawn],
    }
    labels = sorted({example.label for example in drawn})
    return _snapshot(session, agent, {HOLDOUT_ROLE: drawn}, labels, meta)


def _label_change(
    labels: Sequence[str], serving_labels: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(added, removed) relative to the serving model; nothing for a first model."""
    if serving_labels is None:
        return (), ()
    return (
        tuple(sorted(set(labels) - set(serving_labels))),
        tuple(sorted(set(serving_labels) - set(labels))),
    )


def build_dataset(
    session: Session,
    agent: str,
    *,
    holdout_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    min_per_class: int = 5,
    label_set: Sequence[str] | None = None,
    serving_labels: Sequence[str] | None = None,
) -> DatasetSplit:
    """Build this round's train/validation split around the agent's frozen holdout.

    Args:
        session: The session to read and write in; the caller commits.
        agent: The agent.
        holdout_fraction: Share of each label drawn into the holdout, the first time only.
        val_fraction: Share of each label's non-holdout examples kept for validation.
        seed: Fixes both splits.
        min_per_class: Fewest examples (holdout included) each label needs.
        label_set: The allowed labels in head order; None takes the labels feedback uses.
        serving_labels: The serving model's labels; a difference is recorded as a label set
            change (the head must be re-initialised). None for the agent's first model.

    Returns:
        The split, with its snapshots. Holdout examples whose label is no longer in the label
        set are left out of ``holdout`` (the recorded holdout itself never changes).

    Raises:
        EmptyDatasetError: The agent has no usable labelled feedback.
        LabelOutsideSetError: Feedback uses labels outside ``label_set``.
        TooFewExamplesError: A label has fewer than ``min_per_class`` examples, or none left
            for training after the holdout and validation took theirs.
    """
    _check_fractions(holdout_fraction, val_fraction, min_per_class)
    examples = _dedupe(labelled_examples(session, agent))
    if not examples:
        raise EmptyDatasetError(
            f"Agent '{agent}' has no labelled feedback to train on (human or outcome feedback "
            "with a label, not rejected). Label some of its predictions first."
        )
    labels = _choose_labels(examples, label_set, serving_labels)
    found = _find_holdout(session, agent)
    frozen = [] if found is None else found[1]
    held = {example.key for example in frozen}
    pool = [example for example in examples if example.key not in held]
    holdout = [example for example in frozen if example.label in labels]
    # Every check runs before anything is written: a refused dataset leaves no snapshot.
    _check_counts([*pool, *holdout], labels, min_per_class, "in all")
    if found is None:
        pool, holdout = _stratified(pool, holdout_fraction, seed)
    train, validation = _stratified(pool, val_fraction, seed)
    _check_counts(train, labels, 1, "left for training after the holdout and validation")
    holdout_dataset = (
        _record_holdout(session, agent, holdout, holdout_fraction, seed)
        if found is None
        else found[0]
    )
    added, removed = _label_change(labels, serving_labels)
    meta: dict[str, JsonValue] = {
        "role": TRAINING_ROLE,
        "holdout_version": holdout_dataset.version,
        "label_set_changed": bool(added or removed),
        "labels_added": list(added),
        "labels_removed": list(removed),
        "feedback_ids": [id_ for id_ in sorted(example.feedback_id for example in pool)],
    }
    dataset = _snapshot(session, agent, {"train": train, "validation": validation}, labels, meta)
    return DatasetSplit(
        train=tuple(train),
        validation=tuple(validation),
        holdout=tuple(holdout),
        label_set=labels,
        content_hash=dataset.content_hash,
        dataset=dataset,
        holdout_dataset=holdout_dataset,
        labels_added=added,
        labels_removed=removed,
    )
