"""The stream benchmark cuts the stream, builds the limit's texts and summarises right.

The benchmark itself (``python -m benchmarks.stream``) is not run here: it takes minutes.
These tests pin the parts whose mistakes would silently corrupt its numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# benchmarks/ and the example are not installed; import them from the checkout (as the
# examples' tests do), hence the imports below this (noqa: E402).
ROOT = Path(__file__).resolve().parents[1]
for folder in (str(ROOT), str(ROOT / "examples")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from market_monitor.flow import decide_input  # noqa: E402
from market_monitor.history import HistoryOutput  # noqa: E402

from agents import policy_text  # noqa: E402
from benchmarks import _stream_setup as setup  # noqa: E402
from benchmarks.stream import summarise, table  # noqa: E402
from knowledge import RunStatus  # noqa: E402
from workflow import RunResult  # noqa: E402

START = 1_767_571_200.0  # a bucket boundary (midnight UTC)


def repeat(bucketed: float, free: float, limit: float, p50: float) -> dict[str, Any]:
    return {
        "bucketed": {"items_s": bucketed, "bucket_p50_ms": p50},
        "free-running": {"items_s": free},
        "limit": {"items_s": limit, "sentiment_s": 10.0, "policy_s": 2.0, "policy_texts": 250},
    }


def test_summarise_takes_medians_and_ratios_to_the_median_limit() -> None:
    medians = summarise(
        [repeat(30.0, 40.0, 100.0, 50.0), repeat(10.0, 60.0, 80.0, 90.0), repeat(20.0, 0.0, 50, 5)]
    )
    assert medians["limit"]["items_s"] == 80.0
    assert medians["bucketed"] == {"items_s": 20.0, "vs_limit": 0.25, "bucket_p50_ms": 50.0}
    assert medians["free-running"] == {"items_s": 40.0, "vs_limit": 0.5}  # no buckets there


def test_table_has_a_row_per_mode_and_the_limit() -> None:
    lines = table(summarise([repeat(20.0, 40.0, 80.0, 50.0)]), 1000).splitlines()
    assert lines[1].split() == ["workflow,", "bucketed", "1000", "20.0", "50.0", "0.25"]
    assert lines[2].split() == ["workflow,", "free-running", "1000", "40.0", "-", "0.50"]
    assert lines[3].split()[-5:] == ["only)", "1000", "80.0", "-", "1.00"]
    assert "policy 250 texts 2.00 s" in lines[4]


def item(item_id: str, at: float, text: str = "$BA up") -> Any:
    return setup.Item(item_id, text, at, "bullish")


def test_bucketed_cuts_the_runners_five_minute_buckets_in_time_order() -> None:
    items = [
        item("a", START + 10),
        item("b", START + 299.9),
        item("c", START + 300),
        item("d", START + 901),
    ]
    assert [[i.item_id for i in b] for b in setup.bucketed(items)] == [["a", "b"], ["c"], ["d"]]


def history() -> HistoryOutput:
    return HistoryOutput(
        entity="BA", name="Boeing", sector="Industrials", mentions=5, bearish=0, bullish=4,
        neutral=1, baseline=1.0, surge=5.0, direction="bullish", consensus="strong",
        sector_trend="quiet", peers=[], minutes_since_alert=9999, watchlist=True,
    )  # fmt: skip


def result(outputs: dict[str, Any]) -> RunResult:
    return RunResult("run", "market_monitor", RunStatus.SUCCEEDED, outputs, None, None)


def test_policy_texts_are_the_decide_steps_inputs_only() -> None:
    seen = history()
    results = [
        result({"history": seen, "decide": seen}),  # any output: only its presence counts
        result({}),  # no entity: never reached decide
        result({"history": seen}),  # stopped before decide
    ]
    assert setup.policy_texts(results) == [policy_text(**decide_input(seen))]
