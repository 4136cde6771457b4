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

import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agents._artifact import ArtifactMeta, load_pooled_classifier, read_artifact
from agents._contract import Agent, RunContext
from agents._errors import ModelArtifactError

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

    @property
    def sha256(self) -> str:
        """The checksum of the weights (the model version's identity)."""
        return self.meta.sha256


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
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_model_version(cls: type[AgentT], version: ModelVersion, **params: Any) -> AgentT:
        """Build the agent serving a registered model version (its path and checksum)."""
        return cls(model_dir=version.artifact_path, sha256=version.sha256, **params)

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
                self._loaded = self._load(self.model_dir, self.sha256)

    def swap(self, model_dir: str | Path, *, sha256: str | None = None) -> LoadedModel:
        """Serve another artifact from now on, without stopping.

        The new artifact is loaded and verified first; if that fails, the old one keeps
        serving and the error is raised. Batches already running finish on the old model.

        Args:
            model_dir: The new artifact directory.
            sha256: The checksum it must have (e.g. the promoted ``ModelVersion``'s).

        Returns:
            The newly serving model.
        """
        fresh = self._load(str(model_dir), sha256)
        with self._lock:
            self._loaded = fresh
            self.model_dir, self.sha256 = str(model_dir), sha256
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
        return self._predict(self.loaded, inputs, ctxs)

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
