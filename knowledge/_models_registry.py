"""Model versions and the aliases agents serve from (``serving``, ``candidate``...).

An alias is its history: each move is a ``model_aliases`` row naming the version moved to and
the one moved from, and the newest row is where the alias points. A move, its history row and
its audit entry are written in the caller's transaction, so they commit or vanish together.
Moves of one agent's aliases are serialized by locking that agent's version rows (``FOR
UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already allows one writer).

Moving the ``serving`` alias also keeps the versions' ``status`` in step: the version moved to
becomes ``serving`` and the one moved from ``retired``.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from knowledge import _models as orm
from knowledge._audit import audit
from knowledge._dto import AliasMove, ModelVersion, ModelVersionIn
from knowledge._errors import DuplicateModelVersionError, RollbackError, UnknownModelVersionError
from knowledge._redact import redactor_for

__all__ = [
    "SERVING",
    "alias_history",
    "get_alias",
    "get_model_version",
    "model_agents",
    "model_versions",
    "register_model_version",
    "rollback",
    "serving_version",
    "set_alias",
]

SERVING = "serving"
NAME_LIMIT = 200  # the alias and actor columns


def register_model_version(session: Session, version: ModelVersionIn) -> ModelVersion:
    """Register a trained model artifact; the caller commits.

    Args:
        session: The session to write in.
        version: The version; ``ModelVersionIn`` checks the sha256 is 64 hex digits.

    Returns:
        The registered version.

    Raises:
        DuplicateModelVersionError: The agent already has a version of that name.
    """
    taken = select(orm.ModelVersion.id).where(
        orm.ModelVersion.agent == version.agent, orm.ModelVersion.version == version.version
    )
    if session.scalar(taken) is not None:
        raise DuplicateModelVersionError(version.agent, version.version)
    row = orm.ModelVersion(**version.model_dump(), created_at=time.time())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:  # registered by another process since the check
        raise DuplicateModelVersionError(version.agent, version.version) from exc
    return ModelVersion.model_validate(row)


def _version_row(session: Session, agent: str, version: str) -> orm.ModelVersion:
    row = session.scalar(
        select(orm.ModelVersion).where(
            orm.ModelVersion.agent == agent, orm.ModelVersion.version == version
        )
    )
    if row is None:
        known = session.scalars(
            select(orm.ModelVersion.version)
            .where(orm.ModelVersion.agent == agent)
            .order_by(orm.ModelVersion.id)
        ).all()
        raise UnknownModelVersionError(agent, version, list(known))
    return row


def get_model_version(session: Session, agent: str, version: str) -> ModelVersion:
    """Return one model version.

    Raises:
        UnknownModelVersionError: The agent has no such version; the message lists its versions.
    """
    return ModelVersion.model_validate(_version_row(session, agent, version))


def model_versions(session: Session, agent: str) -> list[ModelVersion]:
    """Return every registered version of ``agent``, oldest first."""
    query = (
        select(orm.ModelVersion)
        .where(orm.ModelVersion.agent == agent)
        .order_by(orm.ModelVersion.id)
    )
    return [ModelVersion.model_validate(row) for row in session.scalars(query)]


def _check_move(alias: str, actor: str) -> None:
    """Reject names the history columns cannot hold, before anything is written."""
    for field, value in (("alias", alias), ("actor", actor)):
        if not 0 < len(value) <= NAME_LIMIT:
            raise ValueError(f"{field} must be 1 to {NAME_LIMIT} characters, got {value!r}.")


def _lock(session: Session, agent: str) -> None:
    """Serialize alias moves of one agent until the transaction ends."""
    session.execute(
        select(orm.ModelVersion.id).where(orm.ModelVersion.agent == agent).with_for_update()
    ).all()


def _current(session: Session, agent: str, alias: str) -> orm.ModelAlias | None:
    query = (
        select(orm.ModelAlias)
        .where(orm.ModelAlias.agent == agent, orm.ModelAlias.alias == alias)
        .order_by(orm.ModelAlias.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _as_move(session: Session, row: orm.ModelAlias) -> AliasMove:
    def name(id_: int | None) -> str | None:
        return None if id_ is None else session.get_one(orm.ModelVersion, id_).version

    return AliasMove(
        id=row.id,
        agent=row.agent,
        alias=row.alias,
        version=session.get_one(orm.ModelVersion, row.model_version_id).version,
        previous_version=name(row.previous_version_id),
        actor=row.actor,
        reason=row.reason,
        at=row.at,
    )


def _move(
    session: Session,
    target: orm.ModelVersion,
    current: orm.ModelAlias | None,
    alias: str,
    actor: str,
    reason: str,
    action: str,
) -> AliasMove:
    """Point ``alias`` at ``target``: history row, statuses, audit entry."""
    previous_id = None if current is None else current.model_version_id
    row = orm.ModelAlias(
        agent=target.agent,
        alias=alias,
        model_version_id=target.id,
        previous_version_id=previous_id,
        actor=actor,
        reason=redactor_for(session).text(reason),
        at=time.time(),
    )
    session.add(row)
    if alias == SERVING:
        target.status = "serving"
        if previous_id is not None and previous_id != target.id:
            session.get_one(orm.ModelVersion, previous_id).status = "retired"
    session.flush()
    move = _as_move(session, row)
    audit(
        session,
        actor,
        action,
        "model_aliases",
        row.id,
        {
            "agent": move.agent,
            "alias": alias,
            "version": move.version,
            "from": move.previous_version,
        },
    )
    return move


def set_alias(
    session: Session, agent: str, alias: str, version: str, actor: str, reason: str
) -> AliasMove:
    """Point ``alias`` of ``agent`` at ``version``; the caller commits.

    Setting an alias to the version it already points at changes nothing and returns the
    current move, so a promotion retried after a crash is harmless.

    Args:
        session: The session to write in.
        agent: The agent.
        alias: The alias (``serving``, ``candidate``...).
        version: The version to point at.
        actor: Who moves it (kept in the history and the audit log).
        reason: Why (kept likewise; redacted).

    Returns:
        The move.

    Raises:
        UnknownModelVersionError: The agent has no such version.
    """
    _check_move(alias, actor)
    _lock(session, agent)
    target = _version_row(session, agent, version)
    current = _current(session, agent, alias)
    if current is not None and current.model_version_id == target.id:
        return _as_move(session, current)
    return _move(session, target, current, alias, actor, reason, "alias.move")


def rollback(
    session: Session, agent: str, alias: str, actor: str, reason: str = "rollback"
) -> AliasMove:
    """Undo the alias's most recent move: point it back at the version it came from.

    A rollback is itself a move, so a second rollback undoes the first.

    Args:
        session: The session to write in.
        agent: The agent.
        alias: The alias.
        actor: Who rolls back.
        reason: Why.

    Returns:
        The move back.

    Raises:
        RollbackError: The alias was never set, or has pointed at one version only.
    """
    _check_move(alias, actor)
    _lock(session, agent)
    current = _current(session, agent, alias)
    if current is None:
        raise RollbackError(agent, alias, "it has never been set")
    if current.previous_version_id is None:
        only = session.get_one(orm.ModelVersion, current.model_version_id).version
        raise RollbackError(agent, alias, f"it has pointed at '{only}' only, since it was set")
    target = session.get_one(orm.ModelVersion, current.previous_version_id)
    return _move(session, target, current, alias, actor, reason, "alias.rollback")


def get_alias(session: Session, agent: str, alias: str) -> ModelVersion | None:
    """Return the version ``alias`` points at, or None if it was never set."""
    current = _current(session, agent, alias)
    if current is None:
        return None
    return ModelVersion.model_validate(session.get_one(orm.ModelVersion, current.model_version_id))


def serving_version(session: Session, agent: str) -> ModelVersion | None:
    """Return the version agents should serve (the ``serving`` alias), or None."""
    return get_alias(session, agent, SERVING)


def alias_history(
    session: Session, agent: str, alias: str, *, limit: int | None = None
) -> list[AliasMove]:
    """Return the moves of ``alias``, newest first (the first is where it points now).

    Args:
        session: A session.
        agent: The agent.
        alias: The alias.
        limit: At most this many moves.

    Returns:
        The moves.
    """
    new, old = aliased(orm.ModelVersion), aliased(orm.ModelVersion)
    query = (
        select(orm.ModelAlias, new.version, old.version)
        .join(new, new.id == orm.ModelAlias.model_version_id)
        .outerjoin(old, old.id == orm.ModelAlias.previous_version_id)
        .where(orm.ModelAlias.agent == agent, orm.ModelAlias.alias == alias)
        .order_by(orm.ModelAlias.id.desc())
        .limit(limit)
    )
    return [
        AliasMove(
            id=row.id,
            agent=row.agent,
            alias=row.alias,
            version=version,
            previous_version=previous,
            actor=row.actor,
            reason=row.reason,
            at=row.at,
        )
        for row, version, previous in session.execute(query)
    ]


def model_agents(session: Session) -> dict[str, int]:
    """Return every agent with registered model versions, and how many each has."""
    query = (
        select(orm.ModelVersion.agent, func.count())
        .group_by(orm.ModelVersion.agent)
        .order_by(orm.ModelVersion.agent)
    )
    return {agent: count for agent, count in session.execute(query)}
