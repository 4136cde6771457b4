"""BIO tagging between character spans and tokens, through a fast tokenizer's offsets.

The unit of tagging is the *word* as the tokenizer's pre-tokenizer splits the text (BERT:
whitespace and punctuation; ``word_ids()`` of a fast tokenizer). Only the **first subword of
each word** carries a training label; its other pieces, the special tokens and padding get
``IGNORE`` (-100, skipped by ``cross_entropy``), and at inference a word takes the tag
predicted on its first piece. A word therefore has one tag, so an entity is always a run of
whole words and never ends inside one.

Decoding merges ``B-x I-x ...`` runs of words into character spans (an ``I-x`` that does not
continue an ``x`` opens a new entity, as in CoNLL evaluation), then widens each span to the
letters and digits touching it, so a span never cuts a word of the original text in half
even where the pre-tokenizer split inside one (CJK characters, for instance).

Pure Python: no torch, so the span logic is testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["IGNORE", "OUTSIDE", "Span", "Word", "align_labels", "bio_tags", "decode", "words_of"]

IGNORE = -100
OUTSIDE = "O"


@dataclass(frozen=True)
class Word:
    """One pre-tokenizer word: its character range and the index of its first token."""

    start: int
    end: int
    token: int


@dataclass(frozen=True)
class Span:
    """A typed character span ``[start, end)`` with a confidence (1.0 for gold spans)."""

    type: str
    start: int
    end: int
    confidence: float = 1.0


def bio_tags(types: Sequence[str]) -> list[str]:
    """The tag list for some entity types: ``O`` then ``B-t``, ``I-t`` for each type."""
    if len(set(types)) != len(types) or not all(types):
        raise ValueError(f"entity types must be unique and non-empty, got {list(types)}")
    return [OUTSIDE] + [f"{prefix}-{name}" for name in types for prefix in ("B", "I")]


def words_of(word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> list[Word]:
    """Group tokens into words: consecutive tokens with the same word id.

    Args:
        word_ids: The tokenizer's ``word_ids()`` (None for special tokens).
        offsets: Each token's ``(start, end)`` characters (``return_offsets_mapping``).
    """
    words: list[Word] = []
    previous: int | None = None
    for index, (word, (start, end)) in enumerate(zip(word_ids, offsets, strict=True)):
        if word is None:
            previous = None
            continue
        if word == previous and words:
            last = words[-1]
            words[-1] = Word(last.start, max(last.end, end), last.token)
        else:
            words.append(Word(start, end, index))
        previous = word
    return words


def align_labels(
    word_ids: Sequence[int | None],
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[Span],
    tags: Sequence[str],
) -> list[int]:
    """Token labels for training: tag indices on first subwords, ``IGNORE`` elsewhere.

    A word overlapping a span is inside it; the first such word is ``B-``, the rest ``I-``.
    Spans whose type has no tag are ignored (their words are ``O``).

    Args:
        word_ids: The tokenizer's ``word_ids()`` for one text.
        offsets: The tokens' character offsets.
        spans: Gold spans on the text.
        tags: The tag list (``bio_tags``), index = label id.
    """
    index = {tag: i for i, tag in enumerate(tags)}
    labels = [IGNORE] * len(word_ids)
    words = words_of(word_ids, offsets)
    for word in words:
        labels[word.token] = index[OUTSIDE]
    for span in spans:
        if f"B-{span.type}" not in index:
            continue
        inside = [w for w in words if w.start < span.end and w.end > span.start]
        for position, word in enumerate(inside):
            prefix = "B" if position == 0 else "I"
            labels[word.token] = index[f"{prefix}-{span.type}"]
    return labels


def decode(
    text: str, words: Sequence[Word], tags: Sequence[str], scores: Sequence[float]
) -> list[Span]:
    """Merge per-word tags into entity spans on ``text``.

    Args:
        text: The original text (the offsets index into it).
        words: Its words (``words_of``).
        tags: The tag of each word.
        scores: The probability of each word's tag; an entity's confidence is their mean.

    Returns:
        Non-overlapping spans in text order, each widened to whole words.
    """
    runs: list[tuple[str, list[int]]] = []
    for position, tag in enumerate(tags):
        if tag == OUTSIDE:
            continue
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and runs and runs[-1][0] == kind and runs[-1][1][-1] == position - 1:
            runs[-1][1].append(position)
        else:
            runs.append((kind, [position]))
    spans: list[Span] = []
    for kind, members in runs:
        start, end = _whole_words(text, words[members[0]].start, words[members[-1]].end)
        confidence = min(1.0, sum(scores[m] for m in members) / len(members))
        if spans and start < spans[-1].end:
            # Widening reached the previous entity (one word split by the pre-tokenizer):
            # the word stays in one entity, the first one's type.
            last = spans[-1]
            spans[-1] = Span(last.type, last.start, max(end, last.end), last.confidence)
        else:
            spans.append(Span(kind, start, end, confidence))
    return spans


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end
