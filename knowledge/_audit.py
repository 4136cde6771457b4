"""The audit log: who did what to which entity, when.

Store functions that change something people rely on (feedback submitted, an alias moved)
write an entry in the same transaction as the change, so the log and the data never
disagree. Details pass through the session's redactor like every other stored text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._dto import AuditEntry
from knowledge._redact import redactor_for

__all__ = ["audit", "audit_log"]

NAME_LIMIT = 200  # the actor, action, entity and entity_id columns


def _check_names(**names: str | None) -> None:
    """Reject names the columns cannot hold, the same way on every backend."""
    for field, value in names.items():
        if value is not None and not 0 < len(value) <= NAME_LIMIT:
            raise ValueError(
                f"audit {field} must be 1 to {NAME_LIMIT} characters, got {len(value)}: "
                f"{value[:40]!r}..."
            )


def audit(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int | None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Record that ``actor`` did ``action`` to an entity; the caller commits.

    Args:
        session: The session whose transaction holds the change being audited.
        actor: Who did it (a user name, a service, ``system``).
        action: What was done, as ``entity.verb`` (``alias.move``, ``feedback.submit``).
        entity: The kind of thing changed (a table name: ``feedback``, ``model_aliases``).
        entity_id: Its id, or None for something without one.
        details: Anything else worth keeping (JSON; redacted before it is stored).

    Returns:
        The stored entry.
    """
    key = None if entity_id is None else str(entity_id)
    _check_names(actor=actor, action=action, entity=entity, entity_id=key)
    row = orm.AuditEntry(
        at=time.time(),
        actor=actor,
        action=action,
        entity=entity,
        entity_id=key,
        details=redactor_for(session).json(dict(details or {})),
    )
    session.add(row)
    session.flush()
    return AuditEntry.model_validate(row)


def audit_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many already-checked entries at once (for batch writers); details unredacted.

    Each row has the columns of ``audit_log`` except ``id``. Callers pass details that hold
    ids and labels only, which is why they skip the redactor: a batch of 1,000 feedback rows
    would otherwise pay for 1,000 redactions of text that cannot contain personal data.
    """
    if rows:
        session.execute(insert(cast(Table, orm.AuditEntry.__table__)), list(rows))


def audit_log(
    session: Session,
    *,
    entity: str | None = None,
    entity_id: str | int | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Return audit entries matching every filter given, newest first.

    Args:
        session: A session.
        entity: Only entries about this kind of entity.
        entity_id: Only entries about this id (of ``entity``).
        actor: Only entries by this actor.
        action: Only entries of this action.
        limit: At most this many entries.

    Returns:
        The entries, newest first.
    """
    query = select(orm.AuditEntry).order_by(orm.AuditEntry.id.desc()).limit(limit)
    if entity is not None:
        query = query.where(orm.AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(orm.AuditEntry.entity_id == str(entity_id))
    if actor is not None:
        query = query.where(orm.AuditEntry.actor == actor)
    if action is not None:
        query = query.where(orm.AuditEntry.action == action)
    return [AuditEntry.model_validate(row) for row in session.scalars(query)]
