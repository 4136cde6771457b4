"""The market monitor's data (the tweet split, the stream, its truth) and its entities.

The stream needs no knowledge base; the entity tests run on ``db``, a copy of a small
gazetteer's SQLite knowledge base (conftest.py). The history, alerts and analyst are in
test_market_monitor_alerts.py; the workflow, digest and report in test_market_monitor.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor import data, tables  # noqa: E402
from market_monitor.data import DAY_S, GRACE_S, START, Burst, Item, Tweet  # noqa: E402
from market_monitor.entities import (  # noqa: E402
    Entity,
    load_entities,
    load_gazetteer,
    set_watchlist,
    store_entities,
    watchlist,
)

from knowledge import Database  # noqa: E402

T0 = START + 2 * DAY_S  # a bucket boundary (days are whole buckets)


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


def test_entities_are_stored_once(tmp_path: Path, monitor_entities: list[Entity]) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    tables.create_tables(database)
    expected = sum(2 + len(e.aliases) for e in monitor_entities)
    assert store_entities(database, monitor_entities, source="test") == expected
    assert store_entities(database, monitor_entities, source="test") == 0
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
