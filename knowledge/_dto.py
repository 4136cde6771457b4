"""Plain data that crosses package boundaries: what goes into the store and what comes out.

``...In`` models are what callers build; they validate everything that can be checked without
the database (lengths, ranges, the shape of a probability vector, a sha256), so a store
function only has to check what needs a query. The other models are what store functions
return: frozen, built from rows (``from_attributes``), never live ORM objects.

Name-like fields (agents, labels, versions, authors...) are limited to the columns' 200
characters here, so SQLite and PostgreSQL reject the same input the same way.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "AliasMove",
    "AuditEntry",
    "Dataset",
    "DatasetIn",
    "Fact",
    "FactIn",
    "Feedback",
    "FeedbackIn",
    "FeedbackSource",
    "ModelStatus",
    "ModelVersion",
    "ModelVersionIn",
    "Prediction",
    "PredictionIn",
    "ReviewItem",
    "Strategy",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

FeedbackSource = Literal["human", "outcome", "rule"]
FeedbackStatus = Literal["new", "used", "rejected"]
ModelStatus = Literal["candidate", "serving", "retired", "failed"]
Strategy = Literal["least_confidence", "margin", "entropy"]

# A softmax in float32 sums to 1 within ~1e-6; 1e-3 also accepts rounded vectors but still
# catches logits and unnormalised scores, which would make every uncertainty meaningless.
SUM_TOLERANCE = 1e-3


class _In(BaseModel):
    """Caller-built input: immutable, unknown fields are an error (they are typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    """Store output: immutable, built from rows."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


def _dump_models(value: Any) -> Any:
    """Accept pydantic models where JSON is expected (agents' typed inputs and outputs)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class PredictionIn(_In):
    """One prediction to record.

    Attributes:
        agent: The agent that predicted.
        model_version: The model version that served the prediction.
        input: What the agent saw (JSON, or a pydantic model, stored as its JSON dump).
        output: What the agent returned (same).
        label: The predicted label, for classifiers; must be in ``label_set`` when both given.
        confidence: The model's confidence in ``label``, in [0, 1].
        probabilities: The full probability vector, aligned with ``label_set``; what the review
            queue ranks by. It sums to 1 unless ``multi_label``.
        label_set: Every label the model can predict, in the model's order.
        multi_label: ``probabilities`` are independent per-label probabilities (a sigmoid
            each, as a multi-label classifier gives), not one distribution.
        run_id: The run the prediction was made in, if any.
        step: The step of that run.
    """

    agent: Name
    model_version: Name
    input: JsonValue
    output: JsonValue
    label: Name | None = None
    confidence: Probability | None = None
    probabilities: list[Probability] | None = None
    label_set: list[Name] | None = None
    multi_label: bool = False
    run_id: Annotated[str, StringConstraints(max_length=32)] | None = None
    step: Name | None = None

    @field_validator("input", "output", mode="before")
    @classmethod
    def _dump(cls, value: Any) -> Any:
        return _dump_models(value)

    @model_validator(mode="after")
    def _labels_agree(self) -> PredictionIn:
        labels = self.label_set
        if labels is not None and len(set(labels)) != len(labels):
            raise ValueError(f"label_set has repeated labels: {labels}; each label once.")
        if self.probabilities is not None:
            if labels is None or len(labels) != len(self.probabilities):
                raise ValueError(
                    f"probabilities has {len(self.probabilities)} values but label_set has "
                    f"{'none' if labels is None else len(labels)}: pass the label_set the "
                    "vector is aligned with."
                )
            total = math.fsum(self.probabilities)
            if not self.multi_label and abs(total - 1.0) > SUM_TOLERANCE:
                raise ValueError(
                    f"probabilities sum to {total:.6f}, not 1: pass the softmax of the "
                    "model's scores, not the logits (or multi_label=True for independent "
                    "per-label probabilities)."
                )
        if self.label is not None and labels is not None and self.label not in labels:
            raise ValueError(f"label '{self.label}' is not in label_set {labels}.")
        return self


class Prediction(_Out):
    """A recorded prediction (see ``PredictionIn`` for the fields)."""

    id: int
    agent: str
    model_version: str
    input: Any
    output: Any
    label: str | None
    confidence: float | None
    probabilities: list[float] | None
    label_set: list[str] | None
    multi_label: bool
    run_id: str | None
    step: str | None
    created_at: float


class FeedbackIn(_In):
    """A label, correction or observed outcome for one prediction.

    Attributes:
        prediction_id: The prediction it is about.
        label: The right label; must be in the prediction's label set.
        correction: A corrected output (JSON) where a label is not enough (entities...).
        source: ``human`` (a reviewer), ``outcome`` (what happened later) or ``rule``.
        author: Who or what gave it; one feedback per prediction, source and author.
        shown: What the reviewer was shown when labelling (to audit and debias labels).
    """

    prediction_id: int
    label: Name | None = None
    correction: JsonValue = None
    source: FeedbackSource
    author: Name
    shown: JsonValue = None

    @field_validator("correction", "shown", mode="before")
    @classmethod
    def _dump(cls, value: Any) -> Any:
        return _dump_models(value)

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackIn:
        if self.label is None and self.correction is None:
            raise ValueError(
                f"feedback for prediction {self.prediction_id} has neither a label nor a "
                "correction: give at least one."
            )
        return self


class Feedback(_Out):
    """Stored feedback (see ``FeedbackIn``); ``status`` is new, used or rejected."""

    id: int
    prediction_id: int
    label: str | None
    correction: Any
    source: FeedbackSource
    author: str
    status: FeedbackStatus
    shown: Any
    created_at: float


class ReviewItem(_Out):
    """A prediction in the review queue, with the prediction itself for the reviewer.

    Attributes:
        priority: How uncertain the model was, in [0, 1]; higher is reviewed first.
        strategy: The uncertainty measure ``priority`` was computed with.
        status: ``open``, ``done`` or ``skipped``.
    """

    id: int
    prediction_id: int
    agent: str
    priority: float
    strategy: Strategy
    status: Literal["open", "done", "skipped"]
    created_at: float
    prediction: Prediction


class FactIn(_In):
    """A statement (subject, relation, object) and where it came from.

    Attributes:
        provenance: Where the fact came from (a document id, a URL, a run...); required, so
            every fact can be traced and retracted.
        confidence: How sure the source is, in [0, 1].
    """

    subject: LongText
    relation: Name
    object: LongText
    provenance: Annotated[dict[str, JsonValue], Field(min_length=1)]
    confidence: Probability | None = None


class Fact(_Out):
    """A stored fact (see ``FactIn``)."""

    id: int
    subject: str
    relation: str
    object: str
    provenance: dict[str, Any]
    confidence: float | None
    created_at: float


class ModelVersionIn(_In):
    """A trained model artifact to register.

    Attributes:
        version: The version name, unique per agent.
        artifact_path: Where the weights are (a directory of safetensors files).
        sha256: Checksum of the artifact, 64 hex digits; agents verify it when loading.
        metrics: Evaluation results (the promotion gate compares them).
        dataset_id: The dataset version it was trained on.
        status: candidate, serving, retired or failed.
    """

    agent: Name
    version: Name
    artifact_path: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    dataset_id: int | None = None
    status: ModelStatus = "candidate"

    @field_validator("sha256", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class ModelVersion(_Out):
    """A registered model version (see ``ModelVersionIn``)."""

    id: int
    agent: str
    version: str
    status: ModelStatus
    metrics: dict[str, Any]
    artifact_path: str
    sha256: str
    dataset_id: int | None
    created_at: float


class AliasMove(_Out):
    """One move of an alias: from ``previous_version`` (None for the first) to ``version``."""

    id: int
    agent: str
    alias: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: float


class DatasetIn(_In):
    """Labelled examples to snapshot as a dataset version.

    Attributes:
        examples: The examples (JSON objects); their canonical JSON is hashed, so the same
            examples in any order give the same version.
        label_set: The labels, in the order a model built from the dataset uses.
        meta: Anything else to keep with the version (where the examples are stored, the
            feedback ids they came from...); not part of the hash.
    """

    agent: Name
    examples: Annotated[list[dict[str, JsonValue]], Field(min_length=1)]
    label_set: list[Name]
    meta: dict[str, JsonValue] = Field(default_factory=dict)


class Dataset(_Out):
    """A dataset version: ``version`` counts up per agent; ``size`` is the number of examples."""

    id: int
    agent: str
    version: int
    content_hash: str
    size: int
    label_set: list[str]
    meta: dict[str, Any]
    created_at: float


class AuditEntry(_Out):
    """Who did what to which entity, when (epoch seconds)."""

    id: int
    at: float
    actor: str
    action: str
    entity: str
    entity_id: str | None
    details: dict[str, Any]
