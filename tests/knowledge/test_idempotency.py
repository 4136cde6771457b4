"""Idempotency keys: a side effect and its key commit together, and happen once per key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from knowledge import Claim, IdempotencyError, claim_key, remember_result, run_once
from knowledge._models import IdempotencyKey

EMAIL = "jane.doe@example.com"
METADATA = MetaData()
EFFECTS = Table(
    "test_effects",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("what", String(100), nullable=False),
)


class Receipt(BaseModel):
    number: int
    to: str


@pytest.fixture
def db(database: Any) -> Iterator[Any]:
    METADATA.create_all(database.engine)
    yield database
    METADATA.drop_all(database.engine)


def effects(database: Any) -> list[str]:
    with database.engine.connect() as conn:
        return list(conn.execute(select(EFFECTS.c.what).order_by(EFFECTS.c.id)).scalars())


def keys(database: Any) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one())


def refund(calls: list[str], to: str = "ann") -> Any:
    def effect(session: Session) -> Receipt:
        calls.append(to)
        session.execute(insert(EFFECTS), {"what": f"refund to {to}"})
        return Receipt(number=len(calls), to=to)

    return effect


def test_the_effect_happens_once_and_repeats_return_its_stored_result(db: Any) -> None:
    calls: list[str] = []
    with db.transaction() as session:
        first = run_once(session, "run1:execute:1", refund(calls), run_id="run1", step="execute")
    with db.transaction() as session:
        second = run_once(session, "run1:execute:1", refund(calls))
    assert first == second == {"number": 1, "to": "ann"}
    assert calls == ["ann"]
    assert effects(db) == ["refund to ann"]
    with db.engine.connect() as conn:
        row = conn.execute(select(IdempotencyKey)).one()
    assert (row.key, row.run_id, row.step) == ("run1:execute:1", "run1", "execute")
    with db.transaction() as session:  # another key is another effect
        assert run_once(session, "run1:execute:2", refund(calls, "bob"))["number"] == 2
    assert effects(db) == ["refund to ann", "refund to bob"]


def test_a_failed_effect_leaves_neither_key_nor_rows(db: Any) -> None:
    def broken(session: Session) -> None:
        session.execute(insert(EFFECTS), {"what": "half done"})
        raise RuntimeError("payment service down")

    with pytest.raises(RuntimeError, match="payment service down"), db.transaction() as session:
        run_once(session, "k", broken)
    assert (effects(db), keys(db)) == ([], 0)
    calls: list[str] = []
    with db.transaction() as session:  # the retry performs it
        assert run_once(session, "k", refund(calls)) == {"number": 1, "to": "ann"}
    assert effects(db) == ["refund to ann"]


def test_claim_and_remember_by_hand(db: Any) -> None:
    with db.transaction() as session:
        claim = claim_key(session, "k", run_id="r", step="s", now=5.0)
        assert claim == Claim("k", won=True)
        assert claim
        session.execute(insert(EFFECTS), {"what": "sent"})
        assert remember_result(session, "k", ["ok", 1]) == ["ok", 1]
    with db.transaction() as session:
        again = claim_key(session, "k")
        assert not again
        assert again.result == ["ok", 1]
    with db.engine.connect() as conn:
        assert conn.execute(select(IdempotencyKey.created_at)).scalar_one() == 5.0


def test_remembering_an_unclaimed_key_is_an_error(db: Any) -> None:
    with db.session() as session, pytest.raises(IdempotencyError, match="never claimed"):
        remember_result(session, "nobody-claimed-me", 1)


@pytest.mark.parametrize("key", ["", "k" * 501])
def test_empty_or_overlong_keys_are_refused(db: Any, key: str) -> None:
    with db.session() as session, pytest.raises(IdempotencyError, match="1 to 500 characters"):
        claim_key(session, key)


def test_stored_results_are_redacted(db: Any) -> None:
    calls: list[str] = []
    with db.transaction() as session:
        fresh = run_once(session, "k", refund(calls, EMAIL))
    with db.transaction() as session:
        stored = run_once(session, "k", refund(calls, EMAIL))
    assert fresh["to"] == EMAIL  # the caller gets its own result back as it was
    assert EMAIL not in repr(stored)
    assert stored["number"] == 1


def test_concurrent_claims_of_one_key_perform_the_effect_once(db: Any) -> None:
    """B starts while A holds the claim uncommitted: B waits, then gets A's stored result."""
    claimed, events = threading.Event(), []
    results: dict[str, Any] = {}

    def first() -> None:
        with db.transaction() as session:
            results["a"] = run_once(session, "k", refund([], "a"))
            claimed.set()
            time.sleep(0.3)  # hold the claim, uncommitted, while B tries
        events.append("a committed")

    def second() -> None:
        claimed.wait(10)
        with db.transaction() as session:
            results["b"] = run_once(session, "k", refund([], "b"))
        events.append("b returned")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert events == ["a committed", "b returned"]
    assert results["a"] == results["b"] == {"number": 1, "to": "a"}
    assert effects(db) == ["refund to a"]
