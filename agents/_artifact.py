"""Model artifacts: one directory per trained model version, safetensors weights only.

An artifact directory holds::

    config.json           the encoder's Hugging Face configuration
    model.safetensors     every weight (encoder and head) in one safetensors file
    tokenizer_config.json and the tokenizer's own files (tokenizer.json, vocab.txt, ...)
    taskloom.json         ArtifactMeta: head kind, task kind, labels, temperature, threshold,
                          max_length, base model and the sha256 of model.safetensors

Three heads exist: ``mean_pool_linear`` (a ``PooledClassifier``: single- or multi-label text
classification), ``token_linear`` (a ``TokenClassifier``: task ``token_classification``,
one BIO tag per token, the labels being the tags) and ``mean_pool`` (a ``BiEncoder``: task
``embedding``, no head and no labels, unit vectors for retrieval). Their encoder weights have
the same names, so the loaders check the head kind rather than trusting the weights to fail.

The artifact's checksum is the sha256 of ``model.safetensors``; it is what a knowledge-base
``ModelVersion`` row records and what loading verifies. Weights are never unpickled:
``pytorch_model.bin`` and other pickle formats run arbitrary code when loaded, so a directory
holding only those is refused. Artifacts are immutable: ``save_artifact`` writes a fresh
directory atomically and never overwrites one.

An int8 variant (``quantize_artifact``, ``quantization: dynamic_int8``) keeps its int8
weights as plain tensors in the same safetensors file and loads only if the validation check
recorded in its ``taskloom.json`` passed.

torch, transformers and safetensors are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agents._errors import ModelArtifactError

__all__ = [
    "CONFIG_FILE",
    "META_FILE",
    "WEIGHTS_FILE",
    "ArtifactMeta",
    "QuantizationCheck",
    "file_sha256",
    "load_bi_encoder",
    "load_pooled_classifier",
    "load_token_classifier",
    "read_artifact",
    "save_artifact",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "taskloom.json"
TOKENIZER_FILE = "tokenizer_config.json"
REQUIRED = (CONFIG_FILE, WEIGHTS_FILE, META_FILE, TOKENIZER_FILE)
# Weight formats that unpickle (and so can run code) when loaded: refused, never read.
PICKLED = ("pytorch_model.bin", "*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")

TaskKind = Literal["single_label", "multi_label", "token_classification", "embedding"]
HeadKind = Literal["mean_pool_linear", "token_linear", "mean_pool"]
TOKEN_HEAD, POOLED_HEAD, EMBEDDING_HEAD = "token_linear", "mean_pool_linear", "mean_pool"
# The tasks each head serves; an embedding (no head) has no labels, every other task has some.
HEAD_TASKS = {
    POOLED_HEAD: ("single_label", "multi_label"),
    TOKEN_HEAD: ("token_classification",),
    EMBEDDING_HEAD: ("embedding",),
}
Quantization = Literal["none", "dynamic_int8"]


class QuantizationCheck(BaseModel):
    """How a quantized artifact scored against its fp32 source on validation data.

    Attributes:
        metric: ``accuracy``, ``micro_f1``, ``span_micro_f1`` or ``recall@1`` (see
            ``agents._quantize``).
        fp32: The fp32 model's score, in [0, 1].
        int8: The quantized model's score on the same examples.
        examples: How many validation texts (embedding: queries) were scored.
        tolerance_points: The largest drop (percentage points) that was allowed.
        accepted: The drop was within the tolerance; only then does the artifact load.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Literal["accuracy", "micro_f1", "span_micro_f1", "recall@1"]
    fp32: Annotated[float, Field(ge=0, le=1)]
    int8: Annotated[float, Field(ge=0, le=1)]
    examples: Annotated[int, Field(ge=1)]
    tolerance_points: Annotated[float, Field(ge=0)]
    accepted: bool


class ArtifactMeta(BaseModel):
    """The contents of ``taskloom.json``.

    Attributes:
        format: Version of this file's layout.
        head: The module architecture the weights belong to.
        task: ``single_label`` (softmax over labels), ``multi_label`` (one sigmoid each) or
            ``token_classification`` (a softmax over BIO tags per token; ``token_linear``
            head only) or ``embedding`` (unit vectors; ``mean_pool`` head only).
        labels: Label names in logit order (token classification: the BIO tags); empty
            for an embedding, which has no logits.
        temperature: Divides the logits before softmax/sigmoid (calibration, 1.0 = none).
        threshold: Multi-label decision threshold on each probability.
        max_length: Longest input in tokens; longer inputs are truncated.
        base_model: Name of the checkpoint the model was fine-tuned from.
        sha256: Checksum of ``model.safetensors``.
        quantization: ``none`` (fp32) or ``dynamic_int8`` (see ``agents.quantize_artifact``).
        quantized_from: A quantized artifact's fp32 source checksum.
        check: A quantized artifact's validation record; it loads only if accepted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    head: HeadKind = "mean_pool_linear"
    task: TaskKind = "single_label"
    labels: list[str]
    temperature: Annotated[float, Field(gt=0)] = 1.0
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    max_length: Annotated[int, Field(ge=2)] = 128
    base_model: str = ""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    # Defaults keep format 1: artifacts written before quantization existed still load.
    quantization: Quantization = "none"
    quantized_from: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    check: QuantizationCheck | None = None

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels: list[str]) -> list[str]:
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be unique; repeated: {', '.join(repeated)}")
        return labels

    @model_validator(mode="after")
    def _head_fits_task(self) -> ArtifactMeta:
        _check_head(self.head, self.task)
        if (self.task == "embedding") != (not self.labels):
            raise ValueError(
                f"task '{self.task}' got {len(self.labels)} labels: an embedding has none "
                "and every other task needs at least one"
            )
        if (self.quantization == "none") != (self.quantized_from is None):
            raise ValueError("quantized_from is set exactly when quantization is not 'none'")
        return self


def _check_head(head: str, task: str) -> None:
    if task not in HEAD_TASKS.get(head, ()):
        served = "; ".join(f"{h}: {', '.join(t)}" for h, t in HEAD_TASKS.items())
        raise ValueError(
            f"head '{head}' cannot serve task '{task}'. Heads and their tasks: {served}"
        )


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(  # noqa: PLR0913 - keyword-only, one per taskloom.json field
    model: Any,
    tokenizer: Any,
    path: str | Path,
    *,
    labels: Sequence[str],
    task: TaskKind = "single_label",
    temperature: float = 1.0,
    threshold: float = 0.5,
    max_length: int = 128,
    base_model: str = "",
) -> str:
    """Write a model artifact directory atomically and return its sha256.

    The files are written to a temporary directory next to ``path`` and renamed into place,
    so a reader sees either no artifact or a complete one.

    Args:
        model: A ``PooledClassifier``, a ``TokenClassifier`` (an encoder with ``config``
            and a linear ``head``) or a ``BiEncoder`` (no head); its ``head_kind`` is
            recorded (default ``mean_pool_linear``).
        tokenizer: The model's tokenizer.
        path: The directory to create; it must not exist (artifacts are immutable).
        labels: Label names in logit order (``[]`` for a ``BiEncoder``).
        task: ``single_label``, ``multi_label``, ``token_classification`` (with a
            ``TokenClassifier`` only) or ``embedding`` (with a ``BiEncoder`` only).
        temperature: Calibration temperature (see ``fit_temperature``).
        threshold: Multi-label decision threshold.
        max_length: Longest input in tokens at inference.
        base_model: The checkpoint it was fine-tuned from, for the record.

    Returns:
        The sha256 of ``model.safetensors``: register it with the model version.

    Raises:
        ModelArtifactError: ``path`` exists already.
        ValueError: The labels do not match the model's head, the task does not fit the
            head, or a setting is out of range.
    """
    from safetensors.torch import save_model  # noqa: PLC0415 - heavy, lazy

    target = Path(path)
    if target.exists():
        raise ModelArtifactError(
            str(target),
            f"Cannot save a model artifact to '{target}': it exists already. Artifacts are "
            "immutable (their checksum is registered); save each version to a new directory.",
        )
    head = str(getattr(model, "head_kind", POOLED_HEAD))
    _check_head(head, task)
    outputs = 0 if head == EMBEDDING_HEAD else int(model.head.out_features)
    if outputs != len(labels):
        raise ValueError(f"The model's head has {outputs} outputs but {len(labels)} labels given")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.config.save_pretrained(staging)
        save_model(model, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        tokenizer.save_pretrained(staging)
        meta = ArtifactMeta(
            head=head,
            task=task,
            labels=list(labels),
            temperature=temperature,
            threshold=threshold,
            max_length=max_length,
            base_model=base_model,
            sha256=file_sha256(staging / WEIGHTS_FILE),
        )
        (staging / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", "utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta.sha256


def _check_files(root: Path) -> None:
    if not root.is_dir():
        raise ModelArtifactError(
            str(root),
            f"Model artifact '{root}' does not exist or is not a directory. Point model_dir at "
            "a directory written by agents.save_artifact.",
        )
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    if not missing:
        return
    pickled = sorted({p.name for pattern in PICKLED for p in root.glob(pattern)})
    if WEIGHTS_FILE in missing and pickled:
        raise ModelArtifactError(
            str(root),
            f"Model artifact '{root}' has pickled weights ({', '.join(pickled)}) and no "
            f"{WEIGHTS_FILE}. taskloom loads safetensors only, because unpickling a file can "
            "run arbitrary code. Re-save the model with safetensors (save_artifact does).",
        )
    present = sorted(p.name for p in root.iterdir()) or ["(empty)"]
    raise ModelArtifactError(
        str(root),
        f"Model artifact '{root}' is incomplete: missing {', '.join(missing)}. It holds "
        f"{', '.join(present)}. An artifact needs {', '.join(REQUIRED)} and the tokenizer's "
        "files; write one with agents.save_artifact.",
    )


def _read_meta(root: Path) -> ArtifactMeta:
    try:
        return ArtifactMeta.model_validate_json((root / META_FILE).read_bytes())
    except ValidationError as exc:
        raise ModelArtifactError(
            str(root), f"'{root / META_FILE}' is malformed: {exc}. Re-save the artifact."
        ) from exc


def read_artifact(
    path: str | Path, expected_sha256: str | None = None
) -> tuple[ArtifactMeta, bytes]:
    """Check an artifact's files and checksum; return its metadata and weight bytes.

    The weights are hashed from the very bytes that are then loaded, so a file swapped
    between the check and the load cannot slip through.

    Args:
        path: The artifact directory.
        expected_sha256: The checksum it must have (e.g. a ``ModelVersion``'s ``sha256``).

    Returns:
        The metadata and the raw contents of ``model.safetensors``.

    Raises:
        ModelArtifactError: A file is missing, pickled weights only, malformed metadata, or a
            checksum mismatch (the message names the file and both hashes).
    """
    root = Path(path)
    _check_files(root)
    meta = _read_meta(root)
    weights = (root / WEIGHTS_FILE).read_bytes()
    actual = hashlib.sha256(weights).hexdigest()
    claims = [("taskloom.json", meta.sha256)]
    if expected_sha256 is not None:
        claims.append(("the expected checksum", expected_sha256.strip().lower()))
    for source, wanted in claims:
        if actual != wanted:
            raise ModelArtifactError(
                str(root),
                f"Checksum mismatch for '{root / WEIGHTS_FILE}': sha256 is {actual} but "
                f"{source} says {wanted}. The weights were modified or replaced after they "
                "were registered; restore the original file or register the new artifact "
                "as a new model version.",
            )
    _check_quantized(root, meta)
    return meta, weights


def _check_quantized(root: Path, meta: ArtifactMeta) -> None:
    """Refuse a quantized artifact unless its validation check passed (so it may serve)."""
    if meta.quantization == "none" or (meta.check is not None and meta.check.accepted):
        return
    if meta.check is None:
        why = "it has no validation check"
    else:
        check = meta.check
        why = (
            f"its {check.metric} on {check.examples} validation examples fell from "
            f"{check.fp32:.4f} (fp32) to {check.int8:.4f}, more than the allowed "
            f"{check.tolerance_points} points"
        )
    raise ModelArtifactError(
        str(root),
        f"Refusing the {meta.quantization} artifact '{root}': {why}, so it was not accepted "
        f"for serving. Serve its fp32 source (sha256 {meta.quantized_from}) instead, or "
        "re-quantize with agents.quantize_artifact on the agent's validation data.",
    )


def load_pooled_classifier(path: str | Path, meta: ArtifactMeta, weights: bytes) -> tuple[Any, Any]:
    """Build a ``PooledClassifier`` from an artifact checked by ``read_artifact``.

    Returns:
        The model (fp32, eval mode, on CPU) and its tokenizer.

    Raises:
        ModelArtifactError: The artifact has another head, or the configuration, tokenizer
            or weights do not load.
    """
    from agents._heads import PooledClassifier  # noqa: PLC0415 - imports torch

    return _load_module(Path(path), meta, weights, POOLED_HEAD, PooledClassifier)


def load_token_classifier(path: str | Path, meta: ArtifactMeta, weights: bytes) -> tuple[Any, Any]:
    """Build a ``TokenClassifier`` from an artifact checked by ``read_artifact``.

    Returns:
        The model (fp32, eval mode, on CPU) and its tokenizer.

    Raises:
        ModelArtifactError: The artifact has another head, or the configuration, tokenizer
            or weights do not load.
    """
    from agents._heads import TokenClassifier  # noqa: PLC0415 - imports torch

    return _load_module(Path(path), meta, weights, TOKEN_HEAD, TokenClassifier)


def load_bi_encoder(path: str | Path, meta: ArtifactMeta, weights: bytes) -> tuple[Any, Any]:
    """Build a ``BiEncoder`` from an artifact checked by ``read_artifact``.

    Returns:
        The model (fp32, eval mode, on CPU) and its tokenizer.

    Raises:
        ModelArtifactError: The artifact has another head, or the configuration, tokenizer
            or weights do not load.
    """
    from agents._heads import BiEncoder  # noqa: PLC0415 - imports torch

    return _load_module(Path(path), meta, weights, EMBEDDING_HEAD, lambda enc, _n: BiEncoder(enc))


def _load_module(
    root: Path, meta: ArtifactMeta, weights: bytes, head: str, module: Any
) -> tuple[Any, Any]:
    from safetensors.torch import load  # noqa: PLC0415 - heavy, lazy
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: PLC0415

    if meta.head != head:
        # Both heads' weights have the same names and shapes: loading would "work".
        raise ModelArtifactError(
            str(root),
            f"Model artifact '{root}' has a '{meta.head}' head (task {meta.task}) but this "
            f"agent serves '{head}' artifacts. Serve it with the agent made for its task "
            "(token_classification: EntityExtractor; embedding: Retriever; otherwise "
            "TextClassifier).",
        )
    try:
        config = AutoConfig.from_pretrained(root, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
        encoder = AutoModel.from_config(config)  # type: ignore[no-untyped-call]
        model = module(encoder, len(meta.labels))
        if meta.quantization == "dynamic_int8":
            from agents._quantize import load_int8  # noqa: PLC0415 - imports this module

            model = load_int8(model, load(weights))
        else:
            model.load_state_dict(load(weights), strict=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelArtifactError(
            str(root),
            f"Could not load the model artifact '{root}': {type(exc).__name__}: {exc}. Its "
            "files do not fit together (config, weights and labels must come from one "
            "save_artifact call).",
        ) from exc
    return model.float().eval(), tokenizer
