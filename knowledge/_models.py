"""The knowledge base's tables: SQLAlchemy 2.0 typed declarative models.

Timestamps are epoch seconds (``float``), as in the engine's records. JSON columns hold
pydantic dumps (``model_dump(mode="json")``). The schema is created and changed only by the
Alembic migrations in ``knowledge/migrations``; these models must match them (a test
compares the two).

    runs ─┬─< steps                  checkpoints, one per executed step, with its route decision
          └─< predictions ─┬─< feedback
                           └── review_items
    documents ─< chunks              text, embeddings, full-text index
    facts                            subject, relation, object, provenance
    datasets ─< model_versions ─< model_aliases (history of alias moves)
    finetune_jobs                    fine-tuning rounds: status, dataset, candidate, result
    api_keys                         service keys: id, name, role, sha256 of the token
    idempotency_keys, audit_log
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Chunk",
    "Dataset",
    "Document",
    "Fact",
    "Feedback",
    "FinetuneJob",
    "IdempotencyKey",
    "ModelAlias",
    "ModelVersion",
    "Prediction",
    "ReviewItem",
    "Run",
    "Step",
]

# Stable constraint names, so migrations can alter and drop them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
# None is stored as SQL NULL, not the JSON text 'null', so IS NULL finds it.
JSON_TYPE = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
ID = 32  # hex ids (runs)
NAME = 200  # agent, step, workflow, label and alias names
KEY_ID = 32  # API key ids (12 hex characters today; room to grow)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON_TYPE,
        list[Any]: JSON_TYPE,
        Any: JSON_TYPE,
    }


class Run(Base):
    """One run of a workflow on one task."""

    __tablename__ = "runs"
    # Runs are listed newest first within a workflow or a status (list_runs, unfinished).
    __table_args__ = (
        Index("ix_runs_workflow_created", "workflow", "created_at"),
        Index("ix_runs_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(NAME))
    task: Mapped[Any]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    finished_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)

    steps: Mapped[list[Step]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Step.seq"
    )


class Step(Base):
    """One executed step (the checkpoint) and the route decision taken after it."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int]
    step: Mapped[str] = mapped_column(String(NAME))
    agent: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(16))
    visit: Mapped[int]
    attempts: Mapped[int]
    input: Mapped[Any | None]
    output: Mapped[Any | None]
    error: Mapped[Any | None]
    started_at: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    decision_kind: Mapped[str] = mapped_column(String(16))
    decision_route: Mapped[int | None]
    decision_targets: Mapped[list[Any]]
    decision_rule: Mapped[str | None] = mapped_column(Text)
    decision_reason: Mapped[str] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="steps")


class Prediction(Base):
    """One prediction of a model-backed agent: what feedback attaches to."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_agent_created", "agent", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    step: Mapped[str | None] = mapped_column(String(NAME))
    agent: Mapped[str] = mapped_column(String(NAME))
    model_version: Mapped[str] = mapped_column(String(NAME))
    input: Mapped[Any]
    output: Mapped[Any]
    label: Mapped[str | None] = mapped_column(String(NAME))
    confidence: Mapped[float | None] = mapped_column(Float)
    # The full probability vector, aligned with label_set (for uncertainty sampling).
    probabilities: Mapped[list[Any] | None]
    label_set: Mapped[list[Any] | None]
    # Independent per-label probabilities (sigmoids) rather than one distribution.
    multi_label: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    """A label, correction or observed outcome for a prediction."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("prediction_id", "source", "author"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(NAME))
    correction: Mapped[Any | None]
    source: Mapped[str] = mapped_column(String(16))  # human | outcome | rule
    author: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(16), index=True)  # new | used | rejected
    shown: Mapped[Any | None]  # what the reviewer was shown when labelling
    created_at: Mapped[float] = mapped_column(Float, index=True)


class ReviewItem(Base):
    """A prediction waiting for a human label (active learning)."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_queue", "agent", "status", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), unique=True
    )
    agent: Mapped[str] = mapped_column(String(NAME))
    priority: Mapped[float] = mapped_column(Float)  # higher: more uncertain, label first
    strategy: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # open | done | skipped
    created_at: Mapped[float] = mapped_column(Float)


class Document(Base):
    """A source document in the knowledge base."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(String(1000))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[float] = mapped_column(Float)

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="Chunk.ordinal"
    )


class Chunk(Base):
    """A searchable piece of a document with its embedding (float32 bytes)."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("document_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedder: Mapped[str | None] = mapped_column(String(NAME))
    meta: Mapped[dict[str, Any]]

    document: Mapped[Document] = relationship(back_populates="chunks")


class Fact(Base):
    """A structured statement: subject, relation, object, and where it came from."""

    __tablename__ = "facts"
    __table_args__ = (Index("ix_facts_subject_relation", "subject", "relation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(1000))
    relation: Mapped[str] = mapped_column(String(NAME))
    object: Mapped[str] = mapped_column(String(1000))
    provenance: Mapped[dict[str, Any]]
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


class Dataset(Base):
    """A versioned snapshot of labelled data for one agent."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("agent", "version"),
        UniqueConstraint("agent", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    label_set: Mapped[list[Any]]
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[float] = mapped_column(Float)


class ModelVersion(Base):
    """A trained model artifact for one agent, with its metrics and checksum."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("agent", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(16))  # candidate | serving | retired | failed
    metrics: Mapped[dict[str, Any]]
    artifact_path: Mapped[str] = mapped_column(String(2000))
    sha256: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)


class ModelAlias(Base):
    """One move of an alias (``serving``...) to a model version; the newest row is current."""

    __tablename__ = "model_aliases"
    __table_args__ = (Index("ix_model_aliases_lookup", "agent", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String(NAME))
    alias: Mapped[str] = mapped_column(String(NAME))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    actor: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class IdempotencyKey(Base):
    """A side effect that happened: its key, and the result to return if asked again."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    step: Mapped[str | None] = mapped_column(String(NAME))
    result: Mapped[Any | None]
    created_at: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    """Who did what to which entity, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(NAME))
    entity: Mapped[str] = mapped_column(String(NAME))
    entity_id: Mapped[str | None] = mapped_column(String(NAME))
    details: Mapped[dict[str, Any]]


class FinetuneJob(Base):
    """One fine-tuning round of an agent, recorded so it can be listed and resumed."""

    __tablename__ = "finetune_jobs"
    __table_args__ = (Index("ix_finetune_jobs_agent", "agent", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String(NAME))
    # queued | running | succeeded | rejected | failed | diverged
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(NAME))
    dataset_version: Mapped[int | None]
    candidate_version: Mapped[str | None] = mapped_column(String(NAME))
    out_dir: Mapped[str] = mapped_column(String(2000))
    config: Mapped[dict[str, Any]]
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]


class ApiKey(Base):
    """A key of the HTTP service; only the SHA-256 of its token is stored, never the token."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(KEY_ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(16))  # viewer | labeler | operator | admin
    token_sha256: Mapped[str] = mapped_column(String(64))  # hex digest of the whole token
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
