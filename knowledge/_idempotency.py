"""Exactly-once side effects: an idempotency key committed with the effect it guards.

A side effect (an execution agent issuing a refund, sending a message, writing an order)
is keyed, usually on ``ctx.idempotency_key`` (stable across retries and resumes of one step
visit). ``run_once`` claims the key, performs the effect and stores its result, all in the
caller's session; the caller commits::

    with database.transaction() as session:
        receipt = run_once(session, ctx.idempotency_key, lambda s: refund(s, order),
                           run_id=ctx.run_id, step=ctx.step)

A second call with the same key (a retry, or the step re-run after a crash) performs
nothing and returns the stored result.

The guarantee, precisely:

- **Effects that are rows in this database, written through the same session: exactly
  once.** The key row and the effect's rows commit in one transaction, so a crash leaves
  both or neither; concurrent callers with one key are serialized by the key's primary key
  (PostgreSQL waits for the first transaction, SQLite's writers take turns), and exactly one
  of them performs the effect.
- **External effects (an HTTP call, an e-mail): at least once.** If the process dies after
  the call but before the commit, the key was never stored and the effect runs again on
  resume. To get exactly once, make the effect idempotent downstream: pass the key to the
  provider as its idempotency key (most payment APIs accept one) or check for it there.
  Committing the claim *before* the call (``claim_key``, commit, call, ``remember_result``
  in a second transaction) gives at most once instead: a crash in between loses the effect,
  and a repeat sees a claimed key with no result.

Results are stored as JSON (pydantic models via ``model_dump(mode="json")``) after passing
through the redactor, and a repeat call returns that stored form.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from knowledge._errors import IdempotencyError
from knowledge._models import IdempotencyKey
from knowledge._redact import redactor_for

__all__ = ["Claim", "claim_key", "remember_result", "run_once"]

_KEYS = cast("Table", IdempotencyKey.__table__)  # typed as a FromClause
_KEY_LENGTH = 500  # the column's size
_INSERTS: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming an idempotency key; true if this caller won it.

    Attributes:
        key: The key.
        won: True: perform the effect now, in the same transaction. False: it was done
            before (committed), and ``result`` holds what was stored.
        result: The stored result when ``won`` is False (None if none was stored).
    """

    key: str
    won: bool
    result: Any = None

    def __bool__(self) -> bool:
        return self.won


def claim_key(
    session: Session,
    key: str,
    *,
    run_id: str | None = None,
    step: str | None = None,
    now: float | None = None,
) -> Claim:
    """Claim ``key`` in the session's transaction, unless a committed claim exists.

    The claim becomes visible to others only when the caller commits; until then a
    concurrent claim of the same key waits (PostgreSQL) or cannot start (SQLite), so exactly
    one transaction wins. A rollback releases the claim.

    Args:
        session: The session whose transaction also writes the side effect's rows.
        key: The idempotency key (at most 500 characters), e.g. ``ctx.idempotency_key``.
        run_id: The run the effect belongs to, for lookups and audits.
        step: The step that performs it.
        now: The claim time in epoch seconds (default: now).

    Returns:
        A ``Claim``; ``if claim:`` reads as "this caller performs the effect".

    Raises:
        IdempotencyError: The key is empty or too long, or the backend is not supported.
    """
    if not key or len(key) > _KEY_LENGTH:
        raise IdempotencyError(
            f"An idempotency key must have 1 to {_KEY_LENGTH} characters, got {len(key)}: "
            "use a short stable id such as ctx.idempotency_key, or a hash of a longer one."
        )
    dialect = session.get_bind().dialect.name
    try:
        make_insert = _INSERTS[dialect]
    except KeyError:
        raise IdempotencyError(
            f"Idempotency keys need INSERT ... ON CONFLICT, available here on "
            f"{', '.join(sorted(_INSERTS))}; this session is bound to '{dialect}'."
        ) from None
    statement = (
        make_insert(_KEYS)
        .on_conflict_do_nothing(index_elements=[_KEYS.c.key])
        .returning(_KEYS.c.key)  # a row only if inserted (rowcount is -1 with psycopg here)
    )
    values = {
        "key": key,
        "run_id": run_id,
        "step": step,
        "result": None,
        "created_at": time.time() if now is None else now,
    }
    if session.execute(statement, values).first() is not None:
        return Claim(key, won=True)
    stored = session.execute(select(_KEYS.c.result).where(_KEYS.c.key == key)).scalar_one()
    return Claim(key, won=False, result=stored)


def remember_result(session: Session, key: str, result: Any) -> Any:
    """Store the result of the effect guarded by ``key`` (claimed in this transaction).

    Args:
        session: The session that claimed the key.
        key: The claimed key.
        result: A pydantic model or JSON-able value; stored redacted.

    Returns:
        The JSON form of ``result`` (before redaction), as ``run_once`` returns it.

    Raises:
        IdempotencyError: ``key`` was never claimed.
    """
    value = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    value = to_jsonable_python(value)
    stored = redactor_for(session).json(value)
    statement = update(_KEYS).where(_KEYS.c.key == key).values(result=stored)
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        raise IdempotencyError(
            f"Cannot store a result for idempotency key '{key}': it was never claimed. "
            "Call claim_key(session, key) first, in the same transaction as the effect."
        )
    return value


def run_once(
    session: Session,
    key: str,
    effect: Callable[[Session], Any],
    *,
    run_id: str | None = None,
    step: str | None = None,
) -> Any:
    """Perform ``effect(session)`` once per ``key``; later calls return its stored result.

    The key row and whatever ``effect`` writes through ``session`` commit together when the
    caller commits (see the module docstring for external effects). If ``effect`` raises,
    roll the transaction back: the claim goes with it and a later call tries again.

    Args:
        session: The session the effect writes through; the caller commits it.
        key: The idempotency key, e.g. ``ctx.idempotency_key``.
        effect: Performs the side effect and returns its result (JSON-able or pydantic).
        run_id: The run the effect belongs to.
        step: The step that performs it.

    Returns:
        The effect's result in JSON form: fresh on the first call, stored (and redacted)
        on later ones.
    """
    claim = claim_key(session, key, run_id=run_id, step=step)
    if not claim:
        return claim.result
    return remember_result(session, key, effect(session))
