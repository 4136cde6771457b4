"""Datasets from feedback: winning labels, stratified seeded splits, a frozen holdout, errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from sqlalchemy.orm import Session

from agents import policy_text
from finetune import (
    DatasetSplit,
    EmptyDatasetError,
    FeedbackDataError,
    FinetuneError,
    HoldoutOverlapError,
    LabelledExample,
    LabelOutsideSetError,
    TooFewExamplesError,
    build_dataset,
    check_holdout_disjoint,
    labelled_examples,
)
from knowledge import (
    Database,
    FeedbackIn,
    PredictionIn,
    get_dataset,
    record_predictions,
    submit_feedback_many,
)
from knowledge import _models as orm

LABELS = ["balance", "card_lost", "refund"]


def predict(
    session: Session, texts: Sequence[object], agent: str = "intent", labels: list[str] = LABELS
) -> list[int]:
    """Record one prediction per input (a text becomes ``{"text": ...}``); return the ids."""
    items = [
        PredictionIn(
            agent=agent,
            model_version="v1",
            input={"text": text} if isinstance(text, str) else text,
            output={},
            label=labels[0],
            label_set=labels,
        )
        for text in texts
    ]
    return [prediction.id for prediction in record_predictions(session, items)]


def label(
    session: Session,
    ids: Sequence[int],
    labels: Sequence[str],
    *,
    source: str = "human",
    author: str = "ann",
) -> list[int]:
    items = [
        FeedbackIn.model_validate(
            {"prediction_id": id_, "label": label, "source": source, "author": author}
        )
        for id_, label in zip(ids, labels, strict=True)
    ]
    return [feedback.id for feedback in submit_feedback_many(session, items)]


def add_examples(
    session: Session, counts: dict[str, int], agent: str = "intent", start: int = 0
) -> None:
    """Label ``counts[label]`` fresh predictions with each label."""
    texts, labels = [], []
    for name, count in counts.items():
        for i in range(start, start + count):
            texts.append(f"{name} example number {i}")
            labels.append(name)
    label(session, predict(session, texts, agent), labels)


def keys(examples: Sequence[LabelledExample]) -> set[str]:
    return {example.key for example in examples}


def test_each_prediction_gets_one_label_human_first_then_newest(database: Database) -> None:
    with database.transaction() as session:
        a, b, c, d = predict(
            session, ["reviewed", {"query": "asked", "k": 3}, "outcome only", "rejected only"]
        )
        label(session, [a, b, c], ["refund", "refund", "balance"], source="outcome", author="crm")
        label(session, [a, b], ["card_lost", "balance"], author="ann")
        label(session, [b], ["card_lost"], author="bob")  # newer human label wins
        label(session, [c, d], ["refund", "refund"], source="rule", author="regex")
        (rejected,) = label(session, [d], ["balance"])
        session.get_one(orm.Feedback, rejected).status = "rejected"

        examples = labelled_examples(session, "intent")

    assert [(e.prediction_id, e.text, e.label) for e in examples] == [
        (a, "reviewed", "card_lost"),
        (b, "asked", "card_lost"),
        (c, "outcome only", "balance"),
    ]


def test_a_policy_prediction_trains_on_the_text_its_model_reads(database: Database) -> None:
    signals: dict[str, bool | int | float | str] = {
        "intent": "card_lost",
        "intent_confidence": 0.931,
        "vip": True,
    }
    with database.transaction() as session:
        policy, plain = predict(
            session, [{"text": "where is my card?", "signals": signals}, "where is my card?"]
        )
        label(session, [policy, plain], ["card_lost", "refund"])

        examples = labelled_examples(session, "intent")

    assert [(e.prediction_id, e.text) for e in examples] == [
        (policy, policy_text("where is my card?", signals)),
        (plain, "where is my card?"),
    ]
    assert examples[0].text == (
        "intent: card_lost; intent_confidence: 0.93; vip: yes | where is my card?"
    )


def test_a_prediction_without_text_is_a_clear_error(database: Database) -> None:
    with database.transaction() as session:
        label(session, predict(session, [{"tokens": ["a"]}]), ["refund"])

        with pytest.raises(FeedbackDataError, match=r"no string field text or query.*tokens"):
            labelled_examples(session, "intent")


def test_splits_are_stratified_per_label(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 20, "card_lost": 40, "refund": 60})
        split = build_dataset(session, "intent", holdout_fraction=0.2, val_fraction=0.25)

    held, val, train = (
        Counter(e.label for e in part) for part in (split.holdout, split.validation, split.train)
    )
    assert held == {"balance": 4, "card_lost": 8, "refund": 12}
    assert val == {"balance": 4, "card_lost": 8, "refund": 12}
    assert train == {"balance": 12, "card_lost": 24, "refund": 36}
    assert split.label_set == ("balance", "card_lost", "refund")
    assert not split.label_set_changed


def test_the_split_is_fixed_by_the_seed_not_the_arrival_order(database: Database) -> None:
    counts = {"balance": 10, "card_lost": 10, "refund": 10}
    with database.transaction() as session:
        add_examples(session, counts, agent="a")
        add_examples(session, dict(reversed(counts.items())), agent="b")
        add_examples(session, counts, agent="c")
        first = build_dataset(session, "a", seed=1)
        same = build_dataset(session, "b", seed=1)
        other = build_dataset(session, "c", seed=2)

    for part in ("train", "validation", "holdout"):
        assert keys(getattr(first, part)) == keys(getattr(same, part))
    assert first.content_hash == same.content_hash
    assert keys(first.holdout) != keys(other.holdout)
    assert first.content_hash != other.content_hash


def test_the_same_data_gives_the_same_snapshot_version(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 8, "card_lost": 8, "refund": 8})
        first = build_dataset(session, "intent")
    with database.transaction() as session:
        again = build_dataset(session, "intent")
        latest = get_dataset(session, "intent")

    assert again.dataset == first.dataset
    assert again.content_hash == first.content_hash == first.dataset.content_hash
    assert latest == first.dataset  # no new version was made
    assert first.dataset.size == len(first.train) + len(first.validation)
    assert first.dataset.meta["role"] == "training"
    assert first.dataset.meta["holdout_version"] == first.holdout_dataset.version


def test_identical_texts_are_one_example_with_the_newest_label(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6, "refund": 6})
        ids = predict(session, ["I lost my card", "  i LOST my   card "])
        label(session, ids, ["refund", "card_lost"])
        split = build_dataset(session, "intent", val_fraction=0)

    found = [e for e in (*split.train, *split.holdout) if e.key == "i lost my card"]
    assert [(e.prediction_id, e.label) for e in found] == [(ids[1], "card_lost")]


def test_the_holdout_is_frozen_across_rounds(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 10, "card_lost": 10, "refund": 10})
        first = build_dataset(session, "intent", seed=3)
    held_text = first.holdout[0].text
    with database.transaction() as session:
        add_examples(session, {"balance": 10, "card_lost": 10, "refund": 10}, start=100)
        # The same text again, and a relabelled holdout prediction: neither reaches training.
        label(session, predict(session, [held_text]), ["refund"])
        label(session, [first.holdout[1].prediction_id], ["refund"], author="bob")
        second = build_dataset(session, "intent", seed=4, holdout_fraction=0.5)

    assert second.holdout == first.holdout
    assert second.holdout_dataset == first.holdout_dataset
    new = {f"{name} example number {i}" for name in LABELS for i in range(100, 110)}
    assert {e.text for e in (*second.train, *second.validation)} - {
        e.text for e in (*first.train, *first.validation)
    } == new
    assert not keys(second.holdout) & keys((*second.train, *second.validation))
    assert second.dataset.version > first.dataset.version


def test_a_changed_label_set_is_reported_and_recorded(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6, "refund": 6})
        split = build_dataset(session, "intent", serving_labels=["refund", "balance", "fraud"])

    assert split.label_set_changed
    assert split.labels_added == ("card_lost",)
    assert split.labels_removed == ("fraud",)
    # Kept labels keep the serving head's order; new ones are appended.
    assert split.label_set == ("refund", "balance", "card_lost")
    assert split.dataset.meta["label_set_changed"] is True
    assert split.dataset.meta["labels_added"] == ["card_lost"]
    assert split.dataset.meta["labels_removed"] == ["fraud"]


def test_an_unchanged_label_set_is_not_a_change(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6, "refund": 6})
        split = build_dataset(session, "intent", serving_labels=LABELS)

    assert not split.label_set_changed
    assert split.dataset.meta["label_set_changed"] is False


def test_no_feedback_is_an_empty_dataset_error(database: Database) -> None:
    with database.transaction() as session:
        predict(session, ["unlabelled"])

        with pytest.raises(EmptyDatasetError, match="Agent 'intent' has no labelled feedback"):
            build_dataset(session, "intent")


def test_too_few_examples_name_the_classes_and_write_nothing(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 2, "refund": 3})

        with pytest.raises(TooFewExamplesError, match="'card_lost' has 2, 'refund' has 3"):
            build_dataset(session, "intent", min_per_class=5)
        assert get_dataset(session, "intent") is None


def test_a_class_with_nothing_left_for_training_is_refused(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 1})

        with pytest.raises(TooFewExamplesError, match=r"left for training.*'card_lost' has 0"):
            build_dataset(session, "intent", min_per_class=1)


def test_a_required_label_without_examples_is_too_few(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6})

        with pytest.raises(TooFewExamplesError, match="'refund' has 0"):
            build_dataset(session, "intent", label_set=LABELS)


def test_labels_outside_the_label_set_are_refused(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6, "refund": 2})

        with pytest.raises(LabelOutsideSetError, match=r"'refund' \(2\).*balance, card_lost"):
            build_dataset(session, "intent", label_set=["balance", "card_lost"])


@pytest.mark.parametrize(
    ("holdout_fraction", "val_fraction", "min_per_class"),
    [(0.0, 0.1, 5), (1.0, 0.1, 5), (0.2, 1.0, 5), (0.2, -0.1, 5), (0.2, 0.1, 0)],
)
def test_invalid_split_settings_are_refused(
    database: Database, holdout_fraction: float, val_fraction: float, min_per_class: int
) -> None:
    with database.transaction() as session, pytest.raises(FeedbackDataError, match="Invalid"):
        build_dataset(
            session,
            "intent",
            holdout_fraction=holdout_fraction,
            val_fraction=val_fraction,
            min_per_class=min_per_class,
        )


def test_a_split_whose_training_data_overlaps_the_holdout_is_refused(database: Database) -> None:
    with database.transaction() as session:
        add_examples(session, {"balance": 6, "card_lost": 6, "refund": 6})
        split = build_dataset(session, "intent")
    leaked = LabelledExample(f"  {split.holdout[0].text.upper()} ", "refund", 999, 999)

    with pytest.raises(HoldoutOverlapError, match="1 training/validation texts are also in"):
        check_holdout_disjoint([*split.train, leaked], split.holdout)
    with pytest.raises(HoldoutOverlapError) as caught:
        DatasetSplit(**{**vars(split), "train": (*split.train, leaked)})
    assert isinstance(caught.value, FinetuneError)
    check_holdout_disjoint(split.train, split.holdout)  # the built split is disjoint
