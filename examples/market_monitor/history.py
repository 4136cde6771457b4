"""Reasoning: an entity's recent sentiment against its own baseline and its sector's.

``SentimentHistory`` records the tweet's mentions (``mm_mentions``, once per visit) and
reads, for each entity the tweet is about, from the knowledge base:

- the **recent window** (``window_s``, an hour by default): mentions by sentiment;
- the **baseline**: the entity's mentions per window over the ``baseline_s`` before it
  (a day), smoothed by one mention per window so a first burst is a surge, not a division
  by zero; ``surge`` = recent mentions / that rate;
- the **sector**: the recent mentions of the other entities of its sector (facts), and
  their direction;
- the **cooldown**: minutes since the entity's last alert; and whether it is on the
  watchlist (facts).

The tweet is about the entity with the strongest surge, and that one is returned.

Event time is the stream's, not the clock's. A tweet reads the history recorded before the
start of its ``bucket_s`` bucket (a watermark) plus itself, so tweets of one bucket, which
the stream runs concurrently, all see the same history, whatever order they finish in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from agents import Agent, Role, RunContext
from knowledge import Database, run_once
from market_monitor.entities import GazetteerCache, watchlist
from market_monitor.tables import Alert, Mention

__all__ = ["HistoryInput", "HistoryOutput", "SentimentHistory", "bucket_start", "signals_of"]

NO_ALERT_MINUTES = 9_999  # "never alerted" (or longer ago than anyone cares)
SURGE_BANDS = ((6.0, "extreme"), (3.0, "high"), (1.5, "raised"), (0.0, "normal"))
CONSENSUS_BANDS = ((0.6, "strong"), (0.35, "some"), (0.0, "weak"))


def bucket_start(at: float, bucket_s: float) -> float:
    """The watermark of a tweet published at ``at``: the start of its bucket."""
    return at - at % bucket_s


class HistoryInput(BaseModel):
    """The tweet, its sentiment and the entities it is about."""

    item_id: str
    published_at: float
    tickers: list[str] = Field(min_length=1)
    sentiment: str
    confidence: float


class HistoryOutput(BaseModel):
    """The entity the tweet is about, and what the knowledge base says about it now.

    Attributes:
        entity: Its ticker; ``name`` and ``sector`` from the facts.
        mentions: Mentions in the recent window, this tweet included; ``bearish``,
            ``bullish``, ``neutral`` split them by sentiment.
        baseline: Its usual mentions per window (smoothed).
        surge: ``mentions / baseline``.
        direction: ``bearish``, ``bullish``, ``mixed`` (as many of each) or ``neutral``.
        consensus: How much of the window agrees with the direction: ``strong``, ``some``,
            ``weak``.
        sector_trend: The sector's other entities in the window: ``bearish``, ``bullish``,
            ``mixed`` or ``quiet`` (fewer than 3 mentions).
        peers: The sector's other entities mentioned in the window, most mentioned first.
        minutes_since_alert: Since its last alert (``9999``: none).
        watchlist: Whether analysts put it on the watchlist.
    """

    entity: str
    name: str
    sector: str
    mentions: int
    bearish: int
    bullish: int
    neutral: int
    baseline: float
    surge: float
    direction: str
    consensus: str
    sector_trend: str
    peers: list[str]
    minutes_since_alert: int
    watchlist: bool


def _band(value: float, bands: Sequence[tuple[float, str]]) -> str:
    return next(name for floor, name in bands if value >= floor)


def _direction(counts: Counter[str]) -> str:
    if counts["bearish"] == counts["bullish"]:
        return "mixed" if counts["bearish"] else "neutral"
    return "bearish" if counts["bearish"] > counts["bullish"] else "bullish"


def signals_of(history: HistoryOutput) -> dict[str, bool | int | float | str]:
    """The signals the decision reads (rules and policy model alike)."""
    return {
        "mentions": history.mentions,
        "surge": round(history.surge, 2),
        # Bands in words as well as the numbers: a small model reads "high" far sooner.
        "surge_band": _band(history.surge, SURGE_BANDS),
        "direction": history.direction,
        "consensus": history.consensus,
        "sector": history.sector_trend,
        "minutes_since_alert": history.minutes_since_alert,
        "watchlist": history.watchlist,
    }


class SentimentHistory(Agent[HistoryInput, HistoryOutput]):
    """Reasoning over the knowledge base's mentions and facts (module docstring).

    Args:
        window_s: The recent window.
        baseline_s: How far back the baseline looks (before the window).
        bucket_s: The stream's bucket: history is read up to the start of the tweet's.
    """

    name = "sentiment_history"
    role = Role.REASONING
    blocking = True  # reads and writes the knowledge base

    def __init__(
        self, *, window_s: float = 3_600.0, baseline_s: float = 86_400.0, bucket_s: float = 300.0
    ) -> None:
        if not 0 < bucket_s <= window_s < baseline_s:
            raise ValueError("Need 0 < bucket_s <= window_s < baseline_s.")
        self.window_s, self.baseline_s, self.bucket_s = window_s, baseline_s, bucket_s
        self._gazetteer = GazetteerCache()

    def run(self, input: HistoryInput, ctx: RunContext) -> HistoryOutput:
        database = ctx.knowledge
        if not isinstance(database, Database):
            raise TypeError("SentimentHistory needs a run with a knowledge base.")
        gazetteer = self._gazetteer.get(ctx)
        watched = watchlist(database)
        with database.transaction() as session:
            run_once(
                session,
                f"{ctx.idempotency_key}:mentions",
                lambda s: self._record(s, input),
                run_id=ctx.run_id,
                step=ctx.step,
            )
            views = [self._view(session, input, t, gazetteer.peers(t)) for t in input.tickers]
        view = max(views, key=lambda v: v.surge)  # first of equals: the first mentioned
        return view.model_copy(
            update={
                "name": gazetteer.names.get(view.entity, view.entity),
                "sector": gazetteer.sectors.get(view.entity, ""),
                "watchlist": view.entity in watched,
            }
        )

    def _record(self, session: Session, input: HistoryInput) -> int:
        """Store the tweet's mentions; a tweet submitted again (a new run) adds none."""
        known = set(session.scalars(select(Mention.entity).where(Mention.item_id == input.item_id)))
        rows = [
            {
                "item_id": input.item_id,
                "entity": ticker,
                "published_at": input.published_at,
                "sentiment": input.sentiment,
                "confidence": input.confidence,
            }
            for ticker in input.tickers
            if ticker not in known
        ]
        if rows:
            session.execute(insert(Mention), rows)
        return len(rows)

    def _counts(
        self, session: Session, tickers: Sequence[str], since: float, until: float
    ) -> dict[str, Counter[str]]:
        query = (
            select(Mention.entity, Mention.sentiment, func.count())
            .where(
                Mention.entity.in_(tickers),
                Mention.published_at >= since,
                Mention.published_at < until,
            )
            .group_by(Mention.entity, Mention.sentiment)
        )
        counts: dict[str, Counter[str]] = {t: Counter() for t in tickers}
        for entity, sentiment, n in session.execute(query):
            counts[entity][sentiment] = n
        return counts

    def _view(
        self, session: Session, input: HistoryInput, ticker: str, peers: Sequence[str]
    ) -> HistoryOutput:
        mark = bucket_start(input.published_at, self.bucket_s)
        recent = self._counts(session, [ticker, *peers], mark - self.window_s, mark)
        mine = recent.pop(ticker) + Counter({input.sentiment: 1})
        before = self._counts(session, [ticker], mark - self.baseline_s, mark - self.window_s)
        windows = (self.baseline_s - self.window_s) / self.window_s
        baseline = (sum(before[ticker].values()) + 1) / windows
        baseline = max(baseline, 1.0)  # one mention an hour is no news, whatever the past
        mentions = sum(mine.values())
        direction = _direction(mine)
        lead = max(mine["bearish"], mine["bullish"])
        sector = sum(recent.values(), Counter())
        active = sorted((t for t in peers if recent[t]), key=lambda t: -sum(recent[t].values()))
        last = session.scalar(
            select(func.max(Alert.published_at)).where(
                Alert.entity == ticker, Alert.published_at < mark
            )
        )
        minutes = NO_ALERT_MINUTES if last is None else int((input.published_at - last) // 60)
        return HistoryOutput(
            entity=ticker,
            name="",
            sector="",
            mentions=mentions,
            bearish=mine["bearish"],
            bullish=mine["bullish"],
            neutral=mine["neutral"],
            baseline=round(baseline, 3),
            surge=round(mentions / baseline, 3),
            direction=direction,
            consensus=_band(lead / mentions, CONSENSUS_BANDS),
            sector_trend="quiet" if sum(sector.values()) < 3 else _direction(sector),
            peers=active[:3],
            minutes_since_alert=min(minutes, NO_ALERT_MINUTES),
            watchlist=False,
        )
