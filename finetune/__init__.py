"""taskloom fine-tuning: turning feedback into better models.

The feedback loop's back half. ``train`` is one plain Accelerate loop (a frozen
``TrainConfig`` and small functions around ``prepare``/``backward``/``gather_for_metrics``)
for sequence classification, token classification (``SpanExample``) and the bi-encoder
(``PairExample``): length-bucketed batches, early stopping, checkpoints that resume
mid-epoch, head/LoRA/full tiers, an optional contrastive warm-up for few labels
(``contrastive_epochs``), a calibrated artifact and ``metrics.json``; ``evaluate`` scores an
artifact as ``agents.TextClassifier`` serves it. Users' own ``.csv``/``.jsonl`` files are
read by ``read_labelled`` and split by ``split_examples``; ``plot_curves`` draws a run;
``taskloom finetune train|eval`` puts them on the command line.

From feedback in the knowledge base, ``build_dataset`` snapshots content-hashed dataset
versions around a frozen per-agent holdout; the promotion gate (``gate``,
``promote_if_better``; rollback is ``knowledge.rollback``) promotes a candidate only when it
beats the serving model on that holdout and regresses nowhere guarded. A round
(``run_round``, ``resume_round``, ``watch``; ``taskloom finetune run|jobs|watch``) chains
them as a job recorded in the knowledge base; a failed or diverged round never touches
serving, and one process at a time runs a job. Importing the package never imports torch or
transformers; training code loads them when it runs.
"""

from agents._bio import Span
from finetune._config import TrainConfig
from finetune._curves import plot_curves
from finetune._data import Example, PairExample, SpanExample, length_bucketed_batches
from finetune._errors import (
    EmptyDatasetError,
    FeedbackDataError,
    FinetuneError,
    GateError,
    HoldoutOverlapError,
    LabelOutsideSetError,
    TooFewExamplesError,
    TrainConfigError,
    TrainingDataError,
    TrainingDivergedError,
)
from finetune._feedback_data import (
    DatasetSplit,
    LabelledExample,
    build_dataset,
    check_holdout_disjoint,
    labelled_examples,
    normalise_text,
)
from finetune._files import read_labelled, split_examples
from finetune._gate import (
    GateCheck,
    GateConfig,
    GateDecision,
    Promotion,
    evaluate_and_gate,
    gate,
    promote_if_better,
)
from finetune._loop import TrainResult, train
from finetune._metrics import EvalReport, LabelScores, classification_report, evaluate
from finetune._rounds import JobResult, resume_round, run_round, watch
from finetune._run_files import encoder_folder
from knowledge import TaskloomError

__all__ = [
    "DatasetSplit",
    "EmptyDatasetError",
    "EvalReport",
    "Example",
    "FeedbackDataError",
    "FinetuneError",
    "GateCheck",
    "GateConfig",
    "GateDecision",
    "GateError",
    "HoldoutOverlapError",
    "JobResult",
    "LabelOutsideSetError",
    "LabelScores",
    "LabelledExample",
    "PairExample",
    "Promotion",
    "Span",
    "SpanExample",
    "TaskloomError",
    "TooFewExamplesError",
    "TrainConfig",
    "TrainConfigError",
    "TrainResult",
    "TrainingDataError",
    "TrainingDivergedError",
    "build_dataset",
    "check_holdout_disjoint",
    "classification_report",
    "encoder_folder",
    "evaluate",
    "evaluate_and_gate",
    "gate",
    "labelled_examples",
    "length_bucketed_batches",
    "normalise_text",
    "plot_curves",
    "promote_if_better",
    "read_labelled",
    "resume_round",
    "run_round",
    "split_examples",
    "train",
    "watch",
]
