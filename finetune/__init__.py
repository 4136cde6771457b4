"""taskloom fine-tuning: turning feedback into better models.

This package will hold the feedback loop's back half: dataset snapshots built from feedback
in the knowledge base, a plain Accelerate training loop (a frozen config and a few small
functions around ``prepare``/``backward``/``gather_for_metrics``), evaluation of a candidate
against the serving model on the same held-out data, the model registry, and the promotion
gate that promotes a candidate only when it is better and regresses nowhere guarded.

For now it exports only its error branch. Like the other packages, importing it never
imports torch or transformers; training code loads them when it runs.
"""

from finetune._errors import FinetuneError
from knowledge import TaskloomError

__all__ = ["FinetuneError", "TaskloomError"]
