"""Reading labelled CSV/JSONL files and splitting them for training."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from finetune import Example, Span, SpanExample, TrainingDataError
from finetune._files import read_labelled, read_spans, split_examples


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_become_examples_with_named_columns(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "d.csv", 'id,utterance,intent\n1,"lost, my card",card\n2,fx rate,rate\n'
    )

    examples = read_labelled(data, text_column="utterance", label_column="intent")

    assert examples == [Example("lost, my card", "card"), Example("fx rate", "rate")]


def test_multi_label_in_csv_is_pipe_separated_and_in_jsonl_a_list(tmp_path: Path) -> None:
    csv_file = _write(tmp_path / "d.csv", "text,labels\ncard and fee,card|fees\nhello,\n")
    jsonl = _write(
        tmp_path / "d.jsonl",
        json.dumps({"text": "card and fee", "labels": ["card", "fees"]})
        + "\n\n"
        + json.dumps({"text": "hello", "labels": []})
        + "\n"
        + json.dumps({"text": "rate", "labels": "rate"})
        + "\n",
    )
    columns = {"text_column": "text", "label_column": "labels", "multi_label": True}

    from_csv = read_labelled(csv_file, **columns)  # type: ignore[arg-type]
    from_jsonl = read_labelled(jsonl, **columns)  # type: ignore[arg-type]

    assert [e.label_set() for e in from_csv] == [("card", "fees"), ()]
    assert [e.label_set() for e in from_jsonl] == [("card", "fees"), (), ("rate",)]


def test_single_label_keeps_a_pipe_and_converts_json_numbers(tmp_path: Path) -> None:
    csv_file = _write(tmp_path / "d.csv", "text,label\nx,a|b\n")
    jsonl = _write(tmp_path / "d.jsonl", '{"text": "x", "label": 1}\n')

    assert read_labelled(csv_file, text_column="text", label_column="label")[0].label == "a|b"
    assert read_labelled(jsonl, text_column="text", label_column="label")[0].label == "1"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", "text,intent\nhi,card\n", r"'.*d.csv' line 2 has no column 'label'\. "
         r"Columns present: text, intent\. Name the right ones with --text-column"),
        ("d.jsonl", '{"text": "hi", "label": "a"}\n{"text": "yo"}\n',
         r"line 2 has no column 'label'\. Columns present: text\."),
        ("d.csv", "", r"holds no examples"),
        ("d.csv", "text,label\n", r"holds no examples"),
        ("d.jsonl", '{"text": "hi", "label": "a"}\nnot json\n', r"line 2 is not valid JSON"),
        ("d.jsonl", '["hi", "a"]\n', r"line 1 is a JSON list, not an object"),
        ("d.csv", "text,label\n ,card\n", r"line 2: the text in column 'text' is empty"),
        ("d.csv", "text,label\nhi,card\nshort\n", r"line 3 has no value in column 'label'"),
        ("d.csv", "text,label\nhi,\n", r"line 2: column 'label' holds 0 labels"),
        ("d.jsonl", '{"text": "hi", "label": ["a", "b"]}\n', r"holds 2 labels.*multi-label"),
        ("d.txt", "hi\n", r"unsupported file type '\.txt'\. Supported: \.csv, \.jsonl"),
    ],
)  # fmt: skip
def test_bad_files_name_the_file_line_and_column(
    name: str, content: str, message: str, tmp_path: Path
) -> None:
    data = _write(tmp_path / name, content)

    with pytest.raises(TrainingDataError, match=message):
        read_labelled(data, text_column="text", label_column="label")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"Cannot read '.*nope.csv': no such file"):
        read_labelled(tmp_path / "nope.csv", text_column="text", label_column="label")


def _dataset() -> list[Example]:
    sizes = {"a": 40, "b": 20, "c": 3, "d": 2}
    return [Example(f"{label} {i}", label) for label, n in sizes.items() for i in range(n)]


def test_the_split_is_stratified_seeded_and_leaves_two_of_each_label_to_train() -> None:
    data = _dataset()

    train, val = split_examples(data, 0.1, seed=7)
    again = split_examples(list(reversed(data)), 0.1, seed=7)
    other = split_examples(data, 0.1, seed=8)

    assert Counter(e.label for e in val) == {"a": 4, "b": 2, "c": 1}
    assert Counter(e.label for e in train) == {"a": 36, "b": 18, "c": 2, "d": 2}
    assert sorted(map(repr, train + val)) == sorted(map(repr, data))
    assert sorted(map(repr, again[1])) == sorted(map(repr, val))
    assert sorted(map(repr, other[1])) != sorted(map(repr, val))


def test_multi_label_sets_are_stratified_by_the_whole_set() -> None:
    data = [Example(f"x{i}", ("a", "b")) for i in range(10)] + [
        Example(f"y{i}", ("a",)) for i in range(10)
    ]

    _, val = split_examples(data, 0.2, seed=0)

    assert Counter(e.label_set() for e in val) == {("a", "b"): 2, ("a",): 2}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_val_fraction_outside_zero_one_is_refused(fraction: float) -> None:
    with pytest.raises(TrainingDataError, match=r"--val-fraction must be in \(0, 1\)"):
        split_examples(_dataset(), fraction, seed=0)


def test_entity_spans_are_read_from_jsonl(tmp_path: Path) -> None:
    rows = [
        {"q": "pay alice £20", "slots": [{"type": "payee", "start": 4, "end": 9},
                                        {"type": "amount", "start": 10, "end": 13}]},
        {"q": "hello", "slots": []},
    ]  # fmt: skip
    data = _write(tmp_path / "d.jsonl", "".join(json.dumps(row) + "\n" for row in rows))

    examples = read_spans(data, text_column="q", label_column="slots")

    assert examples == [
        SpanExample("pay alice £20", (Span("payee", 4, 9), Span("amount", 10, 13))),
        SpanExample("hello", ()),
    ]


@pytest.mark.parametrize(
    ("name", "slots", "message"),
    [
        ("d.jsonl", '"payee"', r"line 1: the entities must be a list of objects like"),
        ("d.jsonl", '[{"type": "payee", "start": 4}]', r"got \[\{\"type\": \"payee\""),
        ("d.jsonl", '[{"type": "payee", "start": "4", "end": 9}]', r"character offsets"),
        ("d.csv", "[]", r"unsupported file type '\.csv'\. Supported: \.jsonl\."),
    ],
)
def test_malformed_spans_and_csv_files_are_refused_for_spans(
    name: str, slots: str, message: str, tmp_path: Path
) -> None:
    data = _write(tmp_path / name, f'{{"q": "pay alice", "slots": {slots}}}\n')

    with pytest.raises(TrainingDataError, match=message):
        read_spans(data, text_column="q", label_column="slots")


def test_span_examples_are_stratified_by_their_entity_types() -> None:
    both = [SpanExample(f"x{i}", (Span("a", 0, 1), Span("b", 1, 2))) for i in range(10)]
    data = both + [SpanExample(f"y{i}", (Span("a", 0, 1),)) for i in range(10)]
    data += [SpanExample(f"z{i}") for i in range(5)]

    train, val = split_examples(data, 0.2, seed=0)

    assert Counter(tuple(s.type for s in e.spans) for e in val) == {("a", "b"): 2, ("a",): 2, (): 1}
    assert len(train) == 20
    assert split_examples(data, 0.2, seed=0) == (train, val)
