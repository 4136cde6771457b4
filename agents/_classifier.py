"""The perception text classifier: intents, sentiment, urgency (single- or multi-label)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from agents._contract import Role, RunContext
from agents._model import LoadedModel, ModelAgent, length_sorted_batches, pad_batch

__all__ = ["ClassifierInput", "ClassifierOutput", "TextClassifier", "calibrated_probabilities"]


class ClassifierInput(BaseModel):
    """The text to classify (empty text is answered, and flagged)."""

    text: str


class ClassifierOutput(BaseModel):
    """A calibrated classification.

    Attributes:
        label: The most probable label.
        confidence: Its calibrated probability.
        probabilities: Every label's calibrated probability, in the model's label order
            (softmax: they sum to 1; multi-label: independent sigmoids).
        labels_above_threshold: Multi-label: every label whose probability reaches the
            threshold, most probable first (may be empty). Single-label: ``[label]``.
        truncated: The text was longer than ``max_length`` tokens and was cut.
        empty: The text had no content; the answer then reflects only the model's prior.
        model_sha256: The checksum of the weights that answered (the model version).
        prediction_id: The id of the knowledge base's ``Prediction`` row recording this
            answer, for feedback to point at; None when the run has no knowledge base.
    """

    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: dict[str, float]
    labels_above_threshold: list[str]
    truncated: bool = False
    empty: bool = False
    model_sha256: str
    prediction_id: int | None = None


class TextClassifier(ModelAgent[ClassifierInput, ClassifierOutput]):
    """A transformer encoder, mean pooling and a linear head over a fixed label set.

    The artifact's ``taskloom.json`` says whether it is single-label (softmax) or
    multi-label (a sigmoid per label) and carries the calibration temperature. Large batches
    are split into batches of similar token length, each padded only to its longest text.

    Args:
        model_dir: The artifact directory (written by ``save_artifact``).
        sha256: The checksum the artifact must have (the model version's).
        threshold: Multi-label decision threshold; None takes the artifact's.
        max_length: Longest input in tokens; None takes the artifact's (default 128).
        batch_size: Most texts per forward pass.
        device: The torch device to run on.
    """

    name = "text_classifier"
    role = Role.PERCEPTION

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        sha256: str | None = None,
        threshold: float | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"TextClassifier threshold must be in (0, 1), got {threshold}")
        super().__init__(
            model_dir, sha256=sha256, max_length=max_length, batch_size=batch_size, device=device
        )
        self.threshold = threshold

    def _predict(
        self,
        loaded: LoadedModel,
        inputs: Sequence[ClassifierInput],
        ctxs: Sequence[RunContext],
    ) -> list[ClassifierOutput]:
        texts = [item.text for item in inputs]
        encoded = self._encode(loaded, texts)
        rows = calibrated_probabilities(
            loaded, encoded.ids, batch_size=self.batch_size, device=self.device
        )
        outputs = []
        for text, probs, cut, ctx in zip(texts, rows, encoded.truncated, ctxs, strict=True):
            empty = not text.strip()
            if empty or cut:
                why = "is empty" if empty else f"exceeds {self._max_length(loaded)} tokens"
                ctx.logger.warning("Input text %s; classified anyway.", why)
            outputs.append(self._output(loaded, probs, truncated=cut, empty=empty))
        return outputs

    def _prediction_fields(self, loaded: LoadedModel, output: ClassifierOutput) -> dict[str, Any]:
        """The top label, its confidence and the full probability vector (multi-label:
        flagged as independent per-label probabilities, which need not sum to 1)."""
        return {
            "label": output.label,
            "confidence": output.confidence,
            "label_set": list(output.probabilities),
            "probabilities": list(output.probabilities.values()),
            "multi_label": loaded.meta.task == "multi_label",
        }

    def _output(
        self, loaded: LoadedModel, probs: list[float], *, truncated: bool, empty: bool
    ) -> ClassifierOutput:
        labels = loaded.meta.labels
        ranked = sorted(range(len(labels)), key=lambda i: -probs[i])
        top = ranked[0]
        if loaded.meta.task == "multi_label":
            threshold = self.threshold if self.threshold is not None else loaded.meta.threshold
            above = [labels[i] for i in ranked if probs[i] >= threshold]
        else:
            above = [labels[top]]
        return ClassifierOutput(
            label=labels[top],
            confidence=probs[top],
            probabilities=dict(zip(labels, probs, strict=True)),
            labels_above_threshold=above,
            truncated=truncated,
            empty=empty,
            model_sha256=loaded.sha256,
        )


def calibrated_probabilities(
    loaded: LoadedModel, ids: list[list[int]], *, batch_size: int, device: str
) -> list[list[float]]:
    """Calibrated probabilities of each row of a ``mean_pool_linear`` artifact's model.

    Computed in length-sorted batches: softmax for single-label artifacts, a sigmoid per
    label for multi-label ones, after dividing the logits by the artifact's temperature.
    Shared by the agents that serve such artifacts (``TextClassifier``, ``PolicyAgent``).
    """
    import torch  # noqa: PLC0415 - heavy, lazy

    meta = loaded.meta
    pad_id = loaded.tokenizer.pad_token_id or 0
    rows: list[list[float]] = [[] for _ in ids]
    with torch.inference_mode():
        for batch in length_sorted_batches([len(row) for row in ids], batch_size):
            input_ids, mask = pad_batch([ids[i] for i in batch], pad_id, device)
            logits = loaded.model(input_ids, mask).float() / meta.temperature
            if meta.task == "multi_label":
                probs = torch.sigmoid(logits)
            else:
                probs = torch.softmax(logits, dim=-1)
            for row, values in zip(batch, probs.cpu().tolist(), strict=True):
                rows[row] = values
    return rows
