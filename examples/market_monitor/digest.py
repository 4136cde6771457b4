"""The Markdown digest of a period, generated from the knowledge base.

Per entity mentioned in the period, most mentioned first: its counts by sentiment, the
most bearish and the most bullish tweet (by the classifier's confidence, with the tweet's
link), and the alerts raised with the analysts' verdicts so far. Times are UTC.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge import Database, find_facts
from market_monitor.outcomes import verdict_of
from market_monitor.tables import Alert, DigestEntry

__all__ = ["write_digest"]

LINK = re.compile(r"https?://\S+")
TOP_ENTITIES = 15
QUOTE = 140  # characters of a tweet quoted


def _when(at: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime(fmt)


def _quote(entry: DigestEntry) -> str:
    """The tweet without its link, cut, then the link (if it had one)."""
    link = LINK.search(entry.text)
    text = " ".join(LINK.sub("", entry.text).split())
    text = text if len(text) <= QUOTE else text[: QUOTE - 1] + "…"
    tail = f" ([link]({link.group(0)}))" if link else ""
    return f'"{text}" ({entry.confidence:.2f}){tail}'


def _names(session: Session) -> dict[str, str]:
    return {f.subject: f.object for f in find_facts(session, relation="name", limit=1_000_000)}


def _alert_line(session: Session, alert: Alert, who: str = "") -> str:
    verdict = verdict_of(session, alert.prediction_id) or "not yet judged"
    return (
        f"- {_when(alert.published_at, '%H:%M')} {who}alert #{alert.id}: {alert.direction}, "
        f"{alert.mentions} mentions, {alert.surge:.1f}x baseline, by {alert.decided_by} "
        f"({verdict}; {alert.status})"
    )


def _entity_section(
    session: Session, name: str, ticker: str, entries: list[DigestEntry], alerts: list[Alert]
) -> list[str]:
    counts = Counter(e.sentiment for e in entries)
    lines = [
        f"### {name} ({ticker})",
        "",
        f"{len(entries)} tweets: {counts['bearish']} bearish, {counts['bullish']} bullish, "
        f"{counts['neutral']} neutral; {len(alerts)} alert(s).",
        "",
    ]
    for label in ("bearish", "bullish"):
        scored = [e for e in entries if e.sentiment == label]
        if scored:
            lines.append(f"- most {label}: {_quote(max(scored, key=lambda e: e.confidence))}")
    lines += [_alert_line(session, alert) for alert in alerts]
    return [*lines, ""]


def write_digest(database: Database, since: float, until: float) -> str:
    """The digest of tweets and alerts published in ``[since, until)`` (event time).

    Raises:
        ValueError: ``until`` is not after ``since``.
    """
    if until <= since:
        raise ValueError(f"The period is empty: until ({until}) must be after since ({since}).")
    with database.session(read_only=True) as session:
        entries = list(
            session.scalars(
                select(DigestEntry)
                .where(DigestEntry.published_at >= since, DigestEntry.published_at < until)
                .order_by(DigestEntry.published_at)
            )
        )
        alerts = list(
            session.scalars(
                select(Alert)
                .where(Alert.published_at >= since, Alert.published_at < until)
                .order_by(Alert.published_at)
            )
        )
        names = _names(session)
        by_entity: dict[str, list[DigestEntry]] = defaultdict(list)
        for entry in entries:
            if entry.entity:
                by_entity[entry.entity].append(entry)
        alerted: dict[str, list[Alert]] = defaultdict(list)
        for alert in alerts:
            alerted[alert.entity].append(alert)
        ranked = sorted(by_entity, key=lambda t: (-len(by_entity[t]), t))[:TOP_ENTITIES]
        lines = [
            f"# Market digest: {_when(since)} to {_when(until)} UTC",
            "",
            f"{len(entries)} tweets, {sum(map(len, by_entity.values()))} about a watched "
            f"entity ({len(by_entity)} entities); {len(alerts)} alert(s) raised.",
            "",
            "## Alerts",
            "",
            *[_alert_line(session, a, f"{names.get(a.entity, a.entity)} ") for a in alerts],
            *([] if alerts else ["None."]),
            "",
            f"## Entities (the {len(ranked)} most mentioned)",
            "",
        ]
        for ticker in ranked:
            name = names.get(ticker, ticker)
            lines += _entity_section(session, name, ticker, by_entity[ticker], alerted[ticker])
    return "\n".join(lines)
