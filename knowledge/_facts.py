"""Facts: structured statements (subject, relation, object), each with its provenance.

Subjects and objects are free text and may name people, so both pass through the session's
redactor before they are stored; ``find_facts`` redacts its arguments the same way, so a
query for a value finds the facts stored about it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._bulk import insert_ids
from knowledge._dto import Fact, FactIn
from knowledge._redact import redactor_for

__all__ = ["add_fact", "add_facts", "find_facts"]


def add_facts(session: Session, facts: Sequence[FactIn]) -> list[Fact]:
    """Store many facts in one INSERT; the caller commits.

    Args:
        session: The session to write in.
        facts: The facts; ``FactIn`` requires a non-empty provenance.

    Returns:
        The stored facts with their ids, in the order given.
    """
    if not facts:
        return []
    redactor = redactor_for(session)
    now = time.time()
    rows: list[dict[str, Any]] = [
        {
            "subject": redactor.text(fact.subject),
            "relation": fact.relation,
            "object": redactor.text(fact.object),
            "provenance": redactor.json(fact.provenance),
            "confidence": fact.confidence,
            "created_at": now,
        }
        for fact in facts
    ]
    ids = insert_ids(session, orm.Fact, rows)
    return [Fact.model_construct(**row, id=id_) for row, id_ in zip(rows, ids, strict=True)]


def add_fact(session: Session, fact: FactIn) -> Fact:
    """Store one fact; the caller commits.

    Args:
        session: The session to write in.
        fact: The fact.

    Returns:
        The stored fact with its id.
    """
    return add_facts(session, [fact])[0]


def find_facts(
    session: Session,
    *,
    subject: str | None = None,
    relation: str | None = None,
    object: str | None = None,
    limit: int = 100,
) -> list[Fact]:
    """Return the facts matching every part given exactly, oldest first.

    Args:
        session: A session.
        subject: Only facts about this subject.
        relation: Only facts with this relation.
        object: Only facts with this object.
        limit: At most this many facts.

    Returns:
        The matching facts.

    Raises:
        ValueError: No part was given (that would list the whole table).
    """
    if subject is None and relation is None and object is None:
        raise ValueError(
            "find_facts needs at least one of subject, relation or object; to page through "
            "every fact, query the facts table directly."
        )
    redactor = redactor_for(session)
    query = select(orm.Fact).order_by(orm.Fact.id).limit(limit)
    if subject is not None:
        query = query.where(orm.Fact.subject == redactor.text(subject))
    if relation is not None:
        query = query.where(orm.Fact.relation == relation)
    if object is not None:
        query = query.where(orm.Fact.object == redactor.text(object))
    return [Fact.model_validate(row) for row in session.scalars(query)]
