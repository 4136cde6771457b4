"""The monitor's own tables, next to taskloom's in the knowledge base's database.

- ``mm_mentions``: one row per (tweet, entity) the reasoning step has seen: the rolling
  windows and baselines are counted from it;
- ``mm_alerts``: the alert outbox: one row per alert, unique per entity and stream bucket
  (so concurrent tweets about one entity raise one alert), with its webhook delivery state;
- ``mm_digest``: every tweet the workflow finished, with what it decided: the digest is
  generated from it.

An analyst's verdict on an alert is not stored here: it is feedback on the decision's
prediction (``outcomes.mark_alert``), which is what trains the decision agent.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from knowledge import Database

__all__ = ["Alert", "DigestEntry", "Mention", "create_tables"]


class Base(DeclarativeBase):
    """The example's tables (prefixed ``mm_``; taskloom's own names stay untouched)."""

    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
        }
    )


class Mention(Base):
    """A tweet about an entity, with its sentiment: the evidence windows are counted from."""

    __tablename__ = "mm_mentions"
    __table_args__ = (
        UniqueConstraint("item_id", "entity"),
        Index("ix_mm_mentions_entity_time", "entity", "published_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)


class Alert(Base):
    """An alert in the outbox: what was sent, why, and whether the webhook has it.

    ``status`` is ``pending`` until the webhook accepted it (``delivered``); after
    ``webhook.deliver``'s last attempt it is ``failed``, with ``attempts`` and ``last_error``.
    """

    __tablename__ = "mm_alerts"
    __table_args__ = (Index("ix_mm_alerts_entity_time", "entity", "published_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    entity: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[float] = mapped_column(Float)
    item_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    prediction_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(16))
    mentions: Mapped[int] = mapped_column(Integer)
    surge: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


class DigestEntry(Base):
    """A finished tweet: its sentiment, the entity it was about, and what was decided."""

    __tablename__ = "mm_digest"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), unique=True)
    published_at: Mapped[float] = mapped_column(Float, index=True)
    text: Mapped[str] = mapped_column(Text)
    sentiment: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    entity: Mapped[str | None] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16))  # alert | hold | none (no entity)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("mm_alerts.id"))


def create_tables(database: Database) -> None:
    """Create the example's tables in the knowledge base (idempotent)."""
    with database.session():  # opens (and on SQLite migrates) the knowledge base first
        pass
    Base.metadata.create_all(database.engine)
