"""taskloom fine-tuning: turning feedback into better models.

This package will hold the feedback loop's back half: dataset snapshots built from feedback
in the knowledge base, a plain Accelerate training loop (a frozen config and a few small
functions around ``prepare``/``backward``/``gather_for_metrics``), evaluation of a candidate
against the serving model on the same held-out data, the model registry, and the promotion
gate that promotes a candidate only when it is better and regresses nowhere guarded.

Built so far: datasets from feedback (``build_dataset``: content-hashed snapshots, a
stratified seeded train/validation split, a frozen per-agent holdout) and the promotion gate
(``gate``, ``promote_if_better``; rollback is ``knowledge.rollback``), and the training loop
for sequence classification, token classification (``SpanExample``) and the bi-encoder
(``PairExample``) (``train`` with a ``TrainConfig``: checkpoints that resume
mid-epoch, early stopping, a calibrated artifact and ``metrics.json``; ``evaluate`` scores
an artifact as ``agents.TextClassifier`` serves it). Users' own labelled ``.csv``/``.jsonl``
files are read by ``read_labelled`` and split by ``split_examples``; ``plot_curves`` draws a
run's ``metrics.json``; ``taskloom finetune train|eval`` puts them on the command line.
A feedback-loop round (``run_round``, ``resume_round``, ``watch``; ``taskloom finetune
run|jobs|watch``) chains them as a job recorded in the knowledge base: dataset, candidate
from the serving model, gate, promotion; a failed or diverged round never touches serving.
Like the other packages, importing it never imports torch or transformers; training code
loads them when it runs.
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
from finetune._rounds import JobResult, encoder_folder, resume_round, run_round, watch
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
