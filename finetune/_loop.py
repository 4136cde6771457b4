"""The training loop: plain PyTorch with Accelerate's ``prepare``, ``backward`` and
``gather_for_metrics``, written as a few small functions around one ``Progress`` record.

A run::

    check data -> build model -> loaders -> AdamW + warmup/linear decay -> prepare
    -> (resume) -> for each epoch: train (accumulate, clip, step, checkpoint)
                                   validate, keep the best weights, stop early
    -> best weights -> fit the temperature -> save the artifact and metrics.json

One loop serves every task: sequence classification (single- and multi-label), token
classification (slots) and the bi-encoder (retrieval). The per-task parts (rows and
batches, the model, the loss, the validation score) live in ``finetune._tasks``; setting
a run up in ``finetune._run_setup``; what it writes (checkpoints, the artifact,
``metrics.json``) in ``finetune._run_files``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from finetune._config import TrainConfig
from finetune._errors import TrainConfigError, TrainingDivergedError
from finetune._metrics import EvalReport
from finetune._run_files import (
    CHECKPOINT,
    METRICS,
    MODEL,
    Progress,
    restore_checkpoint,
    save_checkpoint,
    save_model,
    write_metrics,
)
from finetune._run_setup import Run, prepare_run
from finetune._tasks import LOSSES, VALIDATORS, AnyExample, check_data
from finetune._warmup import warm_up_encoder

__all__ = ["TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced.

    Attributes:
        model_dir: The saved artifact (serve it with ``agents.TextClassifier``,
            ``agents.EntityExtractor`` or ``agents.Retriever``, by task).
        sha256: Its checksum (register it as a model version).
        best_epoch: The epoch (1-based) whose weights were saved.
        best_metric: Their validation score on ``config.metric``.
        epochs_run: Epochs trained (fewer than configured after early stopping).
        stopped_early: Validation stopped improving for ``patience`` epochs.
        temperature: The calibration temperature fitted on the validation logits (token
            classification: on the scored tokens; the bi-encoder: 1.0, not calibrated).
        metrics_path: The run's ``metrics.json``.
        report: The saved model's validation report: per label; per entity type, scored
            on exact spans (token classification); per passage, where accuracy is
            recall@1 (the bi-encoder).
    """

    model_dir: Path
    sha256: str
    best_epoch: int
    best_metric: float
    epochs_run: int
    stopped_early: bool
    temperature: float
    metrics_path: Path
    report: EvalReport


def train(
    config: TrainConfig,
    train_examples: Sequence[AnyExample],
    val_examples: Sequence[AnyExample],
    *,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Fine-tune a model for ``config.task`` and save it as a taskloom artifact.

    Args:
        config: The run's settings.
        train_examples: ``Example`` rows (labelled texts) for single_label and
            multi_label, ``SpanExample`` rows for token_classification, ``PairExample``
            rows for embedding.
        val_examples: Held-out rows of the same kind: early stopping, best epoch and
            temperature.
        resume: Continue from ``out_dir/checkpoint`` when one exists (same config only).
        on_step: Called with the optimizer step count after every step (progress, tests).

    Returns:
        Where the artifact is and how the run went.

    Raises:
        TrainingDataError: Empty splits, rows of another task, unseen validation labels,
            rare labels, bad spans, a single distinct passage.
        TrainConfigError: ``out_dir`` holds a model already, or the checkpoint to resume
            was written with another config.
    """
    labels = check_data(config.task, train_examples, val_examples)
    out = Path(config.out_dir)
    if (out / MODEL).exists():
        raise TrainConfigError(
            f"'{out / MODEL}' exists already: this run finished before. Train into a new "
            "out_dir (artifacts are immutable)."
        )
    if config.contrastive_epochs:  # recorded as the run's base model: a resume finds it
        encoder = warm_up_encoder(config, cast(Any, train_examples), cast(Any, val_examples))
        config = replace(config, base_model=str(encoder))
    run = prepare_run(config, labels, train_examples, val_examples)
    progress = restore_checkpoint(run, out / CHECKPOINT) if resume else None
    progress = progress or Progress()
    while progress.epoch < config.epochs and not progress.stopped:
        started = time.perf_counter()
        _train_epoch(run, progress, on_step)
        progress.seconds += time.perf_counter() - started
        _end_epoch(run, progress)
    return _finish(run, progress)


def _train_epoch(run: Run, progress: Progress, on_step: Callable[[int], None] | None) -> None:
    config, accelerator = run.config, run.accelerator
    # Accelerate's loader sets its sampler's epoch to its own count of iterations, which
    # restarts at 0 in a resumed process: set both to the epoch under way.
    run.train_loader.set_epoch(progress.epoch)
    run.sampler.set_epoch(progress.epoch)
    run.model.train()
    loader = run.train_loader
    if progress.batches_done:
        loader = accelerator.skip_first_batches(loader, progress.batches_done)
        loader.set_epoch(progress.epoch)
    batches = len(run.train_loader)  # this process's share
    for batch in loader:
        loss = LOSSES[config.task](run.model, batch, config)
        _check_finite(loss, progress)
        accelerator.backward(loss / config.grad_accum)
        progress.batches_done += 1
        progress.loss_sum += float(loss.detach()) * len(batch["labels"])
        progress.rows += len(batch["labels"])
        if progress.batches_done % config.grad_accum and progress.batches_done < batches:
            continue
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
        progress.global_step += 1
        every = config.checkpoint_every_steps
        if every and progress.global_step % every == 0 and progress.batches_done < batches:
            save_checkpoint(run, progress)
        if on_step is not None:
            on_step(progress.global_step)


def _check_finite(loss: Any, progress: Progress) -> None:
    """Stop at the first NaN or infinite loss: stepping on it would destroy the weights."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"The training loss became {value} at epoch {progress.epoch + 1}, batch "
            f"{progress.batches_done + 1}: the run diverged and saved no model. Lower lr or "
            "head_lr, or keep max_grad_norm > 0, and train again."
        )


def _validate(run: Run) -> tuple[EvalReport, Any, Any]:
    """Score the validation set; also return its logits and targets (for calibration)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    run.model.eval()
    with torch.no_grad():
        return VALIDATORS[run.config.task](run)


def _end_epoch(run: Run, progress: Progress) -> None:
    """Validate, record the epoch, keep the best weights, decide on stopping, checkpoint."""
    report, _, _ = _validate(run)
    metric = report.metric(run.config.metric)
    progress.history.append(
        {
            "epoch": progress.epoch + 1,
            "train_loss": progress.loss_sum / max(progress.rows, 1),
            "val_accuracy": report.accuracy,
            "val_macro_f1": report.macro_f1,
            "val_micro_f1": report.micro_f1,
            "seconds": progress.seconds,
            "examples_per_s": progress.rows / max(progress.seconds, 1e-9),
        }
    )
    if metric > progress.best_metric:
        progress.best_metric, progress.best_epoch, progress.bad_epochs = (
            metric,
            progress.epoch + 1,
            0,
        )
        state = run.accelerator.unwrap_model(run.model).state_dict()
        progress.best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
    else:
        progress.bad_epochs += 1
        progress.stopped = progress.bad_epochs >= run.config.patience
    progress.epoch += 1
    progress.batches_done = progress.rows = 0
    progress.loss_sum = progress.seconds = 0.0
    if progress.epoch < run.config.epochs and not progress.stopped:
        save_checkpoint(run, progress)


def _finish(run: Run, progress: Progress) -> TrainResult:
    """Load the best weights, calibrate, save the artifact and ``metrics.json``.

    Every process validates (the gathered scores are the same everywhere); the main one
    alone writes, and the others read the checksum it recorded.
    """
    from agents import fit_temperature  # noqa: PLC0415 - torch-free, cycle-free

    config, out, main = run.config, Path(run.config.out_dir), run.accelerator.is_main_process
    model = run.accelerator.unwrap_model(run.model)
    model.load_state_dict(progress.best_state)
    report, logits, truths = _validate(run)
    multi = config.task == "multi_label"
    calibrated = config.task != "embedding"  # cosines are scores, not probabilities
    temperature = fit_temperature(logits, truths, multi_label=multi) if calibrated else 1.0
    if config.tier == "lora":  # a plain artifact: the adapters folded into the weights
        model.encoder = model.encoder.merge_and_unload()
    result = TrainResult(
        model_dir=out / MODEL,
        sha256=save_model(run, model, temperature) if main else "",
        best_epoch=progress.best_epoch,
        best_metric=progress.best_metric,
        epochs_run=progress.epoch,
        stopped_early=progress.stopped,
        temperature=temperature,
        metrics_path=out / METRICS,
        report=report,
    )
    if main:
        write_metrics(run, progress, result)
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)  # finished: nothing to resume
    run.accelerator.wait_for_everyone()
    if not main:
        sha256 = json.loads(result.metrics_path.read_text("utf-8"))["sha256"]
        result = replace(result, sha256=sha256)
    return result
