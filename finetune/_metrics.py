"""Classification metrics in plain Python, and evaluation of a saved artifact.

The same functions score the validation set during training and a saved artifact
afterwards. ``evaluate`` runs the artifact through ``agents.TextClassifier``, so what it
measures is what serves (tokenization, truncation, calibration, threshold included).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["EvalReport", "LabelScores", "classification_report", "evaluate"]


class LabelScores(BaseModel):
    """Precision, recall and F1 of one label, and how many true examples it has."""

    model_config = ConfigDict(frozen=True)

    precision: float
    recall: float
    f1: float
    support: int


class EvalReport(BaseModel):
    """A classification report.

    Attributes:
        examples: How many texts were scored.
        accuracy: Share of texts whose prediction is exactly right (multi-label: the
            whole label set, "exact match").
        macro_f1: The mean F1 over labels (every label counts the same).
        micro_f1: F1 over all label decisions pooled (single-label: equals accuracy).
        per_label: Each label's scores, in the model's label order.
    """

    model_config = ConfigDict(frozen=True)

    examples: int
    accuracy: float
    macro_f1: float
    micro_f1: float
    per_label: dict[str, LabelScores]

    def metric(self, name: str) -> float:
        """The named metric: ``accuracy``, ``macro_f1`` or ``micro_f1``."""
        return float(getattr(self, name))


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_report(
    true_sets: Sequence[Sequence[str]], pred_sets: Sequence[Sequence[str]], labels: Sequence[str]
) -> EvalReport:
    """Score predicted label sets against true ones (single-label: one label each).

    Args:
        true_sets: The true labels of each text.
        pred_sets: The predicted labels of each text.
        labels: Every label, in report order.

    Raises:
        ValueError: The two lists differ in length or are empty.
    """
    if len(true_sets) != len(pred_sets) or not true_sets:
        raise ValueError(
            f"classification_report needs as many predictions as truths (at least one), got "
            f"{len(pred_sets)} and {len(true_sets)}"
        )
    per_label: dict[str, LabelScores] = {}
    totals = [0, 0, 0]
    for label in labels:
        counts = [0, 0, 0]  # tp, fp, fn
        for truth, pred in zip(true_sets, pred_sets, strict=True):
            is_true, is_pred = label in truth, label in pred
            counts[0] += is_true and is_pred
            counts[1] += is_pred and not is_true
            counts[2] += is_true and not is_pred
        precision, recall, f1 = _f1(*counts)
        support = counts[0] + counts[2]
        per_label[label] = LabelScores(precision=precision, recall=recall, f1=f1, support=support)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    exact = sum(set(t) == set(p) for t, p in zip(true_sets, pred_sets, strict=True))
    return EvalReport(
        examples=len(true_sets),
        accuracy=exact / len(true_sets),
        macro_f1=sum(s.f1 for s in per_label.values()) / max(len(per_label), 1),
        micro_f1=_f1(*totals)[2],
        per_label=per_label,
    )


def evaluate(
    model_dir: str | Path,
    texts: Sequence[str],
    labels: Sequence[str | Sequence[str]],
    *,
    batch_size: int = 32,
) -> EvalReport:
    """Score a saved classifier artifact on labelled texts, served as in production.

    Args:
        model_dir: An artifact written by ``finetune.train`` (or ``agents.save_artifact``).
        texts: The texts to classify.
        labels: Each text's true label (multi-label: its labels; a name or a sequence).
        batch_size: Texts per forward pass.

    Returns:
        Accuracy, macro/micro F1 and per-label scores; multi-label predictions are the
        labels at or above the artifact's threshold.
    """
    from agents import ClassifierInput, RunContext, TextClassifier  # noqa: PLC0415 - cycle-free

    if len(texts) != len(labels) or not texts:
        raise ValueError(
            f"evaluate needs one label (set) per text and at least one text, got "
            f"{len(texts)} texts and {len(labels)} labels"
        )
    agent = TextClassifier(str(model_dir), batch_size=batch_size)
    agent.warm_up()
    contexts = [RunContext("evaluate", "evaluate", visit=i + 1) for i in range(len(texts))]
    outputs = agent.run_batch([ClassifierInput(text=t) for t in texts], contexts)
    truths = [[label] if isinstance(label, str) else list(label) for label in labels]
    names = agent.loaded.meta.labels
    return classification_report(truths, [o.labels_above_threshold for o in outputs], names)
