"""The training loop's other two tasks, on a tiny random-init BERT and toy data.

Token classification: amounts ("£20", "$5") and payees among filler words, tagged as slots;
the artifact serves through ``agents.EntityExtractor``. The bi-encoder: queries that name a
topic by a synonym, paired with a help passage that shares none of their words; the
artifact serves through ``agents.Retriever`` over a SQLite knowledge base.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from agents import (
    EntityExtractor,
    ExtractorInput,
    Retriever,
    RetrieverInput,
    RunContext,
    save_artifact,
)
from finetune import (
    Example,
    PairExample,
    Span,
    SpanExample,
    TrainConfig,
    TrainingDataError,
    TrainResult,
    train,
)
from knowledge import Database, add_document

FILLER = ["please", "send", "me", "with", "my", "account", "today", "now", "the", "a"]
AMOUNTS = ["£20", "$5", "€300", "£7", "$45", "€12", "£150", "$9"]
PAYEES = ["alice", "bob", "carol", "dave"]


def _slot_text(rng: random.Random) -> SpanExample:
    """Filler, an amount, "to", a payee, filler; the spans found while building the text."""
    parts: list[tuple[str, str | None]] = [(w, None) for w in rng.sample(FILLER, 2)]
    parts += [(rng.choice(AMOUNTS), "amount"), ("to", None), (rng.choice(PAYEES), "payee")]
    parts += [(w, None) for w in rng.sample(FILLER, rng.randint(0, 2))]
    text, spans = "", []
    for word, kind in parts:
        start = len(text) + (1 if text else 0)
        text = f"{text} {word}" if text else word
        if kind:
            spans.append(Span(kind, start, start + len(word)))
    return SpanExample(text, tuple(spans))


def _slots(n: int, seed: int) -> list[SpanExample]:
    rng = random.Random(seed)
    return [_slot_text(rng) for _ in range(n)]


PASSAGES = {
    "card": "plastic arrives by post",
    "rate": "conversion between monies",
    "pin": "secret digits reset",
    "close": "leaving us for good",
}
SYNONYMS = {
    "card": ["card", "visa", "debit"],
    "rate": ["rate", "exchange", "currency"],
    "pin": ["pin", "code", "password"],
    "close": ["close", "terminate", "cancel"],
}


def _pairs(n: int, seed: int) -> list[PairExample]:
    rng = random.Random(seed)
    return [
        PairExample(" ".join([*rng.sample(FILLER, 2), rng.choice(words)]), PASSAGES[topic])
        for topic, words in SYNONYMS.items()
        for _ in range(n)
    ]


SLOT_TRAIN, SLOT_VAL = _slots(32, seed=1), _slots(16, seed=2)
PAIR_TRAIN, PAIR_VAL = _pairs(8, seed=1), _pairs(4, seed=2)
DATA = {
    "token_classification": (SLOT_TRAIN, SLOT_VAL),
    "embedding": (PAIR_TRAIN, PAIR_VAL),
}


# Pairs learn better in small batches: a batch of 8 over 4 passages masks most negatives.
TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "token_classification": {"epochs": 3, "batch_size": 4},
    "embedding": {"epochs": 4, "batch_size": 4},
}


def _config(out: Path, base: str, task: str, **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out_dir": str(out),
        "base_model": base,
        "task": task,
        "lr": 3e-3,
        "head_lr": 3e-2,
        "max_length": 32,
        "metric": "micro_f1",
        "checkpoint_every_steps": 4,
        "warmup_ratio": 0.0,
    }
    return TrainConfig(**(settings | TASK_SETTINGS[task] | overrides))


def _losses(result: TrainResult) -> list[float]:
    metrics = json.loads(result.metrics_path.read_text("utf-8"))
    return [epoch["train_loss"] for epoch in metrics["epochs"]]


@pytest.fixture(scope="module")
def runs(base: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    """One uninterrupted run per task, which the resume test reproduces."""
    return {
        task: train(_config(tmp_path_factory.mktemp(task), base, task), *DATA[task])
        for task in DATA
    }


def test_token_classification_learns_slots_and_serves_them(
    runs: dict[str, TrainResult],
) -> None:
    result = runs["token_classification"]
    agent = EntityExtractor(str(result.model_dir), sha256=result.sha256)
    ctxs = [RunContext("r", "extract", visit=i + 1) for i in range(len(SLOT_VAL))]
    outputs = agent.run_batch([ExtractorInput(text=e.text) for e in SLOT_VAL], ctxs)
    served = [[(e.type, e.start, e.end) for e in out.entities] for out in outputs]
    gold = [[(s.type, s.start, s.end) for s in e.spans] for e in SLOT_VAL]

    assert result.best_metric >= 0.9
    assert _losses(result)[-1] < _losses(result)[0]
    assert set(result.report.per_label) == {"amount", "payee"}
    assert result.report.per_label["amount"].support == len(SLOT_VAL)
    assert agent.loaded.meta.labels == ["O", "B-amount", "I-amount", "B-payee", "I-payee"]
    assert agent.loaded.meta.temperature == pytest.approx(result.temperature)
    # What the loop validated is what the agent serves: the same exact-span accuracy.
    exact = sum(s == g for s, g in zip(served, gold, strict=True)) / len(gold)
    assert exact == pytest.approx(result.report.accuracy)


def _recall_at_1(model_dir: Path, database_path: Path) -> float:
    agent = Retriever(str(model_dir), k=1)
    database = Database(f"sqlite:///{database_path}")
    with database.transaction() as session:
        for topic, text in PASSAGES.items():
            add_document(session, text, source=topic, title=topic, embedder=agent.embedder)
    ctxs = [
        RunContext("r", "retrieve", visit=i + 1, knowledge=database) for i in range(len(PAIR_VAL))
    ]
    outputs = agent.run_batch([RetrieverInput(query=p.query) for p in PAIR_VAL], ctxs)
    hits = [
        PASSAGES[out.evidence[0].source] == pair.passage
        for out, pair in zip(outputs, PAIR_VAL, strict=True)
    ]
    return sum(hits) / len(hits)


def test_the_bi_encoder_learns_pairs_and_serves_as_a_retriever(
    runs: dict[str, TrainResult], base: str, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415 - heavy

    from agents.models import BiEncoder  # noqa: PLC0415 - imports torch

    result = runs["embedding"]
    untrained = tmp_path / "untrained"
    save_artifact(
        BiEncoder(AutoModel.from_pretrained(base)),
        AutoTokenizer.from_pretrained(base),
        untrained,
        labels=[],
        task="embedding",
        max_length=32,
    )

    before = _recall_at_1(untrained, tmp_path / "before.db")
    after = _recall_at_1(result.model_dir, tmp_path / "after.db")

    print(f"toy pairs recall@1: untrained {before:.3f}, trained {after:.3f}")
    assert after == pytest.approx(result.report.accuracy)  # served as validated
    assert after >= 0.8
    assert after > before + 0.3
    assert result.temperature == 1.0
    assert len(result.report.per_label) == len(PASSAGES)


class _InterruptedError(Exception):
    pass


@pytest.mark.parametrize("task", sorted(DATA))
def test_a_resumed_run_ends_like_an_uninterrupted_one(
    task: str, runs: dict[str, TrainResult], base: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, base, task)

    def crash(step: int) -> None:
        if step == 5:  # after the checkpoint at step 4
            raise _InterruptedError

    with pytest.raises(_InterruptedError):
        train(config, *DATA[task], on_step=crash)
    resumed = train(config, *DATA[task], resume=True)

    metrics = json.loads(resumed.metrics_path.read_text("utf-8"))
    assert metrics["resumed_at_step"] == 4
    assert resumed.sha256 == runs[task].sha256
    assert _losses(resumed) == _losses(runs[task])


def _span(text: str, kind: str, start: int, end: int) -> SpanExample:
    return SpanExample(text, (Span(kind, start, end),))


@pytest.mark.parametrize(
    ("task", "train_set", "val_set", "message"),
    [
        ("token_classification", [_span("pay £5", "amount", 4, 9)], SLOT_VAL, "does not fit"),
        ("token_classification", [_span("pay £5", "", 4, 6)], SLOT_VAL, "does not fit"),
        (
            "token_classification",
            [SpanExample("pay £5", (Span("amount", 4, 6), Span("payee", 0, 5)))],
            SLOT_VAL,
            "overlap",
        ),
        ("token_classification", [SpanExample("hello")], SLOT_VAL, "No training example has"),
        ("token_classification", SLOT_TRAIN, [_span("hi x", "date", 3, 4)], "date never occur"),
        ("token_classification", PAIR_TRAIN, SLOT_VAL, "trains on SpanExample rows"),
        ("embedding", [PairExample("q", " ")], PAIR_VAL, "blank query or passage"),
        ("embedding", PAIR_TRAIN, PAIR_VAL[:3], "validation pairs have a single distinct"),
        ("embedding", PAIR_TRAIN, [], "validation set is empty"),
        ("single_label", PAIR_TRAIN, PAIR_VAL, "trains on Example rows"),
        ("embedding", [Example("a", "b")], PAIR_VAL, "trains on PairExample rows, got 1 Example"),
    ],
)
def test_bad_data_for_the_new_tasks_fails_before_any_model_is_loaded(
    task: str, train_set: list[Any], val_set: list[Any], message: str, tmp_path: Path
) -> None:
    config = TrainConfig(out_dir=str(tmp_path), base_model=str(tmp_path / "missing"), task=task)  # type: ignore[arg-type]

    with pytest.raises(TrainingDataError, match=message):
        train(config, train_set, val_set)
