"""Execution: raise an alert into the outbox, and note every tweet in the digest.

Both agents write through ``run_once`` under the step visit's idempotency key, so an engine
retry or a resumed run never writes twice. Alerts are deduplicated as well: one per entity
and stream bucket (``dedup_key``), so tweets about one entity that run concurrently, each
deciding to alert, raise one alert; the others answer ``duplicate`` with its id. Delivery to
the webhook happens later, from the outbox (``webhook.deliver``): a webhook that is down
loses nothing.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents import Agent, Role, RunContext
from knowledge import Database, run_once
from market_monitor.history import HistoryOutput, bucket_start
from market_monitor.tables import Alert, DigestEntry

__all__ = ["AlertInput", "AlertOutput", "AlertSender", "DigestNote", "NoteInput", "NoteOutput"]


def _database(ctx: RunContext, agent: str) -> Database:
    if not isinstance(ctx.knowledge, Database):
        raise TypeError(f"{agent} writes to the knowledge base: run it with one.")
    return ctx.knowledge


class AlertInput(BaseModel):
    """The tweet that tipped the decision, what the history showed, and who decided."""

    item_id: str
    published_at: float
    text: str
    history: HistoryOutput
    decided_by: str
    prediction_id: int | None = None


class AlertOutput(BaseModel):
    """The alert raised, or the one this tweet's alert duplicates."""

    alert_id: int
    dedup_key: str
    duplicate: bool


def summary(history: HistoryOutput, text: str, decided_by: str) -> str:
    """The alert's message: what moved, how much, the sector, and the latest tweet."""
    h = history
    peers = f" ({', '.join(h.peers)})" if h.peers else ""
    return (
        f"{h.name} ({h.entity}) {h.direction}: {h.mentions} mentions in the window, "
        f"{h.surge:.1f}x its baseline ({h.bearish} bearish, {h.bullish} bullish, "
        f"{h.neutral} neutral). Sector {h.sector or '-'}: {h.sector_trend}{peers}. "
        f"Decided by {decided_by}. Latest: {text}"
    )


class AlertSender(Agent[AlertInput, AlertOutput]):
    """Execution: write the alert to the outbox (``mm_alerts``), once per entity and bucket.

    Args:
        bucket_s: The stream's bucket (the same as the history's).
    """

    name = "alert_sender"
    role = Role.EXECUTION
    blocking = True

    def __init__(self, *, bucket_s: float = 300.0) -> None:
        self.bucket_s = bucket_s

    def run(self, input: AlertInput, ctx: RunContext) -> AlertOutput:
        database = _database(ctx, "AlertSender")
        with database.transaction() as session:
            result = run_once(
                session,
                ctx.idempotency_key,
                lambda s: self._raise(s, input, ctx.run_id),
                run_id=ctx.run_id,
                step=ctx.step,
            )
        return AlertOutput.model_validate(result)

    def _raise(self, session: Session, input: AlertInput, run_id: str) -> AlertOutput:
        h = input.history
        key = f"{h.entity}:{int(bucket_start(input.published_at, self.bucket_s))}"
        alert = Alert(
            dedup_key=key,
            entity=h.entity,
            direction=h.direction,
            published_at=input.published_at,
            item_id=input.item_id,
            run_id=run_id,
            prediction_id=input.prediction_id,
            decided_by=input.decided_by,
            mentions=h.mentions,
            surge=h.surge,
            summary=summary(h, input.text, input.decided_by),
            status="pending",
            attempts=0,
            last_error="",
            created_at=time.time(),
        )
        try:
            with session.begin_nested():  # a concurrent tweet may have raised it first
                session.add(alert)
            return AlertOutput(alert_id=alert.id, dedup_key=key, duplicate=False)
        except IntegrityError:
            first = session.scalar(select(Alert.id).where(Alert.dedup_key == key))
            if first is None:
                raise
            return AlertOutput(alert_id=first, dedup_key=key, duplicate=True)


class NoteInput(BaseModel):
    """A finished tweet and what the workflow made of it."""

    item_id: str
    published_at: float
    text: str
    sentiment: str
    confidence: float
    entity: str | None = None
    decision: str = "none"
    alert_id: int | None = None


class NoteOutput(BaseModel):
    """The digest entry."""

    entry_id: int


class DigestNote(Agent[NoteInput, NoteOutput]):
    """Execution: append the tweet to the digest (``mm_digest``), once per tweet."""

    name = "digest_note"
    role = Role.EXECUTION
    blocking = True

    def run(self, input: NoteInput, ctx: RunContext) -> NoteOutput:
        database = _database(ctx, "DigestNote")
        with database.transaction() as session:
            result = run_once(
                session,
                ctx.idempotency_key,
                lambda s: _note(s, input),
                run_id=ctx.run_id,
                step=ctx.step,
            )
        return NoteOutput.model_validate(result)


def _note(session: Session, input: NoteInput) -> dict[str, Any]:
    existing = session.scalar(select(DigestEntry.id).where(DigestEntry.item_id == input.item_id))
    if existing is not None:  # the same tweet submitted again: one entry
        return {"entry_id": existing}
    entry = DigestEntry(**input.model_dump())
    session.add(entry)
    session.flush()
    return {"entry_id": entry.id}
