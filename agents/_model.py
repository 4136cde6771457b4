"""The base of transformer-backed agents: artifact loading, batching and hot-swap.

A ``ModelAgent`` serves one model artifact (see ``agents._artifact``) at a time:

- ``__init__`` only records where the artifact is; ``warm_up()`` loads it once (later calls
  do nothing) after checking its sha256 against ``taskloom.json`` and, when given, against
  the ``sha256`` the agent was built with (a knowledge-base ``ModelVersion``'s checksum).
- ``run`` is ``run_batch`` of one, so single and batched calls share one core; a subclass
  implements ``_predict(loaded, inputs, ctxs)``.
- ``swap(new_dir)`` loads and checks a new artifact completely, then replaces the served
  ``LoadedModel`` in one assignment under a lock. A batch takes its ``LoadedModel`` once
  when it starts, so batches in flight finish on the model they started with.

Inference is blocking (``blocking = True``): the engine runs it in a worker thread, and
several threads may run batches on one loaded model at once (inference only reads weights).
"""

from __future__ import annotations

import dataclasses
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agents._artifact import ArtifactMeta, load_pooled_classifier, read_artifact
from agents._contract import Agent, RunContext
from agents._errors import AgentError, ModelArtifactError
from knowledge import (
    Database,
    ModelRegistryError,
    Prediction,
    PredictionIn,
    existing_runs,
    get_alias,
    record_predictions,
)

if TYPE_CHECKING:
    from knowledge import ModelVersion

__all__ = ["Encoded", "LoadedModel", "ModelAgent", "length_sorted_batches", "pad_batch"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
AgentT = TypeVar("AgentT", bound="ModelAgent[Any, Any]")


@dataclass(frozen=True)
class LoadedModel:
    """One loaded artifact: what a batch runs on, replaced as a whole by ``swap``.

    Attributes:
        model: The torch module (eval mode).
        tokenizer: Its tokenizer.
        meta: The artifact's ``taskloom.json``.
        path: The artifact directory.
        version: The knowledge-base model version name it was loaded as ("" when it was
            loaded from a directory alone).
        tokenizer_lock: Held while tokenizing: a Hugging Face tokenizer stores its
            truncation settings on itself for each call, so concurrent calls with different
            settings would tokenize with each other's.
    """

    model: Any
    tokenizer: Any
    meta: ArtifactMeta
    path: str
    tokenizer_lock: threading.Lock = field(
        default_factory=threading.Lock, compare=False, repr=False
    )
    version: str = ""

    @property
    def sha256(self) -> str:
        """The checksum of the weights (the model version's identity)."""
        return self.meta.sha256

    @property
    def model_version(self) -> str:
        """What predictions record as their model version: the registered version name, or
        ``sha256:`` and the checksum's first 12 digits for an unregistered artifact."""
        return self.version or f"sha256:{self.sha256[:12]}"


@dataclass(frozen=True)
class Encoded:
    """Token ids of some texts, unpadded, and which texts were cut to ``max_length``."""

    ids: list[list[int]]
    truncated: list[bool]


class ModelAgent(Agent[InT, OutT]):
    """Base class of agents that serve a model artifact; see the module docstring.

    Args:
        model_dir: The artifact directory (written by ``save_artifact``).
        sha256: The checksum the artifact must have, e.g. from the knowledge base's model
            version row; None checks only against the artifact's own ``taskloom.json``.
        max_length: Longest input in tokens; None takes the artifact's setting.
        batch_size: Most inputs per forward pass (larger batches are split).
        device: The torch device to run on.
    """

    blocking = True

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        sha256: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1 or (max_length is not None and max_length < 2):  # noqa: PLR2004
            raise ValueError(
                f"{type(self).__name__} needs batch_size >= 1 and max_length >= 2 "
                f"([CLS] and [SEP]), got {batch_size} and {max_length}"
            )
        self.model_dir = model_dir
        self.sha256 = sha256
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        # Not parameters: set by from_model_version / from_registry, carried by swap.
        self.model_version = ""
        self.registry_alias: tuple[str, str] | None = None
        # The registry's agent the served version belongs to: predictions are recorded
        # under it, so their feedback reaches that agent's fine-tuning rounds.
        self.registry_agent = ""
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_model_version(cls: type[AgentT], version: ModelVersion, **params: Any) -> AgentT:
        """Build the agent serving a registered model version (its path and checksum)."""
        agent = cls(model_dir=version.artifact_path, sha256=version.sha256, **params)
        agent.model_version = version.version
        agent.registry_agent = version.agent
        return agent

    @classmethod
    def from_registry(
        cls: type[AgentT],
        database: Database,
        agent: str | None = None,
        alias: str = "serving",
        **params: Any,
    ) -> AgentT:
        """Build the agent serving the model version an alias points at.

        The weights are checked against the version row's sha256 when they load (on
        ``warm_up`` or the first call), so a replaced or tampered artifact is refused.

        Args:
            database: The knowledge base holding the model registry.
            agent: The agent name the versions are registered under; default: ``cls.name``.
            alias: The alias to follow (``serving``, ``candidate``...).
            **params: The agent's other parameters (``batch_size``, ``device``...).

        Returns:
            The agent; ``refresh_from_registry()`` later follows the alias if it moves.

        Raises:
            ModelRegistryError: The alias was never set for that agent.
        """
        name = agent if agent is not None else cls.name
        built = cls.from_model_version(_alias_version(database, name, alias), **params)
        built.registry_alias = (name, alias)
        return built

    def refresh_from_registry(self, database: Database) -> bool:
        """Serve the version the registry alias points at now, if it moved.

        The new version is loaded and checked before it serves (see ``swap``); batches in
        flight finish on the old one.

        Args:
            database: The knowledge base holding the model registry.

        Returns:
            True if the agent swapped to another version, False if it serves it already.

        Raises:
            ModelRegistryError: The alias is no longer set.
            ValueError: The agent was not built with ``from_registry``.
            ModelArtifactError: The new version's artifact is missing or fails its checksum
                (the old version keeps serving).
        """
        if self.registry_alias is None:
            raise ValueError(
                f"{type(self).__name__} follows no registry alias: build it with "
                f"{type(self).__name__}.from_registry(database, agent, alias) to refresh it."
            )
        version = _alias_version(database, *self.registry_alias)
        if (version.version, version.sha256) == (self.model_version, self.sha256):
            return False
        self.swap(version.artifact_path, sha256=version.sha256, model_version=version.version)
        return True

    @property
    def loaded(self) -> LoadedModel:
        """The model serving now (loaded on first use)."""
        current = self._loaded
        if current is None:
            self.warm_up()
            current = self._loaded
            assert current is not None  # warm_up either loads or raises
        return current

    def warm_up(self) -> None:
        """Load and verify the artifact; later calls do nothing.

        Raises:
            ModelArtifactError: No ``model_dir``, or the artifact is missing, incomplete,
                pickled or fails its checksum.
        """
        if self._loaded is not None:
            return
        with self._lock:  # concurrent first calls must load once
            if self._loaded is None:
                loaded = self._load(self.model_dir, self.sha256)
                self._loaded = dataclasses.replace(loaded, version=self.model_version)

    def swap(
        self, model_dir: str | Path, *, sha256: str | None = None, model_version: str = ""
    ) -> LoadedModel:
        """Serve another artifact from now on, without stopping.

        The new artifact is loaded and verified first; if that fails, the old one keeps
        serving and the error is raised. Batches already running finish on the old model.

        Args:
            model_dir: The new artifact directory.
            sha256: The checksum it must have (e.g. the promoted ``ModelVersion``'s).
            model_version: Its registered version name, which predictions record ("" for an
                unregistered artifact: they record its checksum prefix).

        Returns:
            The newly serving model.
        """
        fresh = self._load(str(model_dir), sha256)
        fresh = dataclasses.replace(fresh, version=model_version)
        with self._lock:
            self._loaded = fresh
            self.model_dir, self.sha256 = str(model_dir), sha256
            self.model_version = model_version
            # A workflow saved from now on names the artifact actually served.
            self._init_params.update(model_dir=self.model_dir, sha256=sha256)
        return fresh

    def _load(self, model_dir: str | None, sha256: str | None) -> LoadedModel:
        """Read, verify and build one artifact; subclasses with other heads override it."""
        if model_dir is None:
            raise ModelArtifactError(
                "",
                f"{type(self).__name__} has no model_dir: pass the directory of an artifact "
                "written by agents.save_artifact (or use from_model_version).",
            )
        meta, weights = read_artifact(model_dir, sha256)
        model, tokenizer = load_pooled_classifier(model_dir, meta, weights)
        return LoadedModel(model.to(self.device), tokenizer, meta, str(model_dir))

    def run(self, input: InT, ctx: RunContext) -> OutT:
        """Handle one input: a batch of one."""
        return self.run_batch([input], [ctx])[0]

    def run_batch(self, inputs: Sequence[InT], ctxs: Sequence[RunContext]) -> list[OutT]:
        """Handle several inputs on the model serving when the call starts."""
        if len(inputs) != len(ctxs):
            raise ValueError(f"run_batch got {len(inputs)} inputs but {len(ctxs)} contexts")
        if not inputs:
            return []
        loaded = self.loaded
        outputs = self._predict(loaded, inputs, ctxs)
        return self._record(loaded, inputs, outputs, ctxs)

    def _prediction(
        self, loaded: LoadedModel, input: InT, output: OutT, ctx: RunContext
    ) -> PredictionIn:
        """The prediction row of one answer (validated)."""
        return PredictionIn(
            agent=self.registry_agent or self.name,
            model_version=loaded.model_version,
            input=input,
            output=output,
            run_id=ctx.run_id,
            step=ctx.step,
            **self._prediction_fields(loaded, output),
        )

    def _prediction_fields(self, loaded: LoadedModel, output: OutT) -> dict[str, Any]:
        """Extra ``PredictionIn`` fields: classifiers add label, confidence and vector."""
        return {}

    def _record(
        self,
        loaded: LoadedModel,
        inputs: Sequence[InT],
        outputs: list[OutT],
        ctxs: Sequence[RunContext],
    ) -> list[OutT]:
        """Record the predictions of calls whose ``ctx.knowledge`` is a ``Database``.

        One transaction per database per batch. If it fails, the batch fails: an answer
        whose row is missing could never receive feedback nor be audited, and the engine's
        retry and error routes handle a failed step, whereas a silently unrecorded answer
        would be found only when the feedback is refused.

        Raises:
            AgentError: Recording failed; the cause is chained.
        """
        by_database: dict[int, tuple[Database, list[int]]] = {}
        for row, ctx in enumerate(ctxs):
            if isinstance(ctx.knowledge, Database):
                by_database.setdefault(id(ctx.knowledge), (ctx.knowledge, []))[1].append(row)
        outputs = list(outputs)
        has_id = "prediction_id" in type(outputs[0]).model_fields
        for database, rows in by_database.values():
            try:
                predictions = [
                    self._prediction(loaded, inputs[i], outputs[i], ctxs[i]) for i in rows
                ]
                stored = _store(database, predictions)
            except Exception as exc:
                raise AgentError(
                    f"{type(self).__name__} '{self.name}' answered {len(rows)} input(s) of "
                    f"run(s) {sorted({ctxs[i].run_id for i in rows})} but could not record "
                    f"them as predictions in the {database.dialect} knowledge base: "
                    f"{type(exc).__name__}: {exc}. "
                    "The answers are dropped because feedback needs their rows; fix the "
                    "database (reachable, migrated: see Database.check_schema) and retry."
                ) from exc
            if has_id:
                for i, prediction in zip(rows, stored, strict=True):
                    outputs[i] = outputs[i].model_copy(update={"prediction_id": prediction.id})
        return outputs

    @abstractmethod
    def _predict(
        self, loaded: LoadedModel, inputs: Sequence[InT], ctxs: Sequence[RunContext]
    ) -> list[OutT]:
        """One output per input, computed with ``loaded`` only."""

    def _max_length(self, loaded: LoadedModel) -> int:
        return self.max_length if self.max_length is not None else loaded.meta.max_length

    def _encode(self, loaded: LoadedModel, texts: Sequence[str]) -> Encoded:
        """Tokenize without padding, truncating to ``max_length`` and noting who was cut."""
        limit = self._max_length(loaded)
        tokenize = loaded.tokenizer
        with loaded.tokenizer_lock:
            # One token more than allowed tells, for any tokenizer, which texts were cut.
            probe = tokenize(list(texts), truncation=True, max_length=limit + 1)["input_ids"]
            cut = [len(ids) > limit for ids in probe]
            long_rows = [i for i, was_cut in enumerate(cut) if was_cut]
            if long_rows:
                again = tokenize([texts[i] for i in long_rows], truncation=True, max_length=limit)
                for row, ids in zip(long_rows, again["input_ids"], strict=True):
                    probe[row] = ids
        return Encoded([list(ids) for ids in probe], cut)

    def __getstate__(self) -> dict[str, Any]:
        # A copy or a pickle (remote workers) carries the parameters, not the loaded model.
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_loaded"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _store(database: Database, predictions: list[PredictionIn]) -> list[Prediction]:
    """Record predictions in one transaction.

    ``predictions.run_id`` references the ``runs`` table, which holds a run only when the
    engine's run store is this database (``SqlRunStore``); with another store (the default
    ``MemoryRunStore``) the row keeps its step and gets no run id rather than failing.
    """
    with database.transaction() as session:
        known = existing_runs(session, (p.run_id for p in predictions if p.run_id is not None))
        rows = [
            p if p.run_id in known else p.model_copy(update={"run_id": None}) for p in predictions
        ]
        return record_predictions(session, rows)


def _alias_version(database: Database, agent: str, alias: str) -> ModelVersion:
    """The model version ``alias`` of ``agent`` points at; an error says how to set it."""
    with database.session() as session:
        version = get_alias(session, agent, alias)
    if version is None:
        raise ModelRegistryError(
            f"Agent '{agent}' has no '{alias}' alias in the {database.dialect} knowledge base, "
            "so there is no "
            "model version to serve. Register one with knowledge.register_model_version and "
            f"point the alias at it with knowledge.set_alias(session, '{agent}', '{alias}', "
            "version, actor, reason) (or promote a fine-tuned version)."
        )
    return version


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices in batches of similar length, so padding to the longest wastes little."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, device: str) -> tuple[Any, Any]:
    """Pad token ids to the longest row: ``(input_ids, attention_mask)`` tensors."""
    import torch  # noqa: PLC0415 - heavy, lazy

    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return input_ids.to(device), mask.to(device)
