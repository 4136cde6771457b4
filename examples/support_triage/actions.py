"""What the triage workflow does: reply, ask, freeze a card, open a ticket.

Each action is a typed function marked ``@action``; the ``ActionSelector`` steps fill its
arguments (explicit values from upstream steps, else extracted entities: ``amount`` from an
``amount_of_money`` entity...) and run it under the step visit's idempotency key. The
``Session`` parameter is the knowledge base's transaction that also holds that key, so the
rows written here (the outbox message, the ticket, the freeze) commit exactly once with it,
even when the engine retries a step.

The three tables are the example's own, created in the knowledge base's database next to
taskloom's tables (``create_tables``).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Literal

from sqlalchemy import Float, MetaData, String, Text, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from agents import action
from knowledge import Database
from support_triage.data import fill_article, load_articles

__all__ = [
    "ACTIONS",
    "CardFreeze",
    "OutboxMessage",
    "SupportTicket",
    "ask_clarification",
    "count_rows",
    "create_tables",
    "create_ticket",
    "freeze_card",
    "send_reply",
]

Priority = Literal["urgent", "high", "normal"]


class Base(DeclarativeBase):
    """The example's tables (prefixed ``demo_``; taskloom's own names stay untouched)."""

    metadata = MetaData(
        naming_convention={"pk": "pk_%(table_name)s", "ix": "ix_%(table_name)s_%(column_0_name)s"}
    )


class OutboxMessage(Base):
    """A message sent to the customer: an article reply or a clarifying question."""

    __tablename__ = "demo_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # reply | clarify
    intent: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class SupportTicket(Base):
    """A ticket in the human team's queue."""

    __tablename__ = "demo_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(64), index=True)
    intent: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class CardFreeze(Base):
    """A card frozen because the customer's card is lost, stolen or compromised."""

    __tablename__ = "demo_card_freezes"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(64), index=True)
    card_last4: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[float] = mapped_column(Float)


def create_tables(database: Database) -> None:
    """Create the example's tables in the knowledge base (idempotent)."""
    with database.session():  # opens (and on SQLite migrates) the knowledge base first
        pass
    Base.metadata.create_all(database.engine)


def count_rows(database: Database) -> dict[str, int]:
    """Rows per example table: what the workflow did, as the database records it."""
    with database.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (OutboxMessage, SupportTicket, CardFreeze)
        }


@cache
def _articles() -> dict[str, str]:
    return load_articles()


@action
def send_reply(
    ticket_id: str,
    intent: str,
    session: Session,
    amount: str = "",
    date: str = "",
    company: str = "",
) -> dict[str, str]:
    """Reply with the intent's help article, its placeholders filled from the slots."""
    slots = {"amount_of_money": amount, "date": date, "company_name": company}
    body = fill_article(_articles()[intent], slots)
    session.add(
        OutboxMessage(
            ticket_id=ticket_id, kind="reply", intent=intent, body=body, created_at=time.time()
        )
    )
    return {"sent": body}


@action
def ask_clarification(ticket_id: str, intent: str, session: Session) -> dict[str, str]:
    """Ask the customer to say more, naming the topic the classifier leaned towards."""
    topic = intent.replace("_", " ").rstrip("?").lower()
    body = (
        f"Thanks for your message. To help you quickly: is your question about {topic}? "
        "Please tell us a little more."
    )
    session.add(
        OutboxMessage(
            ticket_id=ticket_id, kind="clarify", intent=intent, body=body, created_at=time.time()
        )
    )
    return {"sent": body}


@action
def freeze_card(ticket_id: str, session: Session, card_last4: str = "") -> dict[str, bool]:
    """Freeze the customer's card (which one, if the message gave its last digits)."""
    session.add(CardFreeze(ticket_id=ticket_id, card_last4=card_last4, created_at=time.time()))
    return {"frozen": True}


@action
def create_ticket(
    ticket_id: str, intent: str, priority: Priority, reasons: str, session: Session
) -> dict[str, str]:
    """Open a ticket for the human team, with the decision's reasons."""
    session.add(
        SupportTicket(
            ticket_id=ticket_id,
            intent=intent,
            priority=priority,
            reason=reasons,
            created_at=time.time(),
        )
    )
    return {"ticket": ticket_id, "priority": priority}


ACTIONS = (send_reply, ask_clarification, freeze_card, create_ticket)
