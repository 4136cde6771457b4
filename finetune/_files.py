"""Labelled examples from the user's own files, and their stratified train/validation split.

Formats (the text and label columns are named by the caller):

* ``.csv``: a header row, then one example per row. A multi-label row lists its labels
  separated by ``|`` (``card|fees``); an empty cell means no label applies.
* ``.jsonl``: one JSON object per line (blank lines skipped). A label is a string, or for
  multi-label a list of strings (a string is one label; an empty list, none). For token
  classification (``read_spans``, ``.jsonl`` only) the label field lists the text's
  entities, each ``{"type": "date", "start": 10, "end": 19}``: character offsets
  ``[start, end)`` on the text (an empty list: no entity).

Every problem is reported as a ``TrainingDataError`` naming the file, the line and the
column, with the columns present, so a typo in ``--label-column`` is fixed at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agents._bio import Span
from finetune._data import Example, SpanExample
from finetune._errors import TrainingDataError
from finetune._feedback_data import _share

__all__ = [
    "FORMATS",
    "LABEL_SEPARATOR",
    "label_names",
    "read_labelled",
    "read_spans",
    "split_examples",
]

FORMATS = (".csv", ".jsonl")
LABEL_SEPARATOR = "|"  # between the labels of a multi-label CSV cell
SPAN_KEYS = ("type", "start", "end")

AnyLabelled = TypeVar("AnyLabelled", bound=Example | SpanExample)


def read_labelled(
    path: str | Path, *, text_column: str, label_column: str, multi_label: bool = False
) -> list[Example]:
    """Read labelled texts from a ``.csv`` or ``.jsonl`` file.

    Args:
        path: The file.
        text_column: The CSV column / JSON field holding the text.
        label_column: The CSV column / JSON field holding the label(s).
        multi_label: Read label sets (``|``-separated in CSV, lists in JSONL).

    Returns:
        One example per row, in file order.

    Raises:
        TrainingDataError: The file is missing, empty, of another format, not parseable,
            lacks a column, or a row has an empty text or (single-label) an empty label.
    """
    file = _checked(path, FORMATS)
    rows = _csv_rows(file) if file.suffix.lower() == ".csv" else _jsonl_rows(file)
    examples = [
        _example(file, line, row, text_column, label_column, multi_label) for line, row in rows
    ]
    return _not_empty(file, examples)


def read_spans(path: str | Path, *, text_column: str, label_column: str) -> list[SpanExample]:
    """Read texts with their entity spans from a ``.jsonl`` file (token classification).

    Raises:
        TrainingDataError: As ``read_labelled``, and a label field that is not a list of
            ``{"type", "start", "end"}`` objects with integer offsets.
    """
    file = _checked(path, (".jsonl",))
    examples = []
    for line, row in _jsonl_rows(file):
        text, value = _cells(f"'{file}' line {line}", row, text_column, label_column)
        examples.append(SpanExample(text, _spans(f"'{file}' line {line}", value)))
    return _not_empty(file, examples)


def _checked(path: str | Path, formats: tuple[str, ...]) -> Path:
    file = Path(path)
    if file.suffix.lower() not in formats:
        raise TrainingDataError(
            f"Cannot read '{file}': unsupported file type '{file.suffix}'. "
            f"Supported: {', '.join(formats)}."
        )
    if not file.is_file():
        raise TrainingDataError(f"Cannot read '{file}': no such file.")
    return file


def _not_empty(file: Path, examples: list[AnyLabelled]) -> list[AnyLabelled]:
    if not examples:
        raise TrainingDataError(f"'{file}' holds no examples. Add one labelled text per row.")
    return examples


def _csv_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def _jsonl_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with file.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(
                    f"'{file}' line {line} is not valid JSON ({exc.msg}). Each line must be "
                    "one JSON object."
                ) from exc
            if not isinstance(row, dict):
                raise TrainingDataError(
                    f"'{file}' line {line} is a JSON {type(row).__name__}, not an object with "
                    "text and label fields."
                )
            yield line, row


def _example(
    file: Path, line: int, row: dict[str, Any], text_column: str, label_column: str, multi: bool
) -> Example:
    where = f"'{file}' line {line}"
    text, value = _cells(where, row, text_column, label_column)
    labels = _labels(value, multi)
    if multi:
        return Example(text, labels)
    if len(labels) != 1:
        raise TrainingDataError(
            f"{where}: column '{label_column}' holds {len(labels)} labels; a single-label task "
            "needs exactly one. Use --task multi-label-classification for label sets."
        )
    return Example(text, labels[0])


def _cells(where: str, row: dict[str, Any], text_column: str, label_column: str) -> tuple[str, Any]:
    """A row's text (stripped, not empty) and its raw label value."""
    for column in (text_column, label_column):
        if column not in row:
            present = ", ".join(str(name) for name in row if name is not None) or "(none)"
            raise TrainingDataError(
                f"{where} has no column '{column}'. Columns present: {present}. "
                "Name the right ones with --text-column and --label-column."
            )
        if row[column] is None:  # a CSV row shorter than the header, or a JSON null
            raise TrainingDataError(f"{where} has no value in column '{column}'.")
    text = str(row[text_column]).strip()
    if not text:
        raise TrainingDataError(f"{where}: the text in column '{text_column}' is empty.")
    return text, row[label_column]


def _spans(where: str, value: Any) -> tuple[Span, ...]:
    """Entity objects as spans; their fit to the text is checked before training."""

    def well_formed(item: Any) -> bool:
        return (
            isinstance(item, dict)
            and set(SPAN_KEYS) <= set(item)
            and isinstance(item["type"], str)
            and all(type(item[k]) is int for k in ("start", "end"))
        )

    if not isinstance(value, list) or not all(well_formed(item) for item in value):
        raise TrainingDataError(
            f"{where}: the entities must be a list of objects like "
            '{"type": "date", "start": 10, "end": 19} (character offsets [start, end) on the '
            f"text), got {json.dumps(value)[:120]}."
        )
    return tuple(Span(item["type"], item["start"], item["end"]) for item in value)


def _labels(value: Any, multi: bool) -> tuple[str, ...]:
    if isinstance(value, list):
        names = [str(v).strip() for v in value]
    elif multi and isinstance(value, str):
        names = value.split(LABEL_SEPARATOR)
    else:
        names = [str(value)]
    return tuple(name.strip() for name in names if name.strip())


def split_examples(
    examples: Sequence[AnyLabelled], val_fraction: float, *, seed: int
) -> tuple[list[AnyLabelled], list[AnyLabelled]]:
    """Split off a stratified, seeded validation set: (train, validation).

    The order within each label is a seeded hash of the example, so the split depends on
    the seed and the file's contents, not on its row order. Each label (multi-label: each
    label set; ``SpanExample``: each set of entity types) gives about ``val_fraction`` of
    its examples, at least one, but never so many that fewer than two stay in training,
    where the loop needs two to learn a label.

    Raises:
        TrainingDataError: ``val_fraction`` is outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise TrainingDataError(f"--val-fraction must be in (0, 1), got {val_fraction}.")
    groups: dict[str, list[AnyLabelled]] = defaultdict(list)
    for example in examples:
        groups[_stratum(example)].append(example)
    train: list[AnyLabelled] = []
    val: list[AnyLabelled] = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda e: _seeded_hash(seed, e))
        taken = min(_share(len(group), val_fraction), max(len(group) - 2, 0))
        val.extend(group[:taken])
        train.extend(group[taken:])
    return train, val


def label_names(example: Example | SpanExample) -> set[str]:
    """An example's labels; a ``SpanExample``'s entity types."""
    if isinstance(example, Example):
        return set(example.label_set())
    return {span.type for span in example.spans}


def _stratum(example: Example | SpanExample) -> str:
    return LABEL_SEPARATOR.join(sorted(label_names(example)))


def _seeded_hash(seed: int, example: Example | SpanExample) -> str:
    if isinstance(example, Example):
        labels = LABEL_SEPARATOR.join(example.label_set())
    else:
        labels = ";".join(f"{s.type}:{s.start}:{s.end}" for s in example.spans)
    return hashlib.sha256(f"{seed}\x00{example.text}\x00{labels}".encode()).hexdigest()
