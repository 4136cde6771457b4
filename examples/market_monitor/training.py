"""The monitor's models: the sentiment classifier and the alert policy, both recorded rounds.

Both agents learn through the same path as every taskloom model: labelled examples in the
knowledge base, ``finetune.run_round`` (train, evaluate against the serving model on the
agent's frozen holdout, promote only if better), and agents serving the registry's alias.

- **sentiment**: the tweets of the training split are imported as labels; the first round
  draws its holdout from them (a stratified fifth, never trained on) and trains
  all-MiniLM-L6-v2 with mean pooling (the checkpoint's own pooling) and a fresh head, the
  encoder at a low rate and the head at a high one.
- **alert policy**: its first labels are the analyst's verdicts on a calibration day (see
  ``analyst.calibration_labels``); later rounds learn from verdicts on the alerts raised and
  on the review queue's most uncertain decisions. The gate compares macro F1 (alerts are
  the rarer decision; accuracy would reward holding everything).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from finetune import GateConfig, JobResult, TrainConfig, run_round
from knowledge import Database, import_labels
from market_monitor.data import LABELS, Tweet
from market_monitor.flow import DECISION_AGENT, SENTIMENT_AGENT

__all__ = [
    "ANALYST",
    "policy_config",
    "policy_round",
    "record_labels",
    "sentiment_config",
    "sentiment_round",
]

ANALYST = "analyst"


def sentiment_config(out_dir: Path, *, epochs: int, seed: int, base_model: str = "") -> TrainConfig:
    """The sentiment classifier's training settings."""
    return TrainConfig(
        out_dir=str(out_dir),
        base_model=base_model,
        epochs=epochs,
        batch_size=32,
        lr=1e-4,
        head_lr=3e-3,
        max_length=64,
        label_smoothing=0.1,
        patience=epochs,
        seed=seed,
    )


def policy_config(out_dir: Path, *, epochs: int, seed: int, base_model: str = "") -> TrainConfig:
    """The alert policy's training settings (its text is the signals, then the tweet)."""
    return TrainConfig(
        out_dir=str(out_dir),
        base_model=base_model,
        epochs=epochs,
        batch_size=8,  # a few dozen labels at first: small batches give enough steps
        lr=2e-4,
        head_lr=3e-3,
        max_length=96,
        label_smoothing=0.1,
        patience=epochs,  # few labels: the validation split is noisy, train every epoch
        metric="macro_f1",
        seed=seed,
    )


def record_labels(
    database: Database, agent: str, examples: Sequence[tuple[str, str]], labels: Sequence[str]
) -> int:
    """Store labelled texts as ``agent``'s examples (the analyst's), before it has a model."""
    with database.transaction() as session:
        import_labels(session, agent, list(examples), author=ANALYST, label_set=list(labels))
    return len(examples)


def sentiment_round(database: Database, tweets: Sequence[Tweet], config: TrainConfig) -> JobResult:
    """Import the training tweets and train, gate and promote the first sentiment model."""
    record_labels(database, SENTIMENT_AGENT, [(t.text, t.sentiment) for t in tweets], LABELS)
    gate = GateConfig(metric="accuracy")
    return run_round(database, SENTIMENT_AGENT, config=config, gate_config=gate, actor="monitor")


def policy_round(database: Database, config: TrainConfig) -> JobResult:
    """One recorded round of the alert policy.

    The gate compares macro F1 over alert and hold on the frozen holdout, and guards the
    alert label's F1. A candidate that is no worse serves (margin 0): it learnt from more of
    the analysts' verdicts, and the holdout of a few hundred decisions often cannot tell two
    good policies apart.
    """
    gate = GateConfig(
        metric="macro_f1", margin_points=0.0, guarded_labels=("alert",), tolerance_points=0.0
    )
    return run_round(
        database, DECISION_AGENT, config=config, gate_config=gate, actor="monitor", min_per_class=4
    )
