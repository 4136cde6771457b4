"""The contrastive warm-up (``TrainConfig.contrastive_epochs``) and grouped pairs.

Toy texts (one topic word among filler words) and the tiny random-init ``base`` model keep
each run to seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import finetune._warmup as warmup
from finetune import (
    Example,
    PairExample,
    TrainConfig,
    TrainConfigError,
    TrainingDataError,
    train,
)
from finetune._data import check_pair_examples
from finetune._tasks import dataset_rows
from finetune._warmup import contrastive_pairs

FILLER = ["please", "help", "me", "with", "my", "account", "today", "now"]
TOPICS = {"card": ["card", "visa", "debit"], "rate": ["rate", "exchange", "currency"]}


def _examples(per_label: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(" ".join([*rng.sample(FILLER, 3), rng.choice(words)]), label)
        for label, words in TOPICS.items()
        for _ in range(per_label)
    ]


def _config(out: Path, base: str, **changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out_dir": str(out),
        "base_model": base,
        "epochs": 2,
        "batch_size": 4,
        "max_length": 16,
        "lr": 3e-3,
        "head_lr": 3e-2,
        "contrastive_epochs": 2,
    }
    return TrainConfig(**(settings | changes))


def test_pairs_join_texts_of_one_label_and_are_drawn_by_seed() -> None:
    examples = [*_examples(4, seed=1), Example("alone here", "lonely")]

    pairs = contrastive_pairs(examples, seed=0)

    label_of = {e.text: e.label for e in examples}
    assert len(pairs) == len(examples)
    assert all(label_of[p.query] == label_of[p.passage] == p.group for p in pairs)
    assert all(p.query != p.passage for p in pairs if p.group != "lonely")
    assert [p for p in pairs if p.group == "lonely"] == [
        PairExample("alone here", "alone here", group="lonely")
    ]
    assert contrastive_pairs(examples, seed=0) == pairs
    assert contrastive_pairs(examples, seed=1) != pairs


def test_each_text_gets_several_distinct_partners_when_its_label_has_them() -> None:
    examples = _examples(4, seed=1)

    pairs = contrastive_pairs(examples, seed=0, per_text=5)

    partners: dict[str, list[str]] = {}
    for pair in pairs:
        partners.setdefault(pair.query, []).append(pair.passage)
    # 3 others per label (asked 5), each once, never the text itself.
    assert all(len(set(p)) == len(p) == 3 for p in partners.values())
    assert all(query not in p for query, p in partners.items())


def test_a_group_is_the_answer_key_of_its_pairs(base: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer  # noqa: PLC0415 - heavy

    pairs = [
        PairExample("a", "x", group="one"),
        PairExample("b", "y", group="one"),
        PairExample("c", "z"),
    ]
    rows, _ = dataset_rows(
        _config(tmp_path, base, task="embedding", contrastive_epochs=0),
        AutoTokenizer.from_pretrained(base),
        pairs,
        [],
    )

    assert [p.key for p in pairs] == ["one", "one", "z"]
    assert [row[2] for row in rows] == [0, 0, 1]  # same group, same id: never a negative
    with pytest.raises(TrainingDataError, match="single distinct passage"):
        check_pair_examples(pairs[:2], pairs[:2])


@pytest.mark.parametrize(
    "changes",
    [
        {"contrastive_epochs": -1},
        {"contrastive_epochs": 1, "task": "multi_label"},
        {"label_smoothing": 0.1, "contrastive_epochs": 1, "task": "token_classification"},
    ],
)
def test_bad_warm_up_settings_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(TrainConfigError, match="contrastive_epochs"):
        TrainConfig(out_dir="out", **changes)


def test_the_classifier_starts_from_the_warmed_up_encoder(base: str, tmp_path: Path) -> None:
    config = _config(tmp_path, base, contrastive_epochs=4)
    result = train(config, _examples(16, seed=1), _examples(8, seed=2))

    encoder = tmp_path / "warmup" / "encoder"
    warm = json.loads((tmp_path / "warmup" / "run" / "metrics.json").read_text("utf-8"))
    recorded = json.loads(result.metrics_path.read_text("utf-8"))["config"]
    assert (encoder / "model.safetensors").is_file()
    assert warm["config"]["task"] == "embedding"
    assert warm["config"]["epochs"] == 4
    assert recorded["base_model"] == str(encoder)
    assert recorded["contrastive_epochs"] == 4
    print(f"warm-up group recall@1 {warm['best_metric']:.3f}, then {result.report.accuracy:.3f}")
    assert warm["best_metric"] >= 0.8  # texts of a topic found each other (chance: 0.5)
    assert result.report.accuracy >= 0.9


def test_a_resumed_run_does_not_warm_up_again(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, base, epochs=1)
    warmup.warm_up_encoder(config, _examples(6, seed=1), _examples(2, seed=2))
    calls: list[object] = []
    monkeypatch.setattr(warmup, "contrastive_pairs", lambda *args: calls.append(args) or [])

    again = warmup.warm_up_encoder(config, _examples(6, seed=1), _examples(2, seed=2))

    assert again == tmp_path / "warmup" / "encoder"
    assert calls == []
