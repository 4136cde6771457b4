"""Facts: stored with provenance and redacted, found by any part."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from knowledge import Database, FactIn, add_fact, add_facts, find_facts
from knowledge import _models as orm

EMAIL = "jane.doe@example.com"
SOURCE = {"document": "fees.md", "chunk": 3}


def fact(subject: str, relation: str, obj: str, **kw: object) -> FactIn:
    return FactIn(subject=subject, relation=relation, object=obj, provenance=SOURCE, **kw)


def test_facts_are_stored_with_their_provenance_and_found_by_any_part(database: Database) -> None:
    with database.transaction() as session:
        one = add_fact(session, fact("gold card", "annual_fee", "95 EUR", confidence=0.9))
        many = add_facts(
            session,
            [
                fact("gold card", "atm_limit", "1000 EUR"),
                fact("basic card", "annual_fee", "0 EUR"),
                fact("basic card", "atm_limit", "300 EUR"),
            ],
        )

    assert [f.object for f in many] == ["1000 EUR", "0 EUR", "300 EUR"]
    assert (one.provenance, one.confidence) == (SOURCE, 0.9)
    with database.session() as session:
        assert find_facts(session, subject="gold card") == [one, many[0]]
        assert find_facts(session, relation="annual_fee") == [one, many[1]]
        assert find_facts(session, object="300 EUR") == [many[2]]
        assert find_facts(session, subject="basic card", relation="atm_limit") == [many[2]]
        assert find_facts(session, subject="gold card", limit=1) == [one]
        assert find_facts(session, subject="platinum card") == []
    assert add_facts(database.session(), []) == []


def test_personal_data_in_facts_is_redacted_and_still_findable(database: Database) -> None:
    with database.transaction() as session:
        stored = add_fact(session, fact(f"customer {EMAIL}", "prefers", f"mail to {EMAIL}"))

    assert EMAIL not in stored.subject + stored.object
    with database.session() as session:
        row = session.scalars(select(orm.Fact)).one()
        assert EMAIL not in row.subject + row.object
        # The query is redacted the same way, so it still finds the fact.
        assert find_facts(session, subject=f"customer {EMAIL}") == [stored]


def test_find_facts_needs_something_to_match(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="at least one of subject"):
        find_facts(session)
