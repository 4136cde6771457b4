"""The demo's data: Banking77 tickets, NLU++ slot examples and the help articles.

Everything is read from the files shipped in ``examples/data`` (no download). Splits are
stratified by intent and fixed by the seed: each intent's texts are sorted, shuffled by a
seeded generator, and cut into the seed labels, the policy's calibration tickets and the
pool the ticket stream is drawn from, so no ticket ever shown to the workflow was trained on
before a reviewer labelled it.
"""

from __future__ import annotations

import csv
import json
import random
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune import Span, SpanExample

__all__ = [
    "ARTICLES_FILE",
    "DATA_DIR",
    "SLOT_TYPES",
    "Splits",
    "TicketRow",
    "fill_article",
    "load_articles",
    "load_banking77",
    "load_slot_examples",
    "split_tickets",
]

HERE = Path(__file__).parent
DATA_DIR = HERE.parent / "data"
ARTICLES_FILE = HERE / "articles.json"
# NLU++ slot types the extractor learns: the three the articles fill, and three that help
# it tell them apart (a date period is not a date, a time is not an amount).
SLOT_TYPES = ("amount_of_money", "date", "company_name", "date_period", "time", "person_name")
# Placeholder in an article -> the slot type that fills it, and the words used without one.
PLACEHOLDERS = {
    "amount": ("amount_of_money", "the amount"),
    "date": ("date", "the date you mentioned"),
    "company": ("company_name", "the merchant"),
}


@dataclass(frozen=True)
class TicketRow:
    """One customer message and its true intent (the reviewer's ground truth)."""

    text: str
    intent: str


@dataclass(frozen=True)
class Splits:
    """Disjoint, intent-stratified parts of Banking77.

    Attributes:
        seed: The first labels, ``seed_per_intent`` per intent.
        calibration: Tickets the policy model is trained on (labelled at set-up).
        stream: The unseen tickets streamed through the workflow, shuffled.
        intents: The intents in play, sorted.
    """

    seed: list[TicketRow]
    calibration: list[TicketRow]
    stream: list[TicketRow]
    intents: list[str]


def load_banking77(path: Path | None = None) -> dict[str, list[str]]:
    """Banking77's texts by intent (``text,category`` CSV)."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with (path or DATA_DIR / "banking77" / "train.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_intent[row["category"]].append(row["text"])
    return dict(by_intent)


def split_tickets(
    by_intent: Mapping[str, Sequence[str]],
    *,
    seed_per_intent: int,
    calibration_per_intent: int,
    tickets: int,
    seed: int,
    intents: Sequence[str] | None = None,
) -> Splits:
    """Cut each intent's texts into seed, calibration and stream, fixed by ``seed``.

    Args:
        by_intent: Texts by intent.
        seed_per_intent: Labelled texts per intent to train the first model on.
        calibration_per_intent: Texts per intent to train the policy model on.
        tickets: How many tickets to stream (at most what is left).
        seed: Fixes the split and the stream's order.
        intents: Use only these intents (default: all).

    Returns:
        The splits.

    Raises:
        ValueError: An intent has too few texts for the seed and calibration parts.
    """
    chosen = sorted(intents if intents is not None else by_intent)
    rng = random.Random(seed)
    first, calibration, pool = [], [], []
    for intent in chosen:
        texts = sorted(by_intent[intent])
        need = seed_per_intent + calibration_per_intent + 1
        if len(texts) < need:
            raise ValueError(f"Intent '{intent}' has {len(texts)} texts; the split needs {need}.")
        rng.shuffle(texts)
        rows = [TicketRow(text, intent) for text in texts]
        cut = seed_per_intent + calibration_per_intent
        first += rows[:seed_per_intent]
        calibration += rows[seed_per_intent:cut]
        pool += rows[cut:]
    rng.shuffle(pool)
    return Splits(first, calibration, pool[:tickets], chosen)


def load_articles(path: Path = ARTICLES_FILE, *, intents: Sequence[str] = ()) -> dict[str, str]:
    """The help articles: one per intent, with ``{amount}``, ``{date}``, ``{company}``.

    Raises:
        ValueError: An article uses another placeholder, or one of ``intents`` has none.
    """
    articles: dict[str, str] = json.loads(path.read_text("utf-8"))
    missing = sorted(set(intents) - set(articles))
    if missing:
        raise ValueError(f"{path} has no article for the intent(s) {', '.join(missing)}.")
    known = set(PLACEHOLDERS)
    for intent, body in articles.items():
        names = {name for _, name, _, _ in string.Formatter().parse(body) if name}
        if not names <= known:
            raise ValueError(
                f"Article '{intent}' uses unknown placeholders {sorted(names - known)}; "
                f"known: {', '.join(sorted(known))}."
            )
    return articles


def fill_article(template: str, slots: Mapping[str, str]) -> str:
    """The article with each placeholder filled from ``slots`` (by slot type), else a phrase.

    Args:
        template: An article from ``load_articles``.
        slots: Extracted text by slot type, e.g. ``{"amount_of_money": "$20"}``.
    """
    values = {name: slots.get(kind) or default for name, (kind, default) in PLACEHOLDERS.items()}
    return template.format_map(values)


def load_slot_examples(folds: Sequence[int], *, keep_empty_every: int = 4) -> list[SpanExample]:
    """NLU++ banking sentences with their spans of ``SLOT_TYPES`` (others dropped).

    Every sentence with a span is kept, and one in ``keep_empty_every`` of the others, so the
    model still learns what is not a slot while training stays short.
    """
    examples = []
    index = 0
    for fold in folds:
        rows = json.loads((DATA_DIR / "nlupp_banking" / f"fold{fold}.json").read_text("utf-8"))
        for row in rows:
            spans = sorted(
                (
                    Span(kind, *slot["span"])
                    for kind, slot in row.get("slots", {}).items()
                    if kind in SLOT_TYPES
                ),
                key=lambda span: span.start,
            )
            index += 1
            if spans or index % keep_empty_every == 0:
                examples.append(SpanExample(row["text"], tuple(spans)))
    return examples
