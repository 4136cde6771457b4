"""The finetune branch of the exception tree (drawn in ``knowledge._errors``)."""

from __future__ import annotations

from knowledge import TaskloomError

__all__ = [
    "EmptyDatasetError",
    "FeedbackDataError",
    "FinetuneError",
    "GateError",
    "HoldoutOverlapError",
    "LabelOutsideSetError",
    "TooFewExamplesError",
    "TrainConfigError",
    "TrainingDataError",
    "TrainingDivergedError",
]


class FinetuneError(TaskloomError):
    """A dataset, training run, evaluation or promotion could not be completed."""


class TrainConfigError(FinetuneError, ValueError):
    """A training configuration names an unknown task, tier or metric, or is out of range."""


class TrainingDataError(FinetuneError, ValueError):
    """Training or validation examples cannot train a model (empty, unseen or rare labels)."""


class FeedbackDataError(FinetuneError, ValueError):
    """Feedback cannot make a dataset; raised before any training starts."""


class EmptyDatasetError(FeedbackDataError):
    """The agent has no usable labelled feedback."""


class TooFewExamplesError(FeedbackDataError):
    """Some labels have too few examples to split and train on."""


class LabelOutsideSetError(FeedbackDataError):
    """Feedback carries labels outside the allowed label set."""


class HoldoutOverlapError(FeedbackDataError):
    """Training or validation data shares texts with the holdout."""


class GateError(FinetuneError, ValueError):
    """A gate configuration or an evaluation report cannot be used to decide a promotion."""


class TrainingDivergedError(FinetuneError, ArithmeticError):
    """The training loss became NaN or infinite: the run stopped and saved no model."""
