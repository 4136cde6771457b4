"""Classification metrics and length-bucketed batching, in plain Python."""

from __future__ import annotations

import pytest

from finetune import classification_report, length_bucketed_batches


def test_single_label_report_matches_a_hand_count() -> None:
    truth = [["a"], ["a"], ["a"], ["b"], ["b"], ["c"]]
    preds = [["a"], ["a"], ["b"], ["b"], ["a"], ["b"]]

    report = classification_report(truth, preds, ["a", "b", "c"])

    # a: tp 2, fp 1, fn 1; b: tp 1, fp 2, fn 1; c: tp 0, fn 1.
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.per_label["a"].precision == pytest.approx(2 / 3)
    assert report.per_label["a"].recall == pytest.approx(2 / 3)
    assert report.per_label["b"].f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert report.per_label["c"].f1 == 0.0
    assert [s.support for s in report.per_label.values()] == [3, 2, 1]
    assert report.macro_f1 == pytest.approx(sum(s.f1 for s in report.per_label.values()) / 3)
    assert report.micro_f1 == pytest.approx(report.accuracy)


def test_multi_label_report_scores_sets() -> None:
    truth = [["a", "b"], ["b"], []]
    preds = [["a"], ["b", "c"], []]

    report = classification_report(truth, preds, ["a", "b", "c"])

    # Pooled: tp 2 (a, b), fp 1 (c), fn 1 (b): micro P = R = F1 = 2/3.
    assert report.accuracy == pytest.approx(1 / 3)
    assert report.micro_f1 == pytest.approx(2 / 3)
    assert report.per_label["b"].recall == pytest.approx(1 / 2)
    assert report.per_label["c"].precision == 0.0
    assert report.metric("micro_f1") == report.micro_f1


def test_report_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="as many predictions as truths"):
        classification_report([["a"]], [], ["a"])


def test_bucketed_batches_cover_every_row_once_and_depend_only_on_seed_and_epoch() -> None:
    lengths = [(i * 7) % 23 for i in range(103)]

    batches = length_bucketed_batches(lengths, 4, seed=3, epoch=0, bucket_batches=5)

    assert sorted(i for batch in batches for i in batch) == list(range(103))
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert batches == length_bucketed_batches(lengths, 4, seed=3, epoch=0, bucket_batches=5)
    assert batches != length_bucketed_batches(lengths, 4, seed=3, epoch=1, bucket_batches=5)
    assert batches != length_bucketed_batches(lengths, 4, seed=4, epoch=0, bucket_batches=5)


def test_bucketing_pads_less_than_random_batches() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(200)]

    def padding(batches: list[list[int]]) -> int:
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    bucketed = length_bucketed_batches(lengths, 8, seed=0, epoch=0, bucket_batches=5)
    unbucketed = length_bucketed_batches(lengths, 8, seed=0, epoch=0, bucket_batches=1)

    assert padding(bucketed) < padding(unbucketed) / 2
