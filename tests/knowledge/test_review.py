"""The review queue ranks by uncertainty (hand-computed here), skips what is labelled or queued."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import func, select, update

from knowledge import (
    Database,
    FeedbackIn,
    PredictionIn,
    ReviewItemNotFoundError,
    enqueue_uncertain,
    labelling_budget,
    mark_done,
    record_predictions,
    review_counts,
    review_queue,
    submit_feedback,
    submit_feedback_many,
    uncertainty,
)
from knowledge import _models as orm

LABELS = ["a", "b", "c"]
# Vectors on which the three measures disagree. Hand-computed (ln 3 = 1.098612):
#        least_confidence  margin          entropy / ln 3
# A      1 - .5  = .5      1 - 0   = 1.0   .693147 / 1.098612 = .630930
# B      1 - .4  = .6      1 - .1  = .9    1.088900 / 1.098612 = .991159
# C      1 - .55 = .45     1 - .11 = .89   .736093 / 1.098612 = .670021
# D      1 - .9  = .1      1 - .85 = .15   .394398 / 1.098612 = .358996
VECTORS = {
    "A": [0.5, 0.5, 0.0],
    "B": [0.3, 0.4, 0.3],
    "C": [0.01, 0.44, 0.55],
    "D": [0.05, 0.9, 0.05],
}
EXPECTED = {
    "least_confidence": {"A": 0.5, "B": 0.6, "C": 0.45, "D": 0.1},
    "margin": {"A": 1.0, "B": 0.9, "C": 0.89, "D": 0.15},
    "entropy": {"A": 0.630930, "B": 0.991159, "C": 0.670021, "D": 0.358996},
}
ORDER = {
    "least_confidence": ["B", "A", "C", "D"],
    "margin": ["A", "B", "C", "D"],
    "entropy": ["B", "C", "A", "D"],
}
STRATEGIES = list(EXPECTED)


def predict(database: Database, agent: str = "intent", **vectors: list[float]) -> dict[str, int]:
    """Record one prediction per named vector; return their ids by name."""
    items = [
        PredictionIn(
            agent=agent,
            model_version="v1",
            input={"text": name},
            output={},
            probabilities=vector,
            label_set=LABELS,
        )
        for name, vector in vectors.items()
    ]
    with database.transaction() as session:
        stored = record_predictions(session, items)
    return {name: p.id for name, p in zip(vectors, stored, strict=True)}


def names(ids: dict[str, int], items: list[Any]) -> list[str]:
    by_id = {id_: name for name, id_ in ids.items()}
    return [by_id[item.prediction_id] for item in items]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_uncertainty_matches_the_hand_computed_values(strategy: Any) -> None:
    for name, vector in VECTORS.items():
        assert uncertainty(vector, strategy) == pytest.approx(EXPECTED[strategy][name], abs=1e-6)


def test_uncertainty_of_one_label_and_bad_input() -> None:
    assert [uncertainty([1.0], s) for s in STRATEGIES] == [0.0, 0.0, 0.0]
    assert uncertainty([0.25] * 4, "entropy") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one value"):
        uncertainty([])
    with pytest.raises(ValueError, match="Strategies: least_confidence, margin, entropy"):
        uncertainty([1.0], "random")  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_queue_is_ordered_most_uncertain_first_by_each_strategy(
    database: Database, strategy: Any
) -> None:
    ids = predict(database, **VECTORS)
    with database.transaction() as session:
        assert enqueue_uncertain(session, "intent", strategy=strategy) == 4

    with database.session() as session:
        queue = review_queue(session, "intent")
    assert names(ids, queue) == ORDER[strategy]
    assert [q.priority for q in queue] == pytest.approx(
        [EXPECTED[strategy][n] for n in ORDER[strategy]], abs=1e-6
    )
    assert {(q.strategy, q.status, q.agent) for q in queue} == {(strategy, "open", "intent")}
    assert [q.prediction.input for q in queue] == [{"text": n} for n in ORDER[strategy]]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_queue_can_be_reranked_by_another_strategy(database: Database, strategy: Any) -> None:
    ids = predict(database, **VECTORS)
    with database.transaction() as session:
        enqueue_uncertain(session, "intent", strategy="least_confidence")

    with database.session() as session:
        queue = review_queue(session, "intent", strategy=strategy, limit=3)
    assert names(ids, queue) == ORDER[strategy][:3]
    assert {q.strategy for q in queue} == {strategy}
    assert queue[0].priority == pytest.approx(EXPECTED[strategy][ORDER[strategy][0]], abs=1e-6)


def test_threshold_and_limit_choose_the_most_uncertain(database: Database) -> None:
    ids = predict(database, **VECTORS)
    with database.transaction() as session:
        assert enqueue_uncertain(session, "intent", threshold=0.4, limit=2) == 2

    with database.session() as session:
        assert names(ids, review_queue(session, "intent")) == ["B", "A"]
    with database.transaction() as session:
        # C passes the threshold; D does not. Already queued ones are not queued again.
        assert enqueue_uncertain(session, "intent", threshold=0.4) == 1
        assert enqueue_uncertain(session, "intent", threshold=0.4) == 0
    with database.session() as session:
        assert names(ids, review_queue(session, "intent")) == ["B", "A", "C"]


def test_labelled_and_vectorless_predictions_and_other_agents_are_not_queued(
    database: Database,
) -> None:
    ids = predict(database, **VECTORS)
    predict(database, agent="sentiment", E=[0.34, 0.33, 0.33])
    with database.transaction() as session:
        record_predictions(
            session, [PredictionIn(agent="intent", model_version="v1", input={}, output={})]
        )
        submit_feedback(
            session, FeedbackIn(prediction_id=ids["B"], label="a", source="rule", author="r")
        )
        assert enqueue_uncertain(session, "intent") == 3

    with database.session() as session:
        assert names(ids, review_queue(session, "intent")) == ["A", "C", "D"]


def test_items_labelled_after_queueing_leave_the_queue(database: Database) -> None:
    ids = predict(database, **VECTORS)
    with database.transaction() as session:
        enqueue_uncertain(session, "intent")
        submit_feedback(
            session, FeedbackIn(prediction_id=ids["A"], label="b", source="human", author="ann")
        )

    with database.session() as session:
        assert names(ids, review_queue(session, "intent")) == ["B", "C", "D"]
        assert names(ids, review_queue(session, "intent", limit=1)) == ["B"]


def test_review_counts_match_the_open_queues(database: Database) -> None:
    ids = predict(database, **VECTORS)
    predict(database, agent="entities", E=[0.5, 0.5, 0.0], F=[0.6, 0.4, 0.0])
    predict(database, agent="unqueued", G=[0.5, 0.5, 0.0])
    with database.session() as session:
        assert review_counts(session) == {}
    with database.transaction() as session:
        enqueue_uncertain(session, "intent")
        enqueue_uncertain(session, "entities")
        submit_feedback(  # labelled after queueing: no longer open, as in review_queue
            session, FeedbackIn(prediction_id=ids["A"], label="b", source="human", author="ann")
        )
        mark_done(session, review_queue(session, "intent")[0].id, status="skipped")

    with database.session() as session:
        counts = review_counts(session)
        assert counts == {"entities": 2, "intent": 2}
        assert counts["intent"] == len(review_queue(session, "intent"))


def test_mark_done_closes_an_item(database: Database) -> None:
    ids = predict(database, **VECTORS)
    with database.transaction() as session:
        enqueue_uncertain(session, "intent")
        first, second = review_queue(session, "intent", limit=2)
        done = mark_done(session, first.id)
        skipped = mark_done(session, second.id, status="skipped")

    assert (done.status, skipped.status) == ("done", "skipped")
    assert done.prediction == first.prediction
    with database.session() as session:
        assert names(ids, review_queue(session, "intent")) == ["C", "D"]


def test_mark_done_errors_change_nothing(database: Database) -> None:
    predict(database, **VECTORS)
    with database.transaction() as session:
        enqueue_uncertain(session, "intent")
    with database.session() as session:
        with pytest.raises(ReviewItemNotFoundError, match="no review item 999"):
            mark_done(session, 999)
        item = review_queue(session, "intent")[0]
        with pytest.raises(ValueError, match="Statuses: done, skipped"):
            mark_done(session, item.id, status="open")  # type: ignore[arg-type]
        session.commit()
        open_items = session.scalar(
            select(func.count()).select_from(orm.ReviewItem).where(orm.ReviewItem.status == "open")
        )
    assert open_items == 4


def test_unknown_strategies_are_refused(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(ValueError, match="Unknown strategy 'random'"):
            enqueue_uncertain(session, "intent", strategy="random")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Unknown strategy 'random'"):
            review_queue(session, "intent", strategy="random")  # type: ignore[arg-type]


def test_the_labelling_budget_counts_human_labels_this_round(database: Database) -> None:
    ids = predict(database, **VECTORS)
    other = predict(database, agent="sentiment", E=[0.34, 0.33, 0.33])
    with database.transaction() as session:
        submit_feedback_many(
            session,
            [
                FeedbackIn(prediction_id=ids["A"], label="a", source="human", author="ann"),
                FeedbackIn(prediction_id=ids["B"], label="a", source="human", author="ann"),
                FeedbackIn(prediction_id=ids["C"], label="a", source="human", author="ann"),
                FeedbackIn(prediction_id=ids["D"], label="a", source="outcome", author="crm"),
                FeedbackIn(prediction_id=other["E"], label="a", source="human", author="ann"),
            ],
        )
        # One label from an earlier round.
        session.execute(
            update(orm.Feedback).where(orm.Feedback.prediction_id == ids["C"]).values(created_at=1)
        )

    with database.session() as session:
        assert labelling_budget(session, "intent", per_round=5, since=100.0) == 3
        assert labelling_budget(session, "intent", per_round=1, since=100.0) == 0
        assert labelling_budget(session, "intent", per_round=5, since=0.0) == 2
        assert labelling_budget(session, "nobody", per_round=5, since=0.0) == 5


def test_multi_label_uncertainty_is_that_of_the_closest_call() -> None:
    # Each label is a yes/no pair (p, 1 - p); the most uncertain label decides.
    confident, torn = [0.97, 0.01, 0.02], [0.6, 0.9, 0.55]
    assert uncertainty(confident, multi_label=True) == pytest.approx(0.03)
    assert uncertainty(confident, "margin", multi_label=True) == pytest.approx(1 - (0.97 - 0.03))
    assert uncertainty(torn, multi_label=True) == pytest.approx(0.45)
    assert uncertainty(torn, "margin", multi_label=True) == pytest.approx(1 - (0.55 - 0.45))
    binary_entropy = -(0.55 * math.log(0.55) + 0.45 * math.log(0.45)) / math.log(2)
    assert uncertainty(torn, "entropy", multi_label=True) == pytest.approx(binary_entropy)
    with pytest.raises(ValueError, match="Strategies: least_confidence"):
        uncertainty(torn, "random", multi_label=True)  # type: ignore[arg-type]


def test_multi_label_predictions_are_recorded_and_queued_by_their_closest_call(
    database: Database,
) -> None:
    items = [
        PredictionIn(
            agent="topics",
            model_version="v1",
            input={"text": name},
            output={},
            probabilities=vector,
            label_set=LABELS,
            multi_label=True,
        )
        for name, vector in {"confident": [0.97, 0.99, 0.02], "torn": [0.5, 0.99, 0.02]}.items()
    ]
    with database.transaction() as session:
        stored = record_predictions(session, items)
        assert enqueue_uncertain(session, "topics") == 2

    assert [p.multi_label for p in stored] == [True, True]
    with database.session() as session:
        queue = review_queue(session, "topics")
    assert [q.prediction.input["text"] for q in queue] == ["torn", "confident"]
    assert [q.priority for q in queue] == pytest.approx([0.5, 0.03])
    assert queue[0].prediction.probabilities == [0.5, 0.99, 0.02]
