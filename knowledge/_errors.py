"""The root of taskloom's exception tree.

The root lives here because ``knowledge`` is the one package every other package may import.
Each branch is defined in the package it belongs to and re-exported from it::

    TaskloomError                       knowledge
    ├── KnowledgeError                  knowledge
    │   ├── RunNotFoundError
    │   ├── DatabaseOpenError           bad URL, corrupt SQLite file, unreachable server
    │   ├── SchemaError                 the schema is missing, behind or newer than this taskloom
    │   ├── RunConflictError            two engines recorded the same step of one run
    │   ├── IdempotencyError            an idempotency key was refused (bad key, never claimed)
    │   ├── EmbedderError               an embedding model is missing or cannot be loaded
    │   ├── IngestError                 a file to ingest is missing, unsupported or malformed
    │   ├── SearchError                 a search request is invalid (filter, k, alpha)
    │   ├── FeedbackError               feedback was rejected; nothing was stored
    │   │   ├── UnknownPredictionError  no prediction has that id
    │   │   ├── InvalidLabelError       the label is not in the prediction's label set
    │   │   └── DuplicateFeedbackError  the same prediction, source and author again
    │   ├── ReviewItemNotFoundError     no review item has that id
    │   ├── UnknownApiKeyError          no API key has that id
    │   └── ModelRegistryError          a model version or alias operation was refused
    │       ├── UnknownModelVersionError    no such version of the agent
    │       ├── DuplicateModelVersionError  the agent already has that version
    │       └── RollbackError           an alias has no earlier version to go back to
    ├── AgentError                      agents
    │   ├── AgentContractError          an agent class or its output breaks the contract
    │   ├── AgentNotFoundError          an unknown agent name
    │   ├── PluginError                 a plugin failed to load or validate
    │   │   └── ImportNotAllowedError   an import path outside the allowlist
    │   ├── ModelArtifactError          a model artifact is missing, tampered with or pickled
    │   ├── RetrieverIndexError         no document chunk is embedded by the serving model
    │   ├── ActionError                 an action could not be registered, chosen or run
    │   │   ├── ActionDefinitionError   a function cannot be an action (signature, result)
    │   │   └── ActionFailedError       an action raised; its transaction was rolled back
    │   └── StepCancelledError          an agent stopped because the engine cancelled it
    ├── WorkflowError                   workflow
    │   ├── WorkflowCompileError        a workflow definition has problems (all listed)
    │   ├── WorkflowFileError           a saved workflow file is malformed
    │   ├── RuleError                   a decision rule or input mapping is malformed
    │   ├── TaskValidationError         a task does not match the workflow's task type
    │   └── RunError                    a run failed
    │       ├── StepFailedError         an agent raised and retries were exhausted
    │       ├── StepTimeoutError        an attempt took longer than the step's timeout
    │       ├── NoRouteError            no route of a step matched
    │       └── LoopBoundError          a loop hit its visit bound with no way out
    └── FinetuneError                   finetune
        ├── TrainConfigError            unknown task, tier or metric; a setting out of range
        ├── TrainingDataError           examples cannot train a model (empty, unseen, rare)
        ├── FeedbackDataError           feedback cannot make a dataset (before any training)
        │   ├── EmptyDatasetError       the agent has no usable labelled feedback
        │   ├── TooFewExamplesError     some labels have too few examples to split
        │   ├── LabelOutsideSetError    labels outside the allowed label set
        │   └── HoldoutOverlapError     training data shares texts with the frozen holdout
        └── GateError                   a gate config or evaluation report is unusable

Exceptions carry context (step, agent, run id) as attributes and are raised ``from`` their
cause, so the original traceback is never lost.
"""

from __future__ import annotations

import difflib

__all__ = [
    "DatabaseOpenError",
    "DuplicateFeedbackError",
    "DuplicateModelVersionError",
    "EmbedderError",
    "FeedbackError",
    "IdempotencyError",
    "IngestError",
    "InvalidLabelError",
    "KnowledgeError",
    "ModelRegistryError",
    "ReviewItemNotFoundError",
    "RollbackError",
    "RunConflictError",
    "RunNotFoundError",
    "SchemaError",
    "SearchError",
    "TaskloomError",
    "UnknownApiKeyError",
    "UnknownModelVersionError",
    "UnknownPredictionError",
]


class TaskloomError(Exception):
    """Base class of every error taskloom raises on purpose."""


class KnowledgeError(TaskloomError):
    """The knowledge base could not store or find something."""


class RunNotFoundError(KnowledgeError, LookupError):
    """A run id is not in the store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run '{run_id}' is not in the run store. Check the id, or the store.")
        self.run_id = run_id


class RunConflictError(KnowledgeError):
    """A run already has a step record with this sequence number.

    Two engines are running or resuming the same run; the second one's record is refused so
    the run's history stays one line of steps.
    """

    def __init__(self, run_id: str, seq: int, step: str) -> None:
        super().__init__(
            f"Run '{run_id}' already has a checkpoint #{seq}, so step '{step}' was not "
            "recorded: another engine is running or resuming this run. Resume each run from "
            "one process only (e.g. one `resume_all` per workflow after a restart)."
        )
        self.run_id = run_id
        self.seq = seq
        self.step = step


class EmbedderError(KnowledgeError):
    """An embedding model is missing or cannot be loaded."""


class IngestError(KnowledgeError, ValueError):
    """A file or document to ingest is missing, of an unsupported kind, or malformed."""


class SearchError(KnowledgeError, ValueError):
    """A search request is invalid: a bad filter, ``k`` or ``alpha``."""


class IdempotencyError(KnowledgeError):
    """An idempotency key cannot be used as asked (see ``knowledge.run_once``)."""


def _at(index: int | None) -> str:
    """Where a problem is in a batch, as a message prefix."""
    return "" if index is None else f"item {index}: "


class FeedbackError(KnowledgeError, ValueError):
    """Feedback was rejected; nothing was stored.

    Attributes:
        prediction_id: The prediction the feedback was about, if it is one item's problem.
        index: The item's position in a batch (``submit_feedback_many``), else None.
        problems: Every rejected item of the batch, this one first; ``(self,)`` for one item.
    """

    def __init__(
        self, message: str, *, prediction_id: int | None = None, index: int | None = None
    ) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id
        self.index = index
        self.problems: tuple[FeedbackError, ...] = (self,)


class UnknownPredictionError(FeedbackError, LookupError):
    """No prediction has the id the feedback (or a lookup) names."""

    def __init__(self, prediction_id: int, *, index: int | None = None) -> None:
        super().__init__(
            f"{_at(index)}There is no prediction {prediction_id}. Feedback attaches to a "
            "recorded prediction: check the id, or record the prediction first.",
            prediction_id=prediction_id,
            index=index,
        )


class InvalidLabelError(FeedbackError):
    """The label is not one the prediction's model can predict.

    Attributes:
        label: The rejected label.
        valid_labels: The prediction's label set.
    """

    def __init__(
        self,
        prediction_id: int,
        *,
        agent: str,
        label: str,
        valid_labels: list[str],
        index: int | None = None,
    ) -> None:
        close = difflib.get_close_matches(label, valid_labels, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(
            f"{_at(index)}Label '{label}' for prediction {prediction_id} is not in the label "
            f"set of agent '{agent}'.{hint} Valid labels: {', '.join(valid_labels)}.",
            prediction_id=prediction_id,
            index=index,
        )
        self.label = label
        self.valid_labels = valid_labels


class DuplicateFeedbackError(FeedbackError):
    """The prediction already has feedback from this source and author."""

    def __init__(
        self, prediction_id: int, *, source: str, author: str, index: int | None = None
    ) -> None:
        super().__init__(
            f"{_at(index)}Author '{author}' already gave {source} feedback on prediction "
            f"{prediction_id}; there is one per prediction, source and author. Keep the "
            "first one, or send this one under another author or source.",
            prediction_id=prediction_id,
            index=index,
        )
        self.source = source
        self.author = author


class ReviewItemNotFoundError(KnowledgeError, LookupError):
    """No review item has the id given."""

    def __init__(self, item_id: int) -> None:
        super().__init__(
            f"There is no review item {item_id}. Take ids from review_queue(); items are "
            "removed only with their prediction."
        )
        self.item_id = item_id


class UnknownApiKeyError(KnowledgeError, LookupError):
    """No API key has the id given."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"There is no API key '{key_id}'. Key ids are the part after 'tlk_' in a token; "
            "list them with 'taskloom keys list'."
        )
        self.key_id = key_id


class ModelRegistryError(KnowledgeError):
    """A model version or alias operation was refused; nothing was changed."""


class UnknownModelVersionError(ModelRegistryError, LookupError):
    """The agent has no model version of that name."""

    def __init__(self, agent: str, version: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none yet (register_model_version first)"
        super().__init__(
            f"Agent '{agent}' has no model version '{version}'. Registered versions: {listed}."
        )
        self.agent = agent
        self.version = version


class DuplicateModelVersionError(ModelRegistryError):
    """The agent already has a model version of that name."""

    def __init__(self, agent: str, version: str) -> None:
        super().__init__(
            f"Agent '{agent}' already has a model version '{version}'. Versions are "
            "immutable: register the new artifact under a new version name."
        )
        self.agent = agent
        self.version = version


class RollbackError(ModelRegistryError):
    """An alias has no earlier version to go back to."""

    def __init__(self, agent: str, alias: str, why: str) -> None:
        super().__init__(
            f"Cannot roll back alias '{alias}' of agent '{agent}': {why}. Use set_alias to "
            "point it at a version explicitly."
        )
        self.agent = agent
        self.alias = alias


class DatabaseOpenError(KnowledgeError):
    """A database cannot be opened: an unsupported URL, a file that is not SQLite, no server."""


class SchemaError(KnowledgeError):
    """The database schema is missing, behind, or newer than this taskloom knows.

    The message names the command to run (``taskloom db upgrade --url ...``) and both
    revisions: the database's ``current`` and this taskloom's ``head``.
    """

    def __init__(
        self, message: str, *, current: str | None = None, head: str | None = None
    ) -> None:
        super().__init__(message)
        self.current = current
        self.head = head
