"""The training configuration: one frozen dataclass, validated when it is built.

Every knob of a run lives here, so a run is reproduced from its ``metrics.json`` (which
records the config) and a resumed run can check that it continues the same run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from finetune._errors import TrainConfigError

__all__ = ["METRICS", "TASKS", "TIERS", "TrainConfig"]

Task = Literal["single_label", "multi_label", "token_classification", "embedding"]
Tier = Literal["full", "lora", "head"]
Metric = Literal["accuracy", "macro_f1", "micro_f1"]
Precision = Literal["auto", "no", "bf16", "fp16"]

TASKS: tuple[str, ...] = ("single_label", "multi_label", "token_classification", "embedding")
TIERS: tuple[str, ...] = ("full", "lora", "head")
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "micro_f1")
PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune a model: a sequence classifier, a token classifier or a bi-encoder.

    Attributes:
        out_dir: Where the run writes ``model/`` (the artifact), ``metrics.json`` and
            ``checkpoint/`` (for resuming). ``model/`` must not exist yet.
        task: ``single_label`` (softmax, cross-entropy), ``multi_label`` (a sigmoid and
            binary cross-entropy per label), ``token_classification`` (BIO tags per word,
            cross-entropy; served by ``agents.EntityExtractor``) or ``embedding`` (a
            bi-encoder, in-batch negatives; served by ``agents.Retriever``).
        tier: ``full`` trains every weight; ``head`` freezes the encoder and trains the
            linear head only (fast, small data; not for ``embedding``, which has no head);
            ``lora`` trains low-rank adapters on the encoder's attention query and value
            layers and the whole head, then merges the adapters into the weights, so the
            artifact is a plain one (needs ``pip install 'taskloom[lora]'``).
        base_model: A Hugging Face model folder; empty means the packaged all-MiniLM-L6-v2.
        epochs: Most passes over the training data.
        batch_size: Examples per forward pass.
        grad_accum: Forward passes per optimizer step (effective batch = both multiplied).
        lr: Encoder learning rate (AdamW).
        head_lr: Head learning rate. The head starts random while the encoder is trained
            already, so it needs a much larger rate (this matters a lot for MiniLM).
        weight_decay: AdamW decay on weight matrices (never on biases and LayerNorm).
        max_grad_norm: Gradients are clipped to this norm before each step (0: never).
        warmup_ratio: Share of the optimizer steps spent warming the rate up from 0, after
            which it decays linearly to 0.
        max_length: Longest input in tokens; longer texts are truncated.
        seed: Seeds the weights of the head, dropout and the batch order.
        patience: Epochs without a better validation metric before stopping early.
        metric: Validation metric that picks the best epoch: ``accuracy`` (multi-label:
            exact match; token classification: texts with exactly the right spans;
            embedding: recall@1), ``macro_f1`` or ``micro_f1`` (token classification:
            over exact spans).
        threshold: Multi-label decision threshold on each probability.
        mixed_precision: ``auto`` is ``no`` on CPU (bf16 is several times slower on CPUs)
            and bf16 (or fp16 where bf16 is unsupported) on a GPU.
        checkpoint_every_steps: Also checkpoint every this many optimizer steps (0: only at
            the end of each epoch).
        bucket_batches: Batches per length bucket: texts are sorted by length within
            shuffled buckets of this many batches, so padding wastes little but batch
            order stays random.
        lora_r: LoRA rank (tier ``lora``): the adapters' inner size.
        lora_alpha: LoRA scale numerator: an adapter's update is scaled by
            ``lora_alpha / lora_r``.
        lora_dropout: Dropout on the adapters' input while training.
        label_smoothing: Share of each single-label target spread over the other labels
            (0: plain cross-entropy). A little (0.1) keeps a many-class head from growing
            overconfident on its training data.
        contrastive_epochs: single_label only: first train the encoder this many epochs as
            a bi-encoder on pairs of same-label texts (other labels' texts in the batch
            are the negatives), then train the classifier from it (0: skip). Pulling each
            label's texts together first helps most when labels are few per class.
    """

    out_dir: str
    task: Task = "single_label"
    tier: Tier = "full"
    base_model: str = ""
    epochs: int = 3
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 0
    patience: int = 2
    metric: Metric = "accuracy"
    threshold: float = 0.5
    mixed_precision: Precision = "auto"
    checkpoint_every_steps: int = 0
    bucket_batches: int = 50
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    label_smoothing: float = 0.0
    contrastive_epochs: int = 0

    def __post_init__(self) -> None:
        for field, value, valid in (
            ("task", self.task, TASKS),
            ("tier", self.tier, TIERS),
            ("metric", self.metric, METRICS),
            ("mixed_precision", self.mixed_precision, PRECISIONS),
        ):
            if value not in valid:
                raise TrainConfigError(
                    f"Unknown {field} '{value}' in TrainConfig. Valid: {', '.join(valid)}."
                )
        self._check_ranges()

    def _check_ranges(self) -> None:
        positive = ("epochs", "batch_size", "grad_accum", "patience", "bucket_batches", "lora_r")
        problems = [f"{name} must be >= 1" for name in positive if getattr(self, name) < 1]
        if not self.lr > 0 or not self.head_lr > 0 or not self.lora_alpha > 0:
            problems.append("lr, head_lr and lora_alpha must be > 0")
        fractions = ("lora_dropout", "label_smoothing", "warmup_ratio")
        problems += [
            f"{name} must be in [0, 1)"
            for name in fractions
            if not 0.0 <= getattr(self, name) < 1.0
        ]
        if not 0.0 < self.threshold < 1.0:
            problems.append("threshold must be in (0, 1)")
        if self.max_length < 2:  # noqa: PLR2004 - [CLS] and [SEP]
            problems.append("max_length must be >= 2")
        if min(self.weight_decay, self.max_grad_norm, self.checkpoint_every_steps) < 0:
            problems.append("weight_decay, max_grad_norm and checkpoint_every_steps must be >= 0")
        if not self.out_dir:
            problems.append("out_dir must name a directory")
        if self.contrastive_epochs < 0:
            problems.append("contrastive_epochs must be >= 0")
        ignored = [n for n in ("contrastive_epochs", "label_smoothing") if getattr(self, n)]
        if ignored and self.task != "single_label":
            problems.append(f"{' and '.join(ignored)} apply to task 'single_label' only")
        if self.task == "embedding" and self.tier == "head":
            problems.append("tier 'head' trains nothing for task 'embedding' (no head): use 'full'")
        if problems:
            raise TrainConfigError(f"Invalid TrainConfig: {'; '.join(problems)}.")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (recorded in ``metrics.json`` and checkpoints)."""
        return dataclasses.asdict(self)
