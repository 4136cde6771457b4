"""taskloom's knowledge base: what agents saw, predicted and did, and what people said.

- ``Database``: an embedded SQLite file (the default) or PostgreSQL, migrated by the
  Alembic migrations shipped in ``knowledge/migrations``;
- run records and the ``RunStore`` interface: ``MemoryRunStore`` (default) and the durable
  ``SqlRunStore``; ``run_once`` and friends for exactly-once side effects; ``prune``;
- predictions, feedback (validated), the review queue ordered by uncertainty, facts, dataset
  versions, model versions with alias history, and the audit log;
- API keys of the HTTP service (``create_api_key``, ``authenticate``; roles ``ROLES``);
- documents: ``ingest_path`` / ``add_document`` (``reembed_chunks`` after a model change)
  and hybrid full-text + vector ``search`` through an ``Embedder``;
- ``Redactor``: card numbers, IBANs, emails and phone numbers are redacted before any text is
  stored.

Store functions take the session first and leave the commit to the caller; pydantic DTOs,
never ORM rows, cross package boundaries. Importing this package never imports torch.
"""

from knowledge._audit import audit, audit_log
from knowledge._datasets import dataset_hash, get_dataset, snapshot_dataset
from knowledge._db import Database
from knowledge._dto import (
    AliasMove,
    AuditEntry,
    Dataset,
    DatasetIn,
    Fact,
    FactIn,
    Feedback,
    FeedbackIn,
    ModelVersion,
    ModelVersionIn,
    Prediction,
    PredictionIn,
    ReviewItem,
)
from knowledge._embed import Embedder, HashEmbedder, MiniLMEmbedder
from knowledge._errors import (
    DatabaseOpenError,
    DuplicateFeedbackError,
    DuplicateModelVersionError,
    EmbedderError,
    FeedbackError,
    IdempotencyError,
    IngestError,
    InvalidLabelError,
    KnowledgeError,
    ModelRegistryError,
    ReviewItemNotFoundError,
    RollbackError,
    RunConflictError,
    RunNotFoundError,
    SchemaError,
    SearchError,
    TaskloomError,
    UnknownApiKeyError,
    UnknownModelVersionError,
    UnknownPredictionError,
)
from knowledge._facts import add_fact, add_facts, find_facts
from knowledge._feedback import feedback_for, import_labels, submit_feedback, submit_feedback_many
from knowledge._idempotency import Claim, claim_key, remember_result, run_once
from knowledge._ingest import (
    IngestReport,
    add_document,
    chunk_embedders,
    ingest_path,
    reembed_chunks,
)
from knowledge._jobs import (
    FinetuneJob,
    UnknownJobError,
    finish_job,
    get_job,
    list_jobs,
    new_labels_since_last_job,
    start_job,
    update_job,
)
from knowledge._keys import (
    ROLES,
    ApiKey,
    Role,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    role_allows,
)
from knowledge._models_registry import (
    alias_history,
    get_alias,
    get_model_version,
    model_agents,
    model_versions,
    register_model_version,
    rollback,
    serving_version,
    set_alias,
)
from knowledge._predictions import (
    existing_runs,
    get_prediction,
    record_prediction,
    record_predictions,
)
from knowledge._records import (
    RouteDecision,
    RunRecord,
    RunStatus,
    StepFailure,
    StepRecord,
    StepStatus,
)
from knowledge._redact import DEFAULT_REDACTOR, Redactor
from knowledge._retention import PruneReport, prune
from knowledge._review import (
    enqueue_uncertain,
    labelling_budget,
    mark_done,
    review_counts,
    review_queue,
    uncertainty,
)
from knowledge._runstore import MemoryRunStore, RunStore
from knowledge._search import SearchHit, search
from knowledge._sqlstore import SqlRunStore

__all__ = [
    "DEFAULT_REDACTOR",
    "ROLES",
    "AliasMove",
    "ApiKey",
    "AuditEntry",
    "Claim",
    "Database",
    "DatabaseOpenError",
    "Dataset",
    "DatasetIn",
    "DuplicateFeedbackError",
    "DuplicateModelVersionError",
    "Embedder",
    "EmbedderError",
    "Fact",
    "FactIn",
    "Feedback",
    "FeedbackError",
    "FeedbackIn",
    "FinetuneJob",
    "HashEmbedder",
    "IdempotencyError",
    "IngestError",
    "IngestReport",
    "InvalidLabelError",
    "KnowledgeError",
    "MemoryRunStore",
    "MiniLMEmbedder",
    "ModelRegistryError",
    "ModelVersion",
    "ModelVersionIn",
    "Prediction",
    "PredictionIn",
    "PruneReport",
    "Redactor",
    "ReviewItem",
    "ReviewItemNotFoundError",
    "Role",
    "RollbackError",
    "RouteDecision",
    "RunConflictError",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SchemaError",
    "SearchError",
    "SearchHit",
    "SqlRunStore",
    "StepFailure",
    "StepRecord",
    "StepStatus",
    "TaskloomError",
    "UnknownApiKeyError",
    "UnknownJobError",
    "UnknownModelVersionError",
    "UnknownPredictionError",
    "add_document",
    "add_fact",
    "add_facts",
    "alias_history",
    "audit",
    "audit_log",
    "authenticate",
    "chunk_embedders",
    "claim_key",
    "create_api_key",
    "dataset_hash",
    "enqueue_uncertain",
    "existing_runs",
    "feedback_for",
    "find_facts",
    "finish_job",
    "get_alias",
    "get_dataset",
    "get_job",
    "get_model_version",
    "get_prediction",
    "import_labels",
    "ingest_path",
    "labelling_budget",
    "list_api_keys",
    "list_jobs",
    "mark_done",
    "model_agents",
    "model_versions",
    "new_labels_since_last_job",
    "prune",
    "record_prediction",
    "record_predictions",
    "reembed_chunks",
    "register_model_version",
    "remember_result",
    "review_counts",
    "review_queue",
    "revoke_api_key",
    "role_allows",
    "rollback",
    "run_once",
    "search",
    "serving_version",
    "set_alias",
    "snapshot_dataset",
    "start_job",
    "submit_feedback",
    "submit_feedback_many",
    "uncertainty",
    "update_job",
]
