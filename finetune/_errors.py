"""The finetune branch of the exception tree (drawn in ``knowledge._errors``)."""

from __future__ import annotations

from knowledge import TaskloomError

__all__ = ["FinetuneError"]


class FinetuneError(TaskloomError):
    """A dataset, training run, evaluation or promotion could not be completed."""
