"""Labelled examples from the user's own files, and their stratified train/validation split.

Formats (the text and label columns are named by the caller):

* ``.csv``: a header row, then one example per row. A multi-label row lists its labels
  separated by ``|`` (``card|fees``); an empty cell means no label applies.
* ``.jsonl``: one JSON object per line (blank lines skipped). A label is a string, or for
  multi-label a list of strings (a string is one label; an empty list, none).

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
from typing import Any

from finetune._data import Example
from finetune._errors import TrainingDataError
from finetune._feedback_data import _share

__all__ = ["FORMATS", "LABEL_SEPARATOR", "read_labelled", "split_examples"]

FORMATS = (".csv", ".jsonl")
LABEL_SEPARATOR = "|"  # between the labels of a multi-label CSV cell


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
    file = Path(path)
    if file.suffix.lower() not in FORMATS:
        raise TrainingDataError(
            f"Cannot read '{file}': unsupported file type '{file.suffix}'. "
            f"Supported: {', '.join(FORMATS)}."
        )
    if not file.is_file():
        raise TrainingDataError(f"Cannot read '{file}': no such file.")
    rows = _csv_rows(file) if file.suffix.lower() == ".csv" else _jsonl_rows(file)
    examples = [
        _example(file, line, row, text_column, label_column, multi_label) for line, row in rows
    ]
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
    labels = _labels(row[label_column], multi)
    if multi:
        return Example(text, labels)
    if len(labels) != 1:
        raise TrainingDataError(
            f"{where}: column '{label_column}' holds {len(labels)} labels; a single-label task "
            "needs exactly one. Use --task multi-label-classification for label sets."
        )
    return Example(text, labels[0])


def _labels(value: Any, multi: bool) -> tuple[str, ...]:
    if isinstance(value, list):
        names = [str(v).strip() for v in value]
    elif multi and isinstance(value, str):
        names = value.split(LABEL_SEPARATOR)
    else:
        names = [str(value)]
    return tuple(name.strip() for name in names if name.strip())


def split_examples(
    examples: Sequence[Example], val_fraction: float, *, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split off a stratified, seeded validation set: (train, validation).

    The order within each label is a seeded hash of the example, so the split depends on
    the seed and the file's contents, not on its row order. Each label (multi-label: each
    label set) gives about ``val_fraction`` of its examples,
    at least one, but never so many that fewer than two stay in training, where the loop
    needs two to learn a label.

    Raises:
        TrainingDataError: ``val_fraction`` is outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise TrainingDataError(f"--val-fraction must be in (0, 1), got {val_fraction}.")
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[LABEL_SEPARATOR.join(sorted(example.label_set()))].append(example)
    train: list[Example] = []
    val: list[Example] = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda e: _seeded_hash(seed, e))
        taken = min(_share(len(group), val_fraction), max(len(group) - 2, 0))
        val.extend(group[:taken])
        train.extend(group[taken:])
    return train, val


def _seeded_hash(seed: int, example: Example) -> str:
    labels = LABEL_SEPARATOR.join(example.label_set())
    return hashlib.sha256(f"{seed}\x00{example.text}\x00{labels}".encode()).hexdigest()
