"""The market monitor's history step, its alerts and notes, their verdicts and the analyst.

Each test runs on ``db``, a copy of a real SQLite knowledge base in ``tmp_path`` with the
example's tables and a small gazetteer; ``db`` and ``add_alert`` come from conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor.alerts import AlertInput, AlertSender, DigestNote, NoteInput  # noqa: E402
from market_monitor.analyst import DayScore, calibration_labels, mark_day, score_day  # noqa: E402
from market_monitor.data import DAY_S, GRACE_S, START, Burst, Item  # noqa: E402
from market_monitor.entities import set_watchlist  # noqa: E402
from market_monitor.flow import AlertRules  # noqa: E402
from market_monitor.history import (  # noqa: E402
    NO_ALERT_MINUTES,
    HistoryInput,
    HistoryOutput,
    SentimentHistory,
    signals_of,
)
from market_monitor.outcomes import AlertNotFoundError, list_alerts, mark_alert  # noqa: E402
from market_monitor.tables import Alert, DigestEntry, Mention  # noqa: E402

from agents import RunContext, policy_text  # noqa: E402
from knowledge import Database, RunStatus, feedback_for  # noqa: E402
from workflow import RunResult  # noqa: E402

T0 = START + 2 * DAY_S  # a bucket boundary (days are whole buckets)


def ctx(database: Database, run_id: str, step: str) -> RunContext:
    return RunContext(run_id, step, knowledge=database)


# --------------------------------------------------------------------------- history


def add_mentions(
    database: Database, entity: str, at: float, sentiments: Sequence[str], *, tag: str = ""
) -> None:
    """Mentions of ``entity`` at ``at``, one per sentiment given."""
    with database.transaction() as session:
        session.add_all(
            Mention(
                item_id=f"{tag or entity}-{at}-{i}",
                entity=entity,
                published_at=at,
                sentiment=sentiment,
                confidence=0.9,
            )
            for i, sentiment in enumerate(sentiments)
        )


def tweet(tickers: list[str], *, at: float = T0 + 120, item: str = "t1") -> HistoryInput:
    return HistoryInput(
        item_id=item, published_at=at, tickers=tickers, sentiment="bearish", confidence=0.8
    )


@pytest.fixture
def busy(db: Database) -> Database:
    """TSLA: 7 mentions in the hour before T0, 45 in the day before, 3 in T0's own bucket;
    its sector peers GM (3 bearish) and F (1 bullish), and AAPL, in the hour."""
    add_mentions(db, "TSLA", T0 - 3_600, ["bearish"])  # the window's first instant
    add_mentions(db, "TSLA", T0 - 600, ["bearish"] * 4 + ["bullish", "neutral"])
    add_mentions(db, "TSLA", T0 + 60, ["bearish", "bullish", "bullish"])  # after the mark
    add_mentions(db, "TSLA", T0 - 7_200, ["neutral"] * 45)
    add_mentions(db, "TSLA", T0 - 3_601, ["bullish"] * 5, tag="edge")  # before the window
    add_mentions(db, "TSLA", T0 - DAY_S - 1, ["neutral"] * 50)  # older than the baseline
    add_mentions(db, "GM", T0 - 300, ["bearish"] * 3)
    add_mentions(db, "F", T0 - 300, ["bullish"])
    add_mentions(db, "AAPL", T0 - 300, ["bullish"] * 9)
    return db


def test_history_counts_the_window_before_the_bucket_and_the_tweet(busy: Database) -> None:
    view = SentimentHistory().run(tweet(["TSLA"]), ctx(busy, "r1", "history"))
    assert (view.entity, view.name, view.sector) == ("TSLA", "Tesla", "Consumer Discretionary")
    assert (view.mentions, view.bearish, view.bullish, view.neutral) == (8, 6, 1, 1)
    assert view.baseline == pytest.approx((45 + 5 + 1) / 23, abs=1e-3)  # smoothed by one
    assert view.surge == pytest.approx(8 / view.baseline, abs=1e-3)
    assert (view.direction, view.consensus) == ("bearish", "strong")
    assert (view.sector_trend, view.peers) == ("bearish", ["GM", "F"])
    assert (view.minutes_since_alert, view.watchlist) == (NO_ALERT_MINUTES, False)


def test_tweets_of_one_bucket_see_the_same_history(busy: Database) -> None:
    history = SentimentHistory()
    early = history.run(tweet(["TSLA"], at=T0 + 1), ctx(busy, "r1", "history"))
    late = history.run(tweet(["TSLA"], at=T0 + 299, item="t2"), ctx(busy, "r2", "history"))
    assert early.mentions == late.mentions == 8
    next_bucket = history.run(tweet(["TSLA"], at=T0 + 300, item="t3"), ctx(busy, "r3", "history"))
    # The window moved on: T0 - 3600 left it; bucket T0 (3 stored, t1, t2) came in.
    assert next_bucket.mentions == 6 + 3 + 2 + 1


def test_a_quiet_entity_has_the_floor_baseline_and_no_surge(db: Database) -> None:
    view = SentimentHistory().run(tweet(["AAPL"]), ctx(db, "r1", "history"))
    assert (view.mentions, view.baseline, view.surge) == (1, 1.0, 1.0)
    assert (view.direction, view.consensus, view.sector_trend) == ("bearish", "strong", "quiet")
    assert signals_of(view)["surge_band"] == "normal"


@pytest.mark.parametrize(
    ("window", "direction", "consensus"),
    [
        (["bullish"] + ["neutral"] * 2, "mixed", "weak"),  # the tweet is bearish
        (["neutral"] * 5, "bearish", "weak"),
        (["bullish"] * 2 + ["neutral"], "bullish", "some"),
    ],
)
def test_direction_and_consensus_bands(
    db: Database, window: list[str], direction: str, consensus: str
) -> None:
    add_mentions(db, "AAPL", T0 - 600, window)
    view = SentimentHistory().run(tweet(["AAPL"]), ctx(db, "r1", "history"))
    assert (view.direction, view.consensus) == (direction, consensus)


def test_sector_trend_is_mixed_or_quiet(db: Database) -> None:
    add_mentions(db, "GM", T0 - 600, ["bearish", "bullish"])
    assert SentimentHistory().run(tweet(["TSLA"]), ctx(db, "r1", "history")).sector_trend == (
        "quiet"
    )
    add_mentions(db, "F", T0 - 600, ["bearish", "bullish"])
    view = SentimentHistory().run(tweet(["TSLA"], item="t2"), ctx(db, "r2", "history"))
    assert (view.sector_trend, view.peers) == ("mixed", ["F", "GM"])


def test_minutes_since_the_last_alert_before_the_bucket(
    db: Database, add_alert: Callable[..., int]
) -> None:
    add_alert(db, "TSLA", T0 + 60)  # in the tweet's own bucket: not yet history
    add_alert(db, "AAPL", T0 - 60)  # another entity
    history = SentimentHistory()
    view = history.run(tweet(["TSLA"]), ctx(db, "r1", "history"))
    assert view.minutes_since_alert == NO_ALERT_MINUTES
    add_alert(db, "TSLA", T0 - 1_800)
    add_alert(db, "TSLA", T0 - 7_200)
    view = history.run(tweet(["TSLA"], item="t2"), ctx(db, "r2", "history"))
    assert view.minutes_since_alert == (120 + 1_800) // 60


def test_watchlist_flag_and_the_strongest_surge_is_chosen(busy: Database) -> None:
    set_watchlist(busy, "TSLA", on=True, author="ana")
    view = SentimentHistory().run(tweet(["AAPL", "TSLA"]), ctx(busy, "r1", "history"))
    assert (view.entity, view.watchlist) == ("AAPL", False)  # 10 vs TSLA's 8/2.2
    add_mentions(busy, "TSLA", T0 - 900, ["bearish"] * 30)
    view = SentimentHistory().run(tweet(["AAPL", "TSLA"], item="t2"), ctx(busy, "r2", "history"))
    assert (view.entity, view.watchlist) == ("TSLA", True)
    tie = SentimentHistory().run(tweet(["GS", "GLD"], item="t3"), ctx(busy, "r3", "history"))
    assert tie.entity == "GS"  # equal surges: the first mentioned


def test_mentions_are_recorded_exactly_once_per_visit(db: Database) -> None:
    history, visit = SentimentHistory(), ctx(db, "r1", "history")
    first = history.run(tweet(["TSLA", "AAPL"]), visit)
    again = history.run(tweet(["TSLA", "AAPL"]), visit)
    assert again == first
    with db.session(read_only=True) as session:
        rows = session.execute(select(Mention.entity, Mention.item_id, Mention.sentiment)).all()
    assert sorted(rows) == [("AAPL", "t1", "bearish"), ("TSLA", "t1", "bearish")]


def test_signals_of_has_the_decision_inputs(busy: Database) -> None:
    view = SentimentHistory().run(tweet(["TSLA"]), ctx(busy, "r1", "history"))
    signals = signals_of(view)
    assert set(signals) == {
        "mentions",
        "surge",
        "surge_band",
        "direction",
        "consensus",
        "sector",
        "minutes_since_alert",
        "watchlist",
    }
    assert signals["surge_band"] == "high"  # 8 / 2.2 = 3.6
    assert (signals["mentions"], signals["sector"]) == (8, "bearish")


def test_history_refuses_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="bucket_s <= window_s < baseline_s"):
        SentimentHistory(window_s=600.0, bucket_s=900.0)


def test_the_same_tweet_in_a_second_run_is_recorded_once(db: Database) -> None:
    history = SentimentHistory()
    first = history.run(tweet(["TSLA"]), ctx(db, "r1", "history"))
    assert history.run(tweet(["TSLA"]), ctx(db, "r2", "history")) == first


# ---------------------------------------------------------------------------- alerts


def history_view(entity: str = "TSLA", **changes: Any) -> HistoryOutput:
    fields: dict[str, Any] = {
        "entity": entity,
        "name": "Tesla",
        "sector": "Consumer Discretionary",
        "mentions": 8,
        "bearish": 6,
        "bullish": 1,
        "neutral": 1,
        "baseline": 2.0,
        "surge": 4.0,
        "direction": "bearish",
        "consensus": "strong",
        "sector_trend": "bearish",
        "peers": ["GM"],
        "minutes_since_alert": NO_ALERT_MINUTES,
        "watchlist": False,
    }
    return HistoryOutput(**(fields | changes))


def alert_input(at: float = T0 + 120, item: str = "t1", entity: str = "TSLA") -> AlertInput:
    return AlertInput(
        item_id=item,
        published_at=at,
        text="$TSLA recalls every car https://t.co/x",
        history=history_view(entity),
        decided_by="model",
        prediction_id=None,
    )


def alert_count(database: Database) -> int:
    with database.session(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


def test_an_alert_is_written_once_and_replayed_for_its_key(db: Database) -> None:
    sender, visit = AlertSender(), ctx(db, "r1", "alert")
    first = sender.run(alert_input(), visit)
    assert (first.duplicate, first.dedup_key) == (False, f"TSLA:{int(T0)}")
    assert sender.run(alert_input(), visit) == first
    assert alert_count(db) == 1
    with db.session(read_only=True) as session:
        row = session.get(Alert, first.alert_id)
        assert row is not None
        assert (row.entity, row.direction, row.item_id, row.run_id) == (
            "TSLA",
            "bearish",
            "t1",
            "r1",
        )
        assert (row.status, row.mentions, row.surge) == ("pending", 8, 4.0)
        assert row.summary.startswith("Tesla (TSLA) bearish: 8 mentions in the window, 4.0x")
        assert row.summary.endswith("Latest: $TSLA recalls every car https://t.co/x")


def test_a_second_tweet_in_the_bucket_duplicates_and_the_next_bucket_alerts(db: Database) -> None:
    sender = AlertSender()
    first = sender.run(alert_input(), ctx(db, "r1", "alert"))
    same = sender.run(alert_input(T0 + 299, "t2"), ctx(db, "r2", "alert"))
    assert (same.duplicate, same.alert_id, same.dedup_key) == (
        True,
        first.alert_id,
        first.dedup_key,
    )
    other = sender.run(alert_input(T0 + 200, "t3", "AAPL"), ctx(db, "r3", "alert"))
    later = sender.run(alert_input(T0 + 300, "t4"), ctx(db, "r4", "alert"))
    assert not other.duplicate
    assert not later.duplicate
    assert later.dedup_key == f"TSLA:{int(T0 + 300)}"
    assert len({first.alert_id, other.alert_id, later.alert_id}) == 3
    assert alert_count(db) == 3


def test_a_tweet_is_noted_once_even_from_two_runs(db: Database) -> None:
    note = NoteInput(
        item_id="t1", published_at=T0, text="calm", sentiment="neutral", confidence=0.6
    )
    first = DigestNote().run(note, ctx(db, "r1", "note"))
    assert DigestNote().run(note, ctx(db, "r1", "note")) == first
    assert DigestNote().run(note, ctx(db, "r2", "note")) == first
    with db.session(read_only=True) as session:
        entries = session.scalars(select(DigestEntry)).all()
        assert [(e.id, e.item_id, e.decision, e.entity) for e in entries] == [
            (first.entry_id, "t1", "none", None)
        ]


# -------------------------------------------------------------------------- outcomes


def outcome_labels(database: Database, alert_id: int) -> list[tuple[str | None, str, str]]:
    with database.session(read_only=True) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.prediction_id is not None
        return [(f.label, f.source, f.author) for f in feedback_for(session, alert.prediction_id)]


def test_verdicts_are_outcome_feedback_on_the_decision(
    db: Database, add_alert: Callable[..., int]
) -> None:
    useful, noise = add_alert(db, "TSLA", T0), add_alert(db, "AAPL", T0 + 60)
    feedback = mark_alert(db, useful, "useful", author="ana")
    assert (feedback.label, feedback.source, feedback.author) == ("alert", "outcome", "ana")
    mark_alert(db, noise, "noise", author="ana")
    assert outcome_labels(db, useful) == [("alert", "outcome", "ana")]
    assert outcome_labels(db, noise) == [("hold", "outcome", "ana")]
    with pytest.raises(ValueError, match="Unknown verdict 'great': use one of useful, noise"):
        mark_alert(db, useful, "great", author="bo")
    with pytest.raises(AlertNotFoundError, match="No alert 999"):
        mark_alert(db, 999, "useful", author="bo")
    undecided = add_alert(db, "GM", T0, decided=False)
    with pytest.raises(ValueError, match="has no recorded alert_policy decision"):
        mark_alert(db, undecided, "useful", author="bo")


def test_list_alerts_filters_by_time_and_shows_the_verdict(
    db: Database, add_alert: Callable[..., int]
) -> None:
    early = add_alert(db, "TSLA", T0 - 60)
    inside = add_alert(db, "AAPL", T0)
    add_alert(db, "GM", T0 + 600)
    mark_alert(db, inside, "noise", author="ana")
    views = list_alerts(db, since=T0, until=T0 + 600)
    assert [(v.id, v.entity, v.verdict) for v in views] == [(inside, "AAPL", "noise")]
    assert [v.id for v in list_alerts(db, until=T0)] == [early]
    assert [v.entity for v in list_alerts(db)] == ["TSLA", "AAPL", "GM"]
    assert [v.entity for v in list_alerts(db, limit=1)] == ["TSLA"]


# --------------------------------------------------------------------------- analyst

DAY = 2  # T0's day
EVENTS = [
    Burst("TSLA", "event", "bearish", T0 + 3_600, T0 + 5_400),
    Burst("AAPL", "event", "bullish", T0 + 7_200, T0 + 9_000),
    Burst("GS", "chatter", "mixed", T0 + 3_600, T0 + 5_400),
    Burst("GM", "event", "bullish", T0 + DAY_S + 3_600, T0 + DAY_S + 5_400),  # the next day
]


@pytest.fixture
def day_alerts(db: Database, add_alert: Callable[..., int]) -> dict[str, int]:
    """Alerts of day 2: one useful, three noise, one watchlist; and one the next day."""
    return {
        "useful": add_alert(db, "TSLA", T0 + 4_000),
        "late but in grace": add_alert(db, "TSLA", T0 + 5_400 + GRACE_S),
        "wrong direction": add_alert(db, "AAPL", T0 + 8_000, direction="bearish"),
        "chatter": add_alert(db, "GS", T0 + 4_000, direction="bullish"),
        "watchlist": add_alert(db, "BA", T0 + 100, decided_by="watchlist"),
        "next day": add_alert(db, "GM", T0 + DAY_S + 4_000, direction="bullish"),
    }


def test_score_day_against_the_injected_events(db: Database, day_alerts: dict[str, int]) -> None:
    score = score_day(db, EVENTS, DAY)
    assert score == DayScore(alerts=4, useful=2, watchlist=1, events=2, caught=1)
    assert (score.precision, score.recall) == (0.5, 0.5)
    assert score_day(db, EVENTS, DAY + 1) == DayScore(1, 1, 0, 1, 1)
    assert score_day(db, EVENTS, DAY + 2) == DayScore(0, 0, 0, 0, 0)
    assert (DayScore(0, 0, 0, 0, 0).precision, DayScore(0, 0, 0, 0, 0).recall) == (0.0, 0.0)


def test_mark_day_gives_each_alert_one_verdict(db: Database, day_alerts: dict[str, int]) -> None:
    assert mark_day(db, EVENTS, DAY) == (2, 3)  # the watchlist alert had no event
    verdicts = {v.id: v.verdict for v in list_alerts(db)}
    assert verdicts == {
        day_alerts["useful"]: "useful",
        day_alerts["late but in grace"]: "useful",
        day_alerts["wrong direction"]: "noise",
        day_alerts["chatter"]: "noise",
        day_alerts["watchlist"]: "noise",
        day_alerts["next day"]: None,
    }
    assert mark_day(db, EVENTS, DAY) == (0, 0)
    assert outcome_labels(db, day_alerts["useful"]) == [("alert", "outcome", "analyst")]


def ran(at: float, text: str, history: HistoryOutput | None) -> tuple[Item, RunResult]:
    item = Item(f"i{at}", text, at, "bearish")
    outputs = {} if history is None else {"history": history}
    return item, RunResult(f"run-{at}", "market_observe", RunStatus.SUCCEEDED, outputs, None, None)


def test_calibration_labels_keep_the_cases_left_to_the_model() -> None:
    rules = AlertRules(min_mentions=4, min_surge=2.0)
    wanted = history_view("TSLA")  # bearish, 8 mentions, 4x: during TSLA's bearish event
    unwanted = history_view("AAPL", direction="bearish")  # AAPL's event is bullish
    runs = [
        ran(T0 + 4_000, "TSLA falls", wanted),
        ran(T0 + 8_000, "Apple falls", unwanted),
        ran(T0 + 4_000, "no entity", None),
        ran(T0 + 4_000, "watched", history_view("TSLA", watchlist=True)),
        ran(T0 + 4_000, "thin", history_view("TSLA", mentions=3)),
        ran(T0 + 4_000, "flat", history_view("TSLA", surge=1.9)),
    ]
    labels = calibration_labels(runs, EVENTS, rules, limit=10, seed=0)
    assert sorted(labels) == sorted(
        [
            (policy_text("", signals_of(wanted)), "alert"),
            (policy_text("", signals_of(unwanted)), "hold"),
        ]
    )
    one = calibration_labels(runs, EVENTS, rules, limit=1, seed=0)
    assert len(one) == 1
    assert one[0] in labels
