"""The monitor's data: financial news tweets, split by seed, replayed as a timed stream.

The tweets (``examples/data/fin_tweets``, MIT licensed) carry sentiment labels but no
timestamps. ``split_tweets`` cuts them, stratified by label and fixed by the seed, into the
sentiment classifier's training part and a pool it never sees; ``build_stream`` turns the
pool into days of news:

- **background**: pool tweets as they are, at uniform times over the day; they mention
  companies by cashtag or name now and then, which builds each entity's baseline;
- **event bursts** (the ground truth an analyst wants an alert for): 12 to 20 tweets about
  one entity within 30 to 75 minutes, three in four of them with the burst's direction
  (bearish or bullish) and the rest neutral;
- **chatter bursts** (decoys, no alert wanted): as many tweets about one entity, but neutral
  or split between bearish and bullish: a lot of talk, no move.

A burst's tweets are pool tweets of the wanted sentiment rewritten to be about its entity:
their own cashtags are removed and ``$TICKER`` is put in front. Entities, times, sizes and
the tweets drawn all come from one seeded generator, so a seed gives the same stream.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DATA_DIR",
    "DAY_S",
    "LABELS",
    "START",
    "Burst",
    "Item",
    "Stream",
    "StreamConfig",
    "Tweet",
    "build_stream",
    "load_tweets",
    "split_tweets",
    "truth_for",
]

DATA_DIR = Path(__file__).parent.parent / "data"
LABELS = ("bearish", "bullish", "neutral")  # the dataset's 0, 1, 2
DAY_S = 86_400.0
START = 1_767_571_200.0  # 2026-01-05 00:00 UTC, a Monday: day 0 of the replay
GRACE_S = 1_800.0  # an alert this long after a burst's last tweet still counts
CASHTAG = re.compile(r"\$[A-Za-z][\w.:]*\s*-?\s*")

BurstKind = Literal["event", "chatter"]


@dataclass(frozen=True)
class Tweet:
    """One labelled tweet."""

    text: str
    sentiment: str


@dataclass(frozen=True)
class Burst:
    """An injected burst of tweets about one entity.

    Attributes:
        entity: The entity's ticker.
        kind: ``event`` (an alert is wanted) or ``chatter`` (a decoy).
        direction: ``bearish`` or ``bullish`` for events; ``neutral`` or ``mixed`` for chatter.
        start: Event time of its first tweet (seconds since the epoch).
        end: Event time of its last tweet.
    """

    entity: str
    kind: BurstKind
    direction: str
    start: float
    end: float


@dataclass(frozen=True)
class Item:
    """One tweet of the stream.

    Attributes:
        item_id: Unique in the stream, e.g. ``d1-00042``.
        text: The tweet as published.
        published_at: Its event time (seconds since the epoch).
        sentiment: Its true sentiment (the dataset's label).
        burst: Index of the burst it belongs to in ``Stream.bursts``; None for background.
    """

    item_id: str
    text: str
    published_at: float
    sentiment: str
    burst: int | None = None

    @property
    def day(self) -> int:
        return int((self.published_at - START) // DAY_S)


@dataclass(frozen=True)
class StreamConfig:
    """The shape of the replay.

    Attributes:
        days: Days of news.
        background_per_day: Pool tweets per day, at uniform times.
        events_per_day: Event bursts per day.
        chatter_per_day: Chatter bursts per day.
        burst_size: Fewest and most tweets in a burst.
        burst_minutes: Shortest and longest burst.
    """

    days: int
    background_per_day: int
    events_per_day: int
    chatter_per_day: int
    burst_size: tuple[int, int] = (12, 20)
    burst_minutes: tuple[int, int] = (30, 75)


def load_tweets(path: Path | None = None) -> list[Tweet]:
    """The labelled tweets (``text,label`` CSV with labels 0 bearish, 1 bullish, 2 neutral)."""
    with (path or DATA_DIR / "fin_tweets" / "train.csv").open(newline="", encoding="utf-8") as f:
        return [Tweet(row["text"], LABELS[int(row["label"])]) for row in csv.DictReader(f)]


def split_tweets(
    tweets: Sequence[Tweet], *, train: int, seed: int
) -> tuple[list[Tweet], list[Tweet]]:
    """Cut the tweets into ``train`` for the classifier and the pool, stratified by label.

    Each label gives its share of ``train`` (rounded), so the classifier sees the dataset's
    label mix; the order within a label is a seeded shuffle of the sorted texts.

    Raises:
        ValueError: ``train`` is not smaller than the number of tweets.
    """
    if not 0 < train < len(tweets):
        raise ValueError(f"train={train} must be between 1 and {len(tweets) - 1}.")
    rng = random.Random(seed)
    by_label: dict[str, list[Tweet]] = defaultdict(list)
    for tweet in tweets:
        by_label[tweet.sentiment].append(tweet)
    first, pool = [], []
    for label in sorted(by_label):
        rows = sorted(by_label[label], key=lambda t: t.text)
        rng.shuffle(rows)
        cut = round(train * len(rows) / len(tweets))
        first += rows[:cut]
        pool += rows[cut:]
    rng.shuffle(first)
    rng.shuffle(pool)
    return first, pool


def _about(text: str, ticker: str) -> str:
    """The tweet rewritten to be about ``ticker``: its cashtags out, ``$TICKER`` in front."""
    return f"${ticker} - {CASHTAG.sub('', text).strip()}"


@dataclass(frozen=True)
class Stream:
    """The replayed news, in time order, and the bursts injected into it."""

    items: list[Item]
    bursts: list[Burst]

    def day(self, index: int) -> list[Item]:
        return [item for item in self.items if item.day == index]


class _Draw:
    """Pool tweets by sentiment, each drawn at most once."""

    def __init__(self, pool: Sequence[Tweet]) -> None:
        self.left: dict[str, list[Tweet]] = defaultdict(list)
        for tweet in pool:
            self.left[tweet.sentiment].append(tweet)

    def take(self, sentiment: str) -> Tweet:
        if not self.left[sentiment]:
            raise ValueError(f"The pool has no {sentiment} tweets left: make the stream smaller.")
        return self.left[sentiment].pop()

    def any(self, rng: random.Random) -> Tweet:
        weights = [len(self.left[label]) for label in LABELS]
        if not any(weights):
            raise ValueError("The pool has no tweets left: make the stream smaller.")
        return self.take(rng.choices(LABELS, weights=weights)[0])


def _burst_sentiments(kind: BurstKind, direction: str, size: int) -> list[str]:
    if kind == "event":
        return [direction if i % 4 else "neutral" for i in range(size)]
    if direction == "neutral":
        return ["neutral" if i % 5 else "bullish" for i in range(size)]
    return ["bearish" if i % 2 else "bullish" for i in range(size)]


def _bursts(
    config: StreamConfig, day: int, tickers: Sequence[str], rng: random.Random
) -> list[Burst]:
    kinds: list[BurstKind] = ["event"] * config.events_per_day + [
        "chatter"
    ] * config.chatter_per_day
    bursts = []
    for kind, entity in zip(kinds, rng.sample(list(tickers), len(kinds)), strict=True):
        start = START + day * DAY_S + rng.uniform(3_600, DAY_S - 3 * 3_600)
        minutes = rng.randint(*config.burst_minutes)
        choices = ("bearish", "bullish") if kind == "event" else ("neutral", "mixed")
        bursts.append(Burst(entity, kind, rng.choice(choices), start, start + minutes * 60))
    return bursts


def build_stream(
    pool: Sequence[Tweet], tickers: Sequence[str], config: StreamConfig, *, seed: int
) -> Stream:
    """Days of background news with event and chatter bursts injected (module docstring).

    Args:
        pool: Tweets the sentiment classifier never saw.
        tickers: The entities bursts may be about (the gazetteer's tickers).
        config: The replay's shape.
        seed: Fixes everything drawn.

    Raises:
        ValueError: The pool is too small, or there are fewer tickers than bursts per day.
    """
    per_day = config.events_per_day + config.chatter_per_day
    if len(tickers) < per_day:
        raise ValueError(f"{per_day} bursts a day need as many entities; got {len(tickers)}.")
    rng = random.Random(seed)
    draw = _Draw(pool)
    items: list[tuple[float, str, str, int | None]] = []
    bursts: list[Burst] = []
    for day in range(config.days):
        for burst in _bursts(config, day, tickers, rng):
            size = rng.randint(*config.burst_size)
            step = (burst.end - burst.start) / (size - 1)
            for i, sentiment in enumerate(_burst_sentiments(burst.kind, burst.direction, size)):
                text = _about(draw.take(sentiment).text, burst.entity)
                items.append((burst.start + i * step, text, sentiment, len(bursts)))
            bursts.append(burst)
        for _ in range(config.background_per_day):
            tweet = draw.any(rng)
            at = START + day * DAY_S + rng.uniform(0, DAY_S)
            items.append((at, tweet.text, tweet.sentiment, None))
    items.sort(key=lambda row: row[0])
    return Stream(
        [
            Item(f"d{int((at - START) // DAY_S)}-{n:05d}", text, at, sentiment, burst)
            for n, (at, text, sentiment, burst) in enumerate(items)
        ],
        bursts,
    )


def truth_for(bursts: Sequence[Burst], entity: str, at: float) -> Burst | None:
    """The event burst about ``entity`` under way at ``at`` (grace included), if any."""
    for burst in bursts:
        if (
            burst.kind == "event"
            and burst.entity == entity
            and burst.start <= at <= burst.end + GRACE_S
        ):
            return burst
    return None
