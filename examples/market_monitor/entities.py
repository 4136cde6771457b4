"""Entities as facts in the knowledge base, and the perception agent that finds them.

The gazetteer (``entities.json``: ticker, name, aliases, GICS sector) is stored once as
facts, each with its provenance::

    (TSLA, name, Tesla)   (TSLA, alias, Tesla)   (TSLA, sector, Consumer Discretionary)

and the analysts' watchlist too: ``(TSLA, watchlist, on)``; the newest watchlist fact of an
entity wins, so ``off`` takes it off again. ``EntityLinker`` resolves a tweet's cashtags
(``$TSLA``, known tickers only) and aliases (whole words, case-sensitive) to tickers,
reading the gazetteer from the run's knowledge base the first time it runs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from agents import Agent, Role, RunContext
from knowledge import Database, FactIn, add_facts, find_facts

__all__ = [
    "ENTITIES_FILE",
    "Entity",
    "EntityLinker",
    "Gazetteer",
    "GazetteerCache",
    "LinkerInput",
    "LinkerOutput",
    "load_entities",
    "load_gazetteer",
    "set_watchlist",
    "store_entities",
    "watchlist",
]

ENTITIES_FILE = Path(__file__).parent / "entities.json"
ALL = 1_000_000  # find_facts pages; the gazetteer is read whole
CASHTAG = re.compile(r"\$([A-Z]{1,5})\b")


@dataclass(frozen=True)
class Entity:
    """A listed company."""

    ticker: str
    name: str
    aliases: tuple[str, ...]
    sector: str


def load_entities(path: Path = ENTITIES_FILE) -> list[Entity]:
    """The gazetteer file's entities.

    Raises:
        ValueError: Two entities share a ticker or an alias.
    """
    rows = json.loads(path.read_text("utf-8"))
    entities = [
        Entity(row["ticker"], row["name"], tuple(row["aliases"]), row["sector"]) for row in rows
    ]
    owner: dict[str, str] = {}
    for entity in entities:
        for key in (f"${entity.ticker}", *entity.aliases):
            if key in owner:
                raise ValueError(f"{path}: '{key}' names both {owner[key]} and {entity.ticker}.")
            owner[key] = entity.ticker
    return entities


def store_entities(database: Database, entities: Sequence[Entity], *, source: str) -> int:
    """Store the entities as facts, unless the knowledge base has a gazetteer already.

    Returns:
        The number of facts written (0 when a gazetteer was there).
    """
    with database.transaction() as session:
        if find_facts(session, relation="sector", limit=1):
            return 0
        provenance = {"source": source}
        facts = []
        for e in entities:
            facts.append(
                FactIn(subject=e.ticker, relation="name", object=e.name, provenance=provenance)
            )
            facts.append(
                FactIn(subject=e.ticker, relation="sector", object=e.sector, provenance=provenance)
            )
            facts += [
                FactIn(subject=e.ticker, relation="alias", object=alias, provenance=provenance)
                for alias in e.aliases
            ]
        return len(add_facts(session, facts))


def set_watchlist(database: Database, ticker: str, *, on: bool, author: str) -> None:
    """Put ``ticker`` on the watchlist (or take it off), as a fact authored by ``author``.

    Raises:
        ValueError: ``ticker`` is not in the gazetteer.
    """
    with database.transaction() as session:
        if not find_facts(session, subject=ticker, relation="sector", limit=1):
            raise ValueError(f"Unknown entity '{ticker}': it is not in the gazetteer.")
        fact = FactIn(
            subject=ticker,
            relation="watchlist",
            object="on" if on else "off",
            provenance={"author": author},
        )
        add_facts(session, [fact])


def watchlist(database: Database) -> set[str]:
    """The tickers on the watchlist now (each entity's newest watchlist fact decides)."""
    with database.session(read_only=True) as session:
        latest = {f.subject: f.object for f in find_facts(session, relation="watchlist", limit=ALL)}
    return {ticker for ticker, state in latest.items() if state == "on"}


@dataclass(frozen=True)
class Gazetteer:
    """The entities as the knowledge base holds them, ready to match text against."""

    names: dict[str, str]  # ticker -> name
    sectors: dict[str, str]  # ticker -> sector
    aliases: dict[str, str]  # alias -> ticker
    pattern: re.Pattern[str] | None

    def find(self, text: str) -> list[str]:
        """The tickers ``text`` mentions, in order of first mention."""
        found = [
            (m.start(), m.group(1)) for m in CASHTAG.finditer(text) if m.group(1) in self.names
        ]
        if self.pattern is not None:
            found += [(m.start(), self.aliases[m.group(0)]) for m in self.pattern.finditer(text)]
        return list(dict.fromkeys(ticker for _, ticker in sorted(found)))

    def peers(self, ticker: str) -> list[str]:
        """The other entities of ``ticker``'s sector."""
        sector = self.sectors.get(ticker)
        return sorted(t for t, s in self.sectors.items() if s == sector and t != ticker)


def load_gazetteer(database: Database) -> Gazetteer:
    """Read the gazetteer's facts from the knowledge base."""
    with database.session(read_only=True) as session:
        by_relation = {
            relation: find_facts(session, relation=relation, limit=ALL)
            for relation in ("name", "sector", "alias")
        }
    aliases = {f.object: f.subject for f in by_relation["alias"]}
    # Longest first, so "Goldman Sachs" wins over a shorter alias at the same place.
    words = sorted(aliases, key=len, reverse=True)
    pattern = re.compile("|".join(rf"\b{re.escape(w)}\b" for w in words)) if words else None
    return Gazetteer(
        {f.subject: f.object for f in by_relation["name"]},
        {f.subject: f.object for f in by_relation["sector"]},
        aliases,
        pattern,
    )


class LinkerInput(BaseModel):
    """A tweet's text."""

    text: str


class LinkerOutput(BaseModel):
    """The entities a tweet is about.

    Attributes:
        tickers: Their tickers, in order of first mention.
        count: How many (routes read it: no entity, nothing to watch).
    """

    tickers: list[str]
    count: int


class GazetteerCache:
    """The gazetteer, read from the run's knowledge base the first time it is needed."""

    def __init__(self) -> None:
        self._gazetteer: Gazetteer | None = None
        self._lock = threading.Lock()

    def get(self, ctx: RunContext) -> Gazetteer:
        """The gazetteer of ``ctx.knowledge``.

        Raises:
            TypeError: The run has no knowledge base.
        """
        with self._lock:
            if self._gazetteer is None:
                if not isinstance(ctx.knowledge, Database):
                    raise TypeError(
                        f"Step '{ctx.step}' reads the entities from the knowledge base: run "
                        "the workflow with an engine that has one (Engine(..., knowledge=db))."
                    )
                self._gazetteer = load_gazetteer(ctx.knowledge)
            return self._gazetteer


class EntityLinker(Agent[LinkerInput, LinkerOutput]):
    """Perception: cashtags and company names resolved to the gazetteer's tickers."""

    name = "entity_linker"
    role = Role.PERCEPTION
    blocking = True  # the first call reads the knowledge base

    def __init__(self) -> None:
        self._gazetteer = GazetteerCache()

    def run(self, input: LinkerInput, ctx: RunContext) -> LinkerOutput:
        tickers = self._gazetteer.get(ctx).find(input.text)
        return LinkerOutput(tickers=tickers, count=len(tickers))
