"""The training curve of a run, drawn from its ``metrics.json`` as a PNG.

matplotlib is imported when a curve is drawn, never on ``import finetune``; the figure is
rendered by the Agg canvas directly (no ``pyplot``), so drawing works without a display and
leaves matplotlib's global backend alone.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_curves"]

VAL_METRICS = ("val_accuracy", "val_macro_f1", "val_micro_f1")


def plot_curves(metrics_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Draw training loss and validation metrics per epoch, marking the best epoch.

    Args:
        metrics_path: A run's ``metrics.json`` (written by ``finetune.train``).
        out_path: The PNG to write; defaults to ``curves.png`` beside ``metrics_path``.

    Returns:
        The PNG written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - heavy, lazy
    from matplotlib.figure import Figure  # noqa: PLC0415

    source = Path(metrics_path)
    metrics = json.loads(source.read_text("utf-8"))
    target = Path(out_path) if out_path is not None else source.with_name("curves.png")
    epochs = metrics["epochs"]
    x = [row["epoch"] for row in epochs]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    loss, scores = figure.subplots(1, 2)
    loss.plot(x, [row["train_loss"] for row in epochs], marker="o")
    loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    for name in VAL_METRICS:
        scores.plot(x, [row[name] for row in epochs], marker="o", label=name.removeprefix("val_"))
    best = metrics.get("best_epoch")
    if best:
        for axes in (loss, scores):
            axes.axvline(best, color="grey", linestyle="--", linewidth=1)
    scores.set(title=f"validation (best epoch {best})", xlabel="epoch", ylim=(0, 1.02))
    scores.legend(loc="lower right")
    for axes in (loss, scores):
        axes.set_xticks(x)
    figure.savefig(target, format="png", dpi=100)
    return target
