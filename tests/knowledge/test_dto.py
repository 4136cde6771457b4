"""The DTOs reject what the store would reject, before any query, with messages that say why."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from knowledge import (
    DatasetIn,
    FactIn,
    Feedback,
    FeedbackIn,
    ModelVersionIn,
    PredictionIn,
)

LABELS = ["balance", "card_lost", "refund"]


class Query(BaseModel):
    text: str


def prediction(**fields: object) -> PredictionIn:
    values: dict[str, object] = {
        "agent": "intent",
        "model_version": "v1",
        "input": {"text": "where is my refund"},
        "output": {"label": "refund"},
        "label": "refund",
        "probabilities": [0.1, 0.2, 0.7],
        "label_set": LABELS,
    }
    values.update(fields)
    return PredictionIn.model_validate(values)


def test_a_valid_prediction_keeps_its_fields() -> None:
    p = prediction(confidence=0.7, run_id="r" * 32, step="perceive")

    assert (p.label, p.confidence, p.probabilities, p.label_set) == (
        "refund",
        0.7,
        [0.1, 0.2, 0.7],
        LABELS,
    )


def test_pydantic_models_are_stored_as_their_json() -> None:
    p = prediction(input=Query(text="hi"), output=Query(text="there"))
    f = FeedbackIn(prediction_id=1, correction=Query(text="x"), source="rule", author="r")

    assert (p.input, p.output, f.correction) == ({"text": "hi"}, {"text": "there"}, {"text": "x"})


def test_multi_label_vectors_need_not_sum_to_one() -> None:
    assert prediction(probabilities=[0.9, 0.8, 0.1], multi_label=True).multi_label


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"probabilities": [0.5, 0.5]}, "probabilities has 2 values but label_set has 3"),
        ({"label_set": None, "label": None}, "label_set has none"),
        ({"probabilities": [1.0, 2.0, 3.0]}, "less than or equal to 1"),
        ({"probabilities": [0.3, 0.3, 0.3]}, "sum to 0.900000, not 1"),
        ({"probabilities": [0.3, 0.3], "multi_label": True}, "2 values but label_set has 3"),
        ({"probabilities": [0.3, 1.3, 0.3], "multi_label": True}, "less than or equal to 1"),
        ({"label": "fraud"}, "label 'fraud' is not in label_set"),
        ({"label_set": ["a", "a", "b"], "label": "a"}, "repeated labels"),
        ({"confidence": 1.5}, "less than or equal to 1"),
        ({"agent": ""}, "at least 1 character"),
        ({"agent": "x" * 201}, "at most 200 characters"),
        ({"run_id": "r" * 33}, "at most 32 characters"),
        ({"input": {1, 2}}, "input"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_predictions_are_rejected(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        prediction(**fields)


def test_feedback_needs_a_known_source_and_a_label_or_correction() -> None:
    with pytest.raises(ValidationError, match="'human', 'outcome' or 'rule'"):
        FeedbackIn(prediction_id=1, label="refund", source="bot", author="ann")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="neither a label nor a correction"):
        FeedbackIn(prediction_id=1, source="human", author="ann")


def test_dtos_are_frozen() -> None:
    f = FeedbackIn(prediction_id=1, label="refund", source="human", author="ann")

    with pytest.raises(ValidationError, match="frozen"):
        f.label = "balance"  # type: ignore[misc]


def test_stored_feedback_is_built_from_attributes() -> None:
    class Row:
        id = 3
        prediction_id = 1
        label = "refund"
        correction = None
        source = "human"
        author = "ann"
        status = "new"
        shown = "the query text"
        created_at = 1.0

    assert Feedback.model_validate(Row()).shown == "the query text"


def test_facts_need_provenance() -> None:
    with pytest.raises(ValidationError, match="provenance"):
        FactIn(subject="card", relation="has_limit", object="5000")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least 1 item"):
        FactIn(subject="card", relation="has_limit", object="5000", provenance={})


@pytest.mark.parametrize(
    "sha",
    ["a" * 63, "a" * 65, "g" * 64, "", "a" * 32 + " " + "a" * 31],
)
def test_model_versions_need_a_sha256_of_64_hex_digits(sha: str) -> None:
    with pytest.raises(ValidationError, match=r"\^\[0-9a-f\]\{64\}\$"):
        ModelVersionIn(agent="intent", version="v1", artifact_path="/m", sha256=sha)


def test_sha256_is_normalised_to_lowercase() -> None:
    version = ModelVersionIn(agent="intent", version="v1", artifact_path="/m", sha256="AB" * 32)

    assert version.sha256 == "ab" * 32


def test_datasets_need_examples() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        DatasetIn(agent="intent", examples=[], label_set=LABELS)
