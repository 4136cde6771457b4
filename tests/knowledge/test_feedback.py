"""Predictions, feedback and the audit log on both backends: stored, validated, all-or-nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from knowledge import (
    Database,
    DuplicateFeedbackError,
    FeedbackError,
    FeedbackIn,
    InvalidLabelError,
    Prediction,
    PredictionIn,
    UnknownPredictionError,
    audit,
    audit_log,
    enqueue_uncertain,
    feedback_for,
    get_prediction,
    import_labels,
    record_prediction,
    record_predictions,
    submit_feedback,
    submit_feedback_many,
)
from knowledge import _feedback as feedback_module
from knowledge import _models as orm

LABELS = ["balance", "card_lost", "refund"]
EMAIL = "jane.doe@example.com"


def prediction_in(text: str = "where is my refund", **fields: Any) -> PredictionIn:
    values: dict[str, Any] = {
        "agent": "intent",
        "model_version": "v1",
        "input": {"text": text},
        "output": {"label": "refund"},
        "label": "refund",
        "confidence": 0.7,
        "probabilities": [0.1, 0.2, 0.7],
        "label_set": LABELS,
    }
    values.update(fields)
    return PredictionIn.model_validate(values)


def human(prediction_id: int, label: str = "refund", author: str = "ann", **kw: Any) -> FeedbackIn:
    return FeedbackIn(prediction_id=prediction_id, label=label, source="human", author=author, **kw)


def count(session: Session, model: type[orm.Base]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def counts(database: Database) -> tuple[int, int]:
    with database.session() as session:
        return count(session, orm.Feedback), count(session, orm.AuditEntry)


@pytest.fixture
def predictions(database: Database) -> list[Prediction]:
    with database.transaction() as session:
        return record_predictions(session, [prediction_in(f"query {i}") for i in range(3)])


# ------------------------------------------------------------------ predictions


def test_a_recorded_prediction_reads_back_equal(database: Database) -> None:
    with database.transaction() as session:
        stored = record_prediction(session, prediction_in(run_id=None, step="perceive"))

    with database.session() as session:
        again = get_prediction(session, stored.id)
    assert again == stored
    assert (again.agent, again.label, again.probabilities, again.label_set, again.step) == (
        "intent",
        "refund",
        [0.1, 0.2, 0.7],
        LABELS,
        "perceive",
    )
    assert again.created_at > 0


def test_a_batch_of_predictions_keeps_its_order(database: Database) -> None:
    with database.transaction() as session:
        stored = record_predictions(session, [prediction_in(f"q{i}") for i in range(50)])

    assert [p.input for p in stored] == [{"text": f"q{i}"} for i in range(50)]
    assert [p.id for p in stored] == sorted(p.id for p in stored)
    assert record_predictions(database.session(), []) == []


def test_prediction_text_is_redacted_before_it_is_stored(database: Database) -> None:
    with database.transaction() as session:
        stored = record_prediction(
            session, prediction_in(f"mail me at {EMAIL}", output={"reply": f"sent to {EMAIL}"})
        )

    with database.session() as session:
        row = session.get_one(orm.Prediction, stored.id)
        assert EMAIL not in json.dumps([row.input, row.output])
    assert EMAIL not in json.dumps([stored.input, stored.output])
    assert stored.input["text"].startswith("mail me at ")


def test_an_unknown_prediction_is_a_lookup_error(database: Database) -> None:
    with database.session() as session, pytest.raises(LookupError, match="no prediction 404"):
        get_prediction(session, 404)


# ------------------------------------------------------------------ one feedback


def test_feedback_is_stored_with_what_the_reviewer_saw_and_audited(
    database: Database, predictions: list[Prediction]
) -> None:
    target = predictions[1]
    shown = {"text": "query 1", "suggested": "refund", "confidence": 0.7}
    with database.transaction() as session:
        stored = submit_feedback(session, human(target.id, "balance", shown=shown))

    assert (stored.prediction_id, stored.label, stored.source, stored.author, stored.status) == (
        target.id,
        "balance",
        "human",
        "ann",
        "new",
    )
    with database.session() as session:
        assert feedback_for(session, target.id) == [stored]
        [entry] = audit_log(session, entity="feedback", entity_id=stored.id)
    assert stored.shown == shown
    assert (entry.actor, entry.action, entry.details) == (
        "ann",
        "feedback.submit",
        {"prediction_id": target.id, "source": "human", "label": "balance"},
    )


def test_corrections_and_shown_text_are_redacted(
    database: Database, predictions: list[Prediction]
) -> None:
    item = FeedbackIn(
        prediction_id=predictions[0].id,
        correction={"email": EMAIL},
        source="outcome",
        author="crm",
        shown={"text": f"from {EMAIL}"},
    )
    with database.transaction() as session:
        submit_feedback(session, item)

    with database.session() as session:
        row = session.scalars(select(orm.Feedback)).one()
        assert EMAIL not in json.dumps([row.correction, row.shown])
        assert row.label is None


def test_an_unknown_prediction_is_rejected_and_nothing_changes(
    database: Database, predictions: list[Prediction]
) -> None:
    before = counts(database)
    with database.session() as session:
        with pytest.raises(UnknownPredictionError) as caught:
            submit_feedback(session, human(999))
        session.commit()

    message = str(caught.value)
    assert "Feedback rejected, nothing was stored" in message
    assert "There is no prediction 999" in message
    assert "record the prediction first" in message
    assert isinstance(caught.value, FeedbackError)
    assert caught.value.prediction_id == 999
    assert counts(database) == before


def test_a_label_outside_the_label_set_lists_the_valid_ones(
    database: Database, predictions: list[Prediction]
) -> None:
    before = counts(database)
    with database.session() as session, pytest.raises(InvalidLabelError) as caught:
        submit_feedback(session, human(predictions[0].id, "refnd"))

    message = str(caught.value)
    assert f"Label 'refnd' for prediction {predictions[0].id}" in message
    assert "label set of agent 'intent'" in message
    assert "Did you mean 'refund'?" in message
    assert "Valid labels: balance, card_lost, refund." in message
    assert caught.value.valid_labels == LABELS
    assert counts(database) == before


def test_a_second_feedback_from_the_same_source_and_author_is_a_duplicate(
    database: Database, predictions: list[Prediction]
) -> None:
    pid = predictions[0].id
    with database.transaction() as session:
        submit_feedback(session, human(pid))
        # Another author, or the same author through another source, is not a duplicate.
        submit_feedback(session, human(pid, author="bob"))
        submit_feedback(
            session, FeedbackIn(prediction_id=pid, label="refund", source="outcome", author="ann")
        )
    before = counts(database)

    with database.session() as session, pytest.raises(DuplicateFeedbackError) as caught:
        submit_feedback(session, human(pid, "balance"))

    assert f"Author 'ann' already gave human feedback on prediction {pid}" in str(caught.value)
    assert "one per prediction, source and author" in str(caught.value)
    assert counts(database) == before == (3, 3)


def test_a_prediction_without_a_label_set_takes_any_label(database: Database) -> None:
    free = prediction_in(label=None, probabilities=None, label_set=None, agent="extractor")
    with database.transaction() as session:
        pid = record_prediction(session, free).id
        stored = submit_feedback(session, human(pid, "anything"))

    assert stored.label == "anything"


def test_a_race_lost_to_another_writer_gives_the_precise_error_and_keeps_the_session(
    database: Database, predictions: list[Prediction], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = predictions[0].id
    with database.transaction() as session:
        submit_feedback(session, human(pid))
    real_taken = feedback_module._taken
    calls: list[int] = []

    def blind_first_time(session: Session, ids: set[int]) -> set[tuple[int, str, str]]:
        # As if the other writer committed between our check and our insert.
        calls.append(1)
        return set() if len(calls) == 1 else real_taken(session, ids)

    monkeypatch.setattr(feedback_module, "_taken", blind_first_time)
    before = counts(database)
    with database.session() as session:
        with pytest.raises(DuplicateFeedbackError, match="already gave human feedback"):
            submit_feedback(session, human(pid, "balance"))
        # The savepoint took the failed insert back; the transaction goes on.
        submit_feedback(session, human(pid, "balance", author="bob"))
        session.commit()

    assert len(calls) == 3
    assert counts(database) == (before[0] + 1, before[1] + 1)


# ------------------------------------------------------------------ batches


def test_a_batch_is_stored_in_order_with_one_audit_entry_per_row(
    database: Database, predictions: list[Prediction]
) -> None:
    items = [human(p.id, author=f"reviewer{i}") for i in range(4) for p in predictions]
    with database.transaction() as session:
        stored = submit_feedback_many(session, items)

    assert [(f.prediction_id, f.author) for f in stored] == [
        (i.prediction_id, i.author) for i in items
    ]
    assert counts(database) == (12, 12)
    with database.session() as session:
        audited = {e.entity_id for e in audit_log(session, action="feedback.submit", limit=50)}
    assert audited == {str(f.id) for f in stored}
    assert submit_feedback_many(database.session(), []) == []


def test_a_batch_is_validated_whole_and_rejected_whole(
    database: Database, predictions: list[Prediction]
) -> None:
    items = [
        human(predictions[0].id),
        human(12345),
        human(predictions[1].id),
        human(predictions[2].id, "refnud"),
        human(predictions[0].id),  # the same key as item 0
    ]
    with database.session() as session, pytest.raises(UnknownPredictionError) as caught:
        submit_feedback_many(session, items)

    message = str(caught.value)
    assert "Feedback batch rejected, nothing was stored: 3 of 5 items are invalid" in message
    assert "item 1: There is no prediction 12345" in message
    assert "item 3: Label 'refnud'" in message
    assert "item 4: Author 'ann' already gave human feedback" in message
    assert [type(p) for p in caught.value.problems] == [
        UnknownPredictionError,
        InvalidLabelError,
        DuplicateFeedbackError,
    ]
    assert [p.index for p in caught.value.problems] == [1, 3, 4]
    assert counts(database) == (0, 0)


def test_a_long_list_of_problems_is_cut_short_in_the_message(database: Database) -> None:
    items = [human(10_000 + i) for i in range(25)]
    with database.session() as session, pytest.raises(UnknownPredictionError) as caught:
        submit_feedback_many(session, items)

    assert "25 of 25 items are invalid" in str(caught.value)
    assert "... and 15 more" in str(caught.value)
    assert len(caught.value.problems) == 25


def test_a_batch_costs_two_validation_queries_whatever_its_size(
    database: Database,
) -> None:
    with database.transaction() as session:
        ids = [p.id for p in record_predictions(session, [prediction_in()] * 1000)]
    statements: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split()[0].upper())

    event.listen(database.engine, "before_cursor_execute", spy)
    try:
        with database.transaction() as session:
            submit_feedback_many(session, [human(i) for i in ids])
    finally:
        event.remove(database.engine, "before_cursor_execute", spy)

    assert statements.count("SELECT") == 2
    assert counts(database) == (1000, 1000)


# ------------------------------------------------------------------ audit


def test_audit_entries_can_be_written_and_filtered(database: Database) -> None:
    with database.transaction() as session:
        first = audit(session, "ops", "db.prune", "steps", None, {"removed": 3})
        audit(session, "ops", "alias.move", "model_aliases", 7, {"note": f"by {EMAIL}"})
        audit(session, "ann", "feedback.submit", "feedback", "9")

    with database.session() as session:
        assert [e.action for e in audit_log(session, actor="ops")] == ["alias.move", "db.prune"]
        assert audit_log(session, entity="steps") == [first]
        [moved] = audit_log(session, entity="model_aliases", entity_id=7)
        assert audit_log(session, limit=1)[0].actor == "ann"
    assert first.entity_id is None
    assert first.details == {"removed": 3}
    assert EMAIL not in json.dumps(moved.details)


def test_audit_names_must_fit_their_columns(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="actor must be 1 to 200"):
        audit(session, "x" * 201, "a", "e", None)


def test_imported_labels_seed_an_agent_and_never_reach_the_review_queue(
    database: Database,
) -> None:
    rows = [("where is my card", "card_arrival"), ("change my pin", "change_pin")]
    with database.transaction() as session:
        stored = import_labels(session, "intent", rows, author="ann")
        enqueued = enqueue_uncertain(session, "intent")

    with database.session() as session:
        predictions = [get_prediction(session, f.prediction_id) for f in stored]
    assert [(f.label, f.source, f.author) for f in stored] == [
        ("card_arrival", "human", "ann"),
        ("change_pin", "human", "ann"),
    ]
    assert [(p.agent, p.model_version, p.input) for p in predictions] == [
        ("intent", "imported", {"text": "where is my card"}),
        ("intent", "imported", {"text": "change my pin"}),
    ]
    assert predictions[0].label_set == ["card_arrival", "change_pin"]
    assert enqueued == 0


def test_an_imported_label_outside_the_label_set_stores_nothing(database: Database) -> None:
    with pytest.raises(InvalidLabelError), database.transaction() as session:
        import_labels(session, "intent", [("hi", "greet")], author="ann", label_set=["bye"])
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(orm.Prediction)) == 0
