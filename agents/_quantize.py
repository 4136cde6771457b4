"""Int8 dynamic quantization of model artifacts for CPU serving, accepted only if it scores.

``quantize_artifact`` turns an fp32 artifact into an int8 one: every ``torch.nn.Linear``
(encoder and head) gets int8 weights with one scale and zero point per tensor, and its
activations are quantized on the fly at each call (PyTorch's *dynamic* quantization, x86 /
fbgemm kernels). On MiniLM this roughly halves CPU inference time. The int8 variant is
scored against the fp32 one **on the agent's validation data** and stored as its own
artifact with the measured check; loading refuses it unless the check passed (int8 at most
``tolerance_points`` percentage points below fp32), so only a validated variant serves.

Validation data: the split the model was selected on / its temperature fitted on, never the
split whose accuracy is reported (choosing int8 on the test split would tune on it).

Metrics, by task (each the one the serving agent's outputs are judged by):

- ``single_label``: accuracy of the top label.
- ``multi_label``: micro-F1 of the labels at or above the artifact's threshold. Exact match
  of whole label sets would move in steps of one text and hide label-level damage.
- ``token_classification``: span micro-F1 on exact ``(type, start, end)`` entities, as
  ``EntityExtractor`` returns them (CoNLL-style); word-tag accuracy is dominated by ``O``.
- ``embedding`` (a ``BiEncoder`` served by ``Retriever``): recall@1 of (query, relevant
  passage) pairs: the share of queries whose own passage is the most similar (cosine) of all
  the distinct passages given. Queries and passages are embedded by the retriever's own
  embedder, the one that embeds its queries and the knowledge base's chunks. Cosine values
  themselves always shift a little under int8; what serving needs kept is the ranking.

Storage stays safetensors (never pickle): a quantized Linear ``name`` is stored as
``name.weight`` (its int8 values), ``name.weight_scale`` (float64) and
``name.weight_zero_point`` (int64) next to its fp32 ``name.bias``; every other weight stays
fp32 under its usual name. Loading builds the fp32 module, quantizes it and then sets each
Linear's int8 weight from the stored values, so the artifact reloads to exactly the model
that was validated (``quantize_per_tensor`` of the dequantised values with the same scale
and zero point gives back the same integers; loading checks that it did).

Warnings: ``torch.ao.quantization`` is deprecated in favour of torchao, and creating
quantized tensors warns too. torch is pinned below 2.14, where these APIs still work, so the
two warnings are silenced, by exact message, around the quantizing calls only. ``warnings.
catch_warnings`` swaps process-wide filters and is not thread-safe, so it runs only at
quantize and load time, under a module lock (serving never touches it). Moving to torchao's
``quantize_`` is the upgrade path when the pin moves.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict

from agents._artifact import (
    META_FILE,
    WEIGHTS_FILE,
    ArtifactMeta,
    QuantizationCheck,
    file_sha256,
    read_artifact,
)
from agents._contract import RunContext
from agents._errors import ModelArtifactError

if TYPE_CHECKING:
    from agents._model import LoadedModel, ModelAgent
    from agents._retriever import Retriever

__all__ = ["INT8", "QuantizationReport", "load_int8", "quantize_artifact", "quantize_dynamic"]

INT8 = "dynamic_int8"
SCALE, ZERO_POINT = ".weight_scale", ".weight_zero_point"
METRICS = {
    "single_label": "accuracy",
    "multi_label": "micro_f1",
    "token_classification": "span_micro_f1",
    "embedding": "recall@1",
}
# catch_warnings saves and restores the process-wide filter list: two threads interleaving
# their enter/exit would leave one's filters installed for good.
_WARNINGS_LOCK = threading.Lock()


class QuantizationReport(BaseModel):
    """What ``quantize_artifact`` measured and wrote.

    Attributes:
        path: The int8 artifact directory (written whether accepted or not).
        sha256: Its checksum (what its outputs' ``model_sha256`` will be).
        quantized_from: The fp32 artifact's checksum.
        metric: ``accuracy``, ``micro_f1``, ``span_micro_f1`` or ``recall@1`` (see the
            module docstring).
        fp32: The fp32 model's score on the validation data, in [0, 1].
        int8: The int8 model's score on the same data.
        examples: How many validation texts (embedding: queries) were scored.
        tolerance_points: The largest drop allowed, in percentage points.
        accepted: ``int8 >= fp32 - tolerance``: the artifact may serve.
        fp32_seconds: Time the fp32 model took to answer the validation texts (embedding:
            to embed the queries and the distinct passages).
        int8_seconds: Time the int8 model took (same batches, same machine).
    """

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    quantized_from: str
    metric: str
    fp32: float
    int8: float
    examples: int
    tolerance_points: float
    accepted: bool
    fp32_seconds: float
    int8_seconds: float

    @property
    def delta_points(self) -> float:
        """int8 minus fp32, in percentage points (negative: int8 is worse)."""
        return (self.int8 - self.fp32) * 100.0

    @property
    def speedup(self) -> float:
        """fp32 time over int8 time on the validation texts (rough: one pass each)."""
        return self.fp32_seconds / max(self.int8_seconds, 1e-9)


@contextmanager
def _quiet_quantization() -> Iterator[None]:
    """Silence exactly torch's two quantization deprecation warnings (see module docstring)."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore",
            message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )
        yield


def quantize_dynamic(model: Any) -> Any:
    """An int8 dynamically quantized copy of ``model`` (every ``nn.Linear``, per tensor)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    with _quiet_quantization():
        quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear}, dtype=torch.qint8
        )
    return quantized.eval()


def _quantized_linears(model: Any) -> dict[str, Any]:
    from torch.ao.nn.quantized.dynamic import Linear  # noqa: PLC0415 - heavy, lazy

    return {name: layer for name, layer in model.named_modules() if isinstance(layer, Linear)}


def _int8_state(stored: dict[str, Any], quantized: Any) -> dict[str, Any]:
    """The safetensors contents of an int8 artifact: ``stored`` with int8 Linear weights."""
    import torch  # noqa: PLC0415 - heavy, lazy

    state = dict(stored)
    for name, layer in _quantized_linears(quantized).items():
        weight = layer.weight()
        if f"{name}.weight" not in state or weight.qscheme() != torch.per_tensor_affine:
            raise ModelArtifactError(
                name,
                f"Cannot store the quantized layer '{name}': its weight is missing from the "
                f"fp32 weights or not per-tensor affine ({weight.qscheme()}).",
            )
        state[f"{name}.weight"] = weight.int_repr().contiguous()
        state[name + SCALE] = torch.tensor(weight.q_scale(), dtype=torch.float64)
        state[name + ZERO_POINT] = torch.tensor(weight.q_zero_point(), dtype=torch.int64)
    return state


def load_int8(module: Any, stored: dict[str, Any]) -> Any:
    """Turn a freshly built fp32 ``module`` into the stored int8 model.

    Called by the artifact loaders for ``dynamic_int8`` artifacts.

    Args:
        module: The architecture, built from the artifact's config (weights not loaded).
        stored: The artifact's tensors (see the module docstring for the layout).

    Returns:
        The quantized module, its int8 weights bit-identical to the stored ones.

    Raises:
        ValueError: The stored tensors do not describe this module's quantized layers.
    """
    import torch  # noqa: PLC0415 - heavy, lazy

    fp32 = dict(stored)
    stored_layers: dict[str, tuple[Any, float, int]] = {}
    for key in [k for k in stored if k.endswith(SCALE)]:
        name = key.removesuffix(SCALE)
        ints = fp32[f"{name}.weight"]
        scale, zero_point = float(fp32.pop(key)), int(fp32.pop(name + ZERO_POINT))
        stored_layers[name] = (ints, scale, zero_point)
        # The fp32 module loads the dequantised values, so a strict load checks every name.
        fp32[f"{name}.weight"] = (ints.to(torch.float32) - zero_point) * scale
    module.load_state_dict(fp32, strict=True)
    quantized = quantize_dynamic(module)
    layers = _quantized_linears(quantized)
    if set(layers) != set(stored_layers):
        missing = sorted(set(layers) ^ set(stored_layers))
        raise ValueError(f"quantized layers and stored int8 weights differ: {missing}")
    with _quiet_quantization():
        for name, layer in layers.items():
            ints, scale, zero_point = stored_layers[name]
            weight = torch.quantize_per_tensor(
                fp32[f"{name}.weight"], scale, zero_point, torch.qint8
            )
            if not torch.equal(weight.int_repr(), ints):
                raise ValueError(f"int8 weights of '{name}' do not reproduce exactly")
            layer.set_weight_bias(weight, layer.bias())
    return quantized


def quantize_artifact(
    src: str | Path,
    dst: str | Path,
    *,
    texts: Sequence[str],
    labels: Sequence[Any],
    tolerance_points: float = 0.5,
    batch_size: int = 32,
) -> QuantizationReport:
    """Quantize an fp32 artifact to int8, score both on validation data, store the int8 one.

    The int8 artifact is always written (to ``dst``, atomically, like ``save_artifact``)
    with its check in ``taskloom.json``; agents refuse to load it unless ``accepted``.

    Args:
        src: The fp32 artifact directory.
        dst: The int8 artifact directory to create (it must not exist).
        texts: The agent's validation texts (embedding: its queries): the split the model
            was selected and calibrated on, never the test split whose score is reported.
        labels: Their gold answers: ``single_label``: a label name per text;
            ``multi_label``: a collection of label names per text; ``token_classification``:
            a list of ``(type, start, end)`` character spans per text; ``embedding``: the
            text of each query's relevant passage (queries may share one; the distinct
            passages, at least two, are what each query is ranked against).
        tolerance_points: The largest drop of the metric (in percentage points) that still
            accepts the int8 model.
        batch_size: Texts per forward pass while scoring.

    Returns:
        The report: both scores, acceptance, timings and the new artifact's checksum.

    Raises:
        ValueError: The source is quantized already, there is no validation data, the labels
            do not fit the texts or the artifact's labels (embedding: fewer than two
            distinct passages), or the task is not supported.
        ModelArtifactError: The source does not load, or ``dst`` exists.
    """
    meta, weights = read_artifact(src)
    gold = _check_request(meta, texts, labels, tolerance_points)
    target = Path(dst)
    if target.exists():
        raise ModelArtifactError(
            str(target),
            f"Cannot write the int8 artifact to '{target}': it exists already. Artifacts are "
            "immutable; choose a new directory.",
        )
    agent = _agent_for(meta, str(src), batch_size)
    fp32 = agent.loaded
    int8 = dataclasses.replace(fp32, model=quantize_dynamic(fp32.model))
    fp32_score, fp32_seconds = _score(agent, fp32, texts, gold)
    int8_score, int8_seconds = _score(agent, int8, texts, gold)
    check = QuantizationCheck(
        metric=METRICS[meta.task],
        fp32=fp32_score,
        int8=int8_score,
        examples=len(texts),
        tolerance_points=tolerance_points,
        # Rounded so that a drop of exactly the tolerance is not refused by float noise.
        accepted=round((fp32_score - int8_score) * 100.0, 9) <= tolerance_points,
    )
    from safetensors.torch import load  # noqa: PLC0415 - heavy, lazy

    sha256 = _write(Path(src), target, _int8_state(load(weights), int8.model), meta, check)
    return QuantizationReport(
        path=str(target),
        sha256=sha256,
        quantized_from=meta.sha256,
        **check.model_dump(),
        fp32_seconds=fp32_seconds,
        int8_seconds=int8_seconds,
    )


def _check_request(
    meta: ArtifactMeta, texts: Sequence[str], labels: Sequence[Any], tolerance_points: float
) -> list[frozenset[Any]]:
    """Validate the request; return each text's gold answer as a set."""
    if meta.quantization != "none":
        raise ValueError(
            f"The artifact is quantized already ({meta.quantization}, from the fp32 artifact "
            f"{meta.quantized_from}); quantize the fp32 artifact instead."
        )
    if meta.task not in METRICS:
        raise ValueError(
            f"quantize_artifact cannot score task '{meta.task}'; supported tasks: "
            f"{', '.join(METRICS)}."
        )
    if not texts or len(texts) != len(labels):
        raise ValueError(
            f"quantize_artifact needs validation texts and one gold answer per text; got "
            f"{len(texts)} texts and {len(labels)} answers."
        )
    if tolerance_points < 0:
        raise ValueError(f"tolerance_points must be >= 0, got {tolerance_points}")
    gold = [_gold(meta, text, answer) for text, answer in zip(texts, labels, strict=True)]
    if meta.task == "embedding" and len(frozenset().union(*gold)) == 1:
        raise ValueError(
            "An embedding is scored by ranking each query's passage among all the distinct "
            "passages given, so it needs at least two; give more (query, passage) pairs."
        )
    return gold


def _gold(meta: ArtifactMeta, text: str, answer: Any) -> frozenset[Any]:
    if meta.task == "embedding":
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(
                f"An embedding gold answer is the text of the query's relevant passage, got "
                f"{answer!r} for the query {text!r}."
            )
        return frozenset([answer])
    if meta.task == "token_classification":
        types = sorted({tag[2:] for tag in meta.labels if tag[:2] in ("B-", "I-")})
        spans = frozenset(tuple(span) for span in answer)
        for span in spans:
            kind, start, end = span
            if kind not in types or not 0 <= start < end <= len(text):
                raise ValueError(
                    f"Gold span {span} does not fit the text {text!r}: spans are "
                    f"(type, start, end) with 0 <= start < end <= len(text) and a type among "
                    f"{', '.join(types)}."
                )
        return spans
    names = [answer] if meta.task == "single_label" else answer
    if isinstance(names, str) or not isinstance(names, Collection):
        raise ValueError(
            f"A {meta.task} gold answer must be "
            f"{'a label name' if meta.task == 'single_label' else 'a collection of label names'}"
            f", got {answer!r}."
        )
    unknown = sorted(str(name) for name in names if name not in meta.labels)
    if unknown:
        raise ValueError(
            f"Gold label(s) {', '.join(unknown)} are not the artifact's labels: "
            f"{', '.join(meta.labels)}."
        )
    return frozenset(names)


def _agent_for(meta: ArtifactMeta, path: str, batch_size: int) -> ModelAgent[Any, Any]:
    from agents._classifier import TextClassifier  # noqa: PLC0415 - circular at import
    from agents._extractor import EntityExtractor  # noqa: PLC0415
    from agents._retriever import Retriever  # noqa: PLC0415

    agent: ModelAgent[Any, Any]
    if meta.task == "token_classification":
        agent = EntityExtractor(path, sha256=meta.sha256, batch_size=batch_size)
    elif meta.task == "embedding":
        agent = Retriever(path, sha256=meta.sha256, batch_size=batch_size)
    else:
        agent = TextClassifier(path, sha256=meta.sha256, batch_size=batch_size)
    return agent


def _score(
    agent: ModelAgent[Any, Any],
    loaded: LoadedModel,
    texts: Sequence[str],
    gold: list[frozenset[Any]],
) -> tuple[float, float]:
    """The metric of ``loaded`` on the texts, through the serving agent's own decoding."""
    began = time.perf_counter()
    if loaded.meta.task == "embedding":
        answers = _nearest_passages(agent, loaded, texts, gold)
    else:
        inputs = [agent.Input(text=text) for text in texts]
        ctxs = [RunContext("quantize", "validate", visit=i + 1) for i in range(len(texts))]
        # _predict is the agents' shared core: it scores exactly what serving would answer.
        outputs = agent._predict(loaded, inputs, ctxs)
        answers = [_answer(loaded.meta, output) for output in outputs]
    seconds = time.perf_counter() - began
    if loaded.meta.task in ("single_label", "embedding"):  # recall@1: the top passage's accuracy
        right = sum(a == g for a, g in zip(answers, gold, strict=True))
        return right / len(gold), seconds
    return _micro_f1(answers, gold), seconds


def _nearest_passages(
    agent: ModelAgent[Any, Any],
    loaded: LoadedModel,
    queries: Sequence[str],
    gold: list[frozenset[Any]],
) -> list[frozenset[Any]]:
    """Each query's most similar passage among all the distinct gold passages.

    Both sides go through the retriever's served embedder: the code that embeds its queries
    and the chunks it searches. The vectors are unit length, so dot products are cosines.
    """
    from agents._retriever import _ServedEmbedder  # noqa: PLC0415 - imports knowledge

    embedder = _ServedEmbedder(cast("Retriever", agent), loaded)
    passages = sorted(frozenset().union(*gold))
    similarity = embedder.embed(queries) @ embedder.embed(passages).T
    return [frozenset([passages[best]]) for best in similarity.argmax(axis=1).tolist()]


def _answer(meta: ArtifactMeta, output: Any) -> frozenset[Any]:
    if meta.task == "token_classification":
        return frozenset((e.type, e.start, e.end) for e in output.entities)
    return frozenset(output.labels_above_threshold)


def _micro_f1(predicted: list[frozenset[Any]], gold: list[frozenset[Any]]) -> float:
    """Micro-F1 over all (text, item) decisions; 1.0 when neither side has any item."""
    hits = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    total = sum(len(p) for p in predicted) + sum(len(g) for g in gold)
    return 1.0 if total == 0 else 2.0 * hits / total


def _write(
    src: Path, target: Path, state: dict[str, Any], meta: ArtifactMeta, check: QuantizationCheck
) -> str:
    """Write the int8 artifact atomically: the source's other files, int8 weights, meta."""
    from safetensors.torch import save_file  # noqa: PLC0415 - heavy, lazy

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for item in src.iterdir():
            if item.is_file() and item.name not in (WEIGHTS_FILE, META_FILE):
                shutil.copy2(item, staging / item.name)
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        sha256 = file_sha256(staging / WEIGHTS_FILE)
        fields = meta.model_dump() | {
            "quantization": INT8,
            "quantized_from": meta.sha256,
            "check": check,
            "sha256": sha256,
        }
        written = ArtifactMeta.model_validate(fields)
        (staging / META_FILE).write_text(written.model_dump_json(indent=2) + "\n", "utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sha256
