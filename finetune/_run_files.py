"""What a training run writes: checkpoints while it runs, the artifact and ``metrics.json``
when it ends; and what a run starts from a saved artifact (``encoder_folder``).

Checkpoints (``out_dir/checkpoint``) hold Accelerate's state (model, optimizer, scheduler,
RNG states; ``save_state``), the best weights so far and ``progress.json``, written last,
which makes a checkpoint count. Batches depend only on the seed and epoch and the loaders
draw from their own generators, so a run resumed from step ``k`` skips the batches
already seen (``skip_first_batches``) and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune._errors import TrainConfigError
from finetune._run_setup import Run

if TYPE_CHECKING:  # the loop imports this module
    from finetune._loop import TrainResult

__all__ = [
    "CHECKPOINT",
    "METRICS",
    "MODEL",
    "Progress",
    "encoder_folder",
    "restore_checkpoint",
    "save_checkpoint",
    "save_model",
    "write_metrics",
]

DEFAULT_BASE_NAME = "all-MiniLM-L6-v2"  # recorded as the artifact's base_model
MODEL, METRICS, CHECKPOINT, PROGRESS, BEST = (
    "model",
    "metrics.json",
    "checkpoint",
    "progress.json",
    "best.safetensors",
)


@dataclass
class Progress:
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


def save_checkpoint(run: Run, progress: Progress) -> None:
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


def restore_checkpoint(run: Run, root: Path) -> Progress | None:
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
    progress = Progress(**record)
    progress.resumed_at_step = progress.global_step
    if (root / f"{state}.{BEST}").is_file():
        progress.best_state = load_file(str(root / f"{state}.{BEST}"))
    return progress


def save_model(run: Run, model: Any, temperature: float) -> str:
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


def write_metrics(run: Run, progress: Progress, result: TrainResult) -> None:
    """Record the run in ``metrics.json``: its config, every epoch, the saved model."""
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


def encoder_folder(artifact_dir: str | Path, dest: str | Path) -> Path:
    """Write a serving artifact's encoder as a Hugging Face model folder ``train`` starts from.

    An artifact stores the encoder's weights under ``encoder.`` next to its head's, which
    ``AutoModel.from_pretrained`` would not match (it would start from random weights).

    Args:
        artifact_dir: A taskloom artifact (checked against its recorded sha256).
        dest: The folder to create (kept, so a resumed run finds the same base).

    Returns:
        ``dest``, holding ``config.json``, ``model.safetensors`` and the tokenizer's files.
    """
    from safetensors.torch import load_file, save_file  # noqa: PLC0415 - heavy, lazy

    from agents._artifact import META_FILE, WEIGHTS_FILE, read_artifact  # noqa: PLC0415

    read_artifact(artifact_dir)  # refuses a missing, tampered or pickled artifact
    source, target = Path(artifact_dir), Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in {META_FILE, WEIGHTS_FILE}:
            shutil.copy2(item, target / item.name)
    prefix = "encoder."
    weights = load_file(str(source / WEIGHTS_FILE))
    encoder = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    save_file(encoder, str(target / WEIGHTS_FILE), metadata={"format": "pt"})
    return target
