"""The data shipped for examples and benchmarks is complete and attributed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

DATA = Path(__file__).parents[2] / "examples" / "data"


def test_banking77_has_every_intent_and_row() -> None:
    categories = json.loads((DATA / "banking77" / "categories.json").read_text())
    with (DATA / "banking77" / "train.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(categories) == 77
    assert len(rows) == 10_003
    assert {r["category"] for r in rows} == set(categories)
    assert all(r["text"].strip() for r in rows)


def test_nlupp_folds_have_valid_slot_spans() -> None:
    ontology = json.loads((DATA / "nlupp_banking" / "ontology.json").read_text())
    examples = [
        example
        for fold in range(15)
        for example in json.loads((DATA / "nlupp_banking" / f"fold{fold}.json").read_text())
    ]
    assert examples
    for example in examples:
        for name, slot in example.get("slots", {}).items():
            start, end = slot["span"]
            assert example["text"][start:end] == slot["text"], (name, example)
    assert "slots" in ontology


def test_fin_tweets_labels_and_licenses() -> None:
    with (DATA / "fin_tweets" / "train.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9_543
    assert {r["label"] for r in rows} == {"0", "1", "2"}
    assert "MIT License" in (DATA / "fin_tweets" / "LICENSE-MIT.txt").read_text()
    assert "Attribution 4.0" in (DATA / "LICENSE-CC-BY-4.0.txt").read_text()
    assert "CC BY 4.0" in (DATA / "README.md").read_text()
