"""The finetune branch of the exception tree (drawn in ``knowledge._errors``)."""

from __future__ import annotations

from knowledge import TaskloomError

__all__ = ["FinetuneError", "TrainConfigError", "TrainingDataError"]


class FinetuneError(TaskloomError):
    """A dataset, training run, evaluation or promotion could not be completed."""


class TrainConfigError(FinetuneError, ValueError):
    """A training configuration names an unknown task, tier or metric, or is out of range."""


class TrainingDataError(FinetuneError, ValueError):
    """Training or validation examples cannot train a model (empty, unseen or rare labels)."""
