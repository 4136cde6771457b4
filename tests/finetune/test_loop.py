"""The training loop on a tiny random-init BERT (with MiniLM's tokenizer) and a toy task.

The toy task is learnable in seconds: a text's label is which keyword family it contains
("card" words or "rate" words) among shared filler words.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from agents import ClassifierInput, RunContext, TextClassifier
from finetune import (
    Example,
    TrainConfig,
    TrainConfigError,
    TrainingDataError,
    TrainResult,
    evaluate,
    train,
)

FILLER = ["please", "help", "me", "with", "my", "account", "today", "now", "the", "a"]
WORDS = {"card": ["card", "visa", "debit"], "rate": ["rate", "exchange", "currency"]}


def _texts(rng: random.Random, words: list[str], n: int) -> list[str]:
    return [
        " ".join(rng.sample(FILLER, rng.randint(1, 5)) + rng.sample(words, 1) + FILLER[:2])
        for _ in range(n)
    ]


def _split(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [Example(t, label) for label, words in WORDS.items() for t in _texts(rng, words, n)]


TRAIN, VAL = _split(24, seed=1), _split(8, seed=2)


def _config(out: Path, base: str, **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out_dir": str(out),
        "base_model": base,
        "epochs": 3,
        "batch_size": 4,
        "lr": 3e-3,
        "head_lr": 3e-2,
        "max_length": 32,
    }
    return TrainConfig(**(settings | overrides))


def _metrics(result: TrainResult) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads(result.metrics_path.read_text("utf-8"))
    return metrics


def _losses(result: TrainResult) -> list[float]:
    return [epoch["train_loss"] for epoch in _metrics(result)["epochs"]]


@pytest.fixture(scope="module")
def baseline(base: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """An uninterrupted run that the determinism and resume tests reproduce."""
    out = tmp_path_factory.mktemp("baseline")
    return train(_config(out, base, grad_accum=2, checkpoint_every_steps=2), TRAIN, VAL)


def test_learns_the_toy_task_and_records_the_run(baseline: TrainResult) -> None:
    metrics = _metrics(baseline)
    losses = _losses(baseline)

    assert losses[-1] < losses[0]
    assert baseline.best_metric >= 0.9
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["best_epoch"] == baseline.best_epoch
    assert metrics["config"]["grad_accum"] == 2
    assert metrics["mixed_precision"] == "no"
    assert metrics["validation_report"]["per_label"]["card"]["support"] == 8
    assert all(e["examples_per_s"] > 0 for e in metrics["epochs"])
    assert not (baseline.metrics_path.parent / "checkpoint").exists()


def test_the_saved_artifact_serves_what_was_validated(baseline: TrainResult) -> None:
    served = evaluate(baseline.model_dir, [e.text for e in VAL], [e.label_set() for e in VAL])

    assert served == baseline.report
    agent = TextClassifier(str(baseline.model_dir))
    out = agent.run(ClassifierInput(text="my visa card"), RunContext("r", "s"))
    assert out.model_sha256 == baseline.sha256
    assert agent.loaded.meta.temperature == pytest.approx(baseline.temperature)
    assert agent.loaded.meta.base_model == _metrics(baseline)["config"]["base_model"]


def test_the_same_seed_gives_the_same_run(baseline: TrainResult, base: str, tmp_path: Path) -> None:
    again = train(_config(tmp_path, base, grad_accum=2, checkpoint_every_steps=2), TRAIN, VAL)

    assert again.sha256 == baseline.sha256
    assert _losses(again) == _losses(baseline)


def test_label_smoothing_changes_training(baseline: TrainResult, base: str, tmp_path: Path) -> None:
    config = _config(tmp_path, base, grad_accum=2, checkpoint_every_steps=2, label_smoothing=0.3)

    smoothed = train(config, TRAIN, VAL)

    assert smoothed.sha256 != baseline.sha256
    assert _losses(smoothed) != _losses(baseline)
    # Targets of 0.85/0.15 (0.3 spread over 2 labels): the loss cannot fall below their
    # entropy, 0.423 (plain cross-entropy has no floor above 0).
    assert min(_losses(smoothed)) > 0.42
    assert _metrics(smoothed)["config"]["label_smoothing"] == 0.3
    assert smoothed.best_metric >= 0.9  # still learns the task


class _InterruptedError(Exception):
    pass


@pytest.mark.parametrize(
    ("crash_at", "resumed_at"),
    [
        (9, 8),  # 6 steps an epoch: checkpointed at step 8, 4 batches into epoch 2
        (7, 6),  # the last checkpoint is epoch 1's end
    ],
)
def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(
    crash_at: int, resumed_at: int, baseline: TrainResult, base: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, base, grad_accum=2, checkpoint_every_steps=2)

    def crash(step: int) -> None:
        if step == crash_at:
            raise _InterruptedError

    with pytest.raises(_InterruptedError):
        train(config, TRAIN, VAL, on_step=crash)
    resumed = train(config, TRAIN, VAL, resume=True)

    assert _metrics(resumed)["resumed_at_step"] == resumed_at
    assert resumed.sha256 == baseline.sha256
    assert _losses(resumed) == _losses(baseline)


def test_resuming_with_another_config_is_refused(base: str, tmp_path: Path) -> None:
    def crash(step: int) -> None:
        raise _InterruptedError

    with pytest.raises(_InterruptedError):
        train(_config(tmp_path, base, checkpoint_every_steps=1), TRAIN, VAL, on_step=crash)
    with pytest.raises(TrainConfigError, match="differs in checkpoint_every_steps, lr"):
        train(_config(tmp_path, base, lr=1e-3), TRAIN, VAL, resume=True)


def test_early_stopping_keeps_the_best_epoch(base: str, tmp_path: Path) -> None:
    result = train(_config(tmp_path, base, epochs=12, patience=1), TRAIN, VAL)
    history = [e["val_accuracy"] for e in _metrics(result)["epochs"]]

    assert result.stopped_early
    assert result.epochs_run == len(history) < 12
    assert result.best_epoch == history.index(max(history)) + 1 == len(history) - 1
    assert result.report.accuracy == max(history)


def test_gradient_accumulation_approximates_the_larger_batch(base: str, tmp_path: Path) -> None:
    settings: dict[str, Any] = {"epochs": 2}
    small = train(_config(tmp_path / "a", base, batch_size=4, grad_accum=2, **settings), TRAIN, VAL)
    large = train(_config(tmp_path / "b", base, batch_size=8, **settings), TRAIN, VAL)

    assert _losses(small) == pytest.approx(_losses(large), abs=0.08)


def test_the_head_tier_leaves_the_encoder_unchanged(base: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file  # noqa: PLC0415 - heavy

    result = train(_config(tmp_path, base, tier="head", epochs=2), TRAIN, VAL)
    trained = load_file(str(result.model_dir / "model.safetensors"))
    original = load_file(str(Path(base) / "model.safetensors"))

    encoder = {
        k.removeprefix("encoder."): v for k, v in trained.items() if k.startswith("encoder.")
    }
    assert encoder.keys() == original.keys()
    assert all(encoder[k].equal(original[k]) for k in original)
    assert {k for k in trained if not k.startswith("encoder.")} == {"head.weight", "head.bias"}
    assert _losses(result)[1] < _losses(result)[0]  # the head did learn


def test_multi_label_training_serves_label_sets(base: str, tmp_path: Path) -> None:
    both = [
        Example(f"{a.text} {b.text}", ("card", "rate"))
        for a, b in zip(TRAIN[:24], TRAIN[24:], strict=True)
    ]
    data = [Example(e.text, (str(e.label),)) for e in TRAIN] + both[:12]
    val = [Example(e.text, (str(e.label),)) for e in VAL] + both[12:16]
    config = _config(tmp_path, base, task="multi_label", metric="micro_f1", epochs=4)

    result = train(config, data, val)
    served = evaluate(result.model_dir, [e.text for e in val], [e.label_set() for e in val])

    assert TextClassifier(str(result.model_dir)).loaded.meta.task == "multi_label"
    assert result.best_metric >= 0.8
    assert served.per_label["rate"].support == 8 + 4
    assert served.micro_f1 >= 0.7


@pytest.mark.parametrize(
    ("train_set", "val_set", "message"),
    [
        ([], VAL, "The training set is empty"),
        (TRAIN, [], "The validation set is empty"),
        (TRAIN, [*VAL, Example("fx", "loan")], "Validation label.s. loan never occur"),
        ([*TRAIN, Example("a loan", "loan")], VAL, "Label.s. loan have fewer than 2"),
        ([*TRAIN, Example("both", ("card", "rate"))], VAL, "no label or several"),
    ],
)
def test_bad_data_fails_before_any_model_is_loaded(
    train_set: list[Example], val_set: list[Example], message: str, tmp_path: Path
) -> None:
    config = TrainConfig(out_dir=str(tmp_path), base_model=str(tmp_path / "missing"))

    with pytest.raises(TrainingDataError, match=message):
        train(config, train_set, val_set)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "ner"}, "Unknown task 'ner'.*single_label, multi_label, token_classification"),
        ({"task": "embedding", "tier": "head"}, "tier 'head' trains nothing for task 'embedding'"),
        ({"tier": "qlora"}, "Unknown tier 'qlora' in TrainConfig. Valid: full, lora, head"),
        ({"lora_r": 0, "lora_dropout": 1.0}, "lora_r must be >= 1;.*lora_dropout must be in"),
        ({"metric": "auc"}, "Unknown metric 'auc'"),
        ({"epochs": 0, "warmup_ratio": 1.0}, "epochs must be >= 1; warmup_ratio"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\)"),
    ],
)
def test_bad_configs_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        TrainConfig(out_dir="out", **overrides)


def test_a_finished_out_dir_is_not_overwritten(baseline: TrainResult) -> None:
    config = TrainConfig(out_dir=str(baseline.model_dir.parent))

    with pytest.raises(TrainConfigError, match="exists already"):
        train(config, TRAIN, VAL)
