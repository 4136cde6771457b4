"""API keys: only a hash is stored, tokens authenticate until revoked, roles are ordered."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from sqlalchemy import inspect, text

from knowledge import (
    ROLES,
    ApiKey,
    Database,
    UnknownApiKeyError,
    audit_log,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    role_allows,
)

TOKEN = re.compile(r"tlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def make_key(database: Database, name: str = "alice", role: str = "labeler") -> tuple[ApiKey, str]:
    with database.transaction() as session:
        return create_api_key(session, name, role, created_by="admin")  # type: ignore[arg-type]


def check(database: Database, token: str) -> ApiKey | None:
    with database.session() as session:
        return authenticate(session, token)


# --------------------------------------------------------------------------- storage


def test_a_token_is_returned_once_and_only_its_hash_is_stored(database: Database) -> None:
    key, token = make_key(database)

    match = TOKEN.fullmatch(token)
    assert match is not None, token
    assert match.group(1) == key.id
    assert (key.name, key.role, key.created_by, key.revoked_at) == (
        "alice",
        "labeler",
        "admin",
        None,
    )
    assert key.created_at == pytest.approx(time.time(), abs=60)
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0].values())
    assert token not in stored
    assert match.group(2) not in stored  # nor the secret on its own
    assert rows[0]["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert not hasattr(key, "token_sha256")  # the DTO never carries the hash


def test_every_key_gets_its_own_id_and_secret(database: Database) -> None:
    tokens = [make_key(database, f"k{i}")[1] for i in range(20)]
    assert len({t.split("_")[1] for t in tokens}) == 20
    assert len(set(tokens)) == 20


def test_bad_roles_and_names_are_refused_and_nothing_is_stored(database: Database) -> None:
    with database.session() as session:
        valid = r"Unknown role 'root'\. Valid roles, ascending: viewer, labeler, operator, admin\."
        with pytest.raises(ValueError, match=valid):
            create_api_key(session, "bob", "root", created_by="admin")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name must be 1 to 200 characters, got 0"):
            create_api_key(session, "", "viewer", created_by="admin")
        with pytest.raises(ValueError, match="name must be 1 to 200 characters, got 201"):
            create_api_key(session, "x" * 201, "viewer", created_by="admin")
        with pytest.raises(ValueError, match="created_by must be 1 to 200"):
            create_api_key(session, "bob", "viewer", created_by="")
        session.commit()
        assert list_api_keys(session) == []
        assert audit_log(session, entity="api_keys") == []


# --------------------------------------------------------------------------- authentication


def test_a_token_authenticates_as_its_key(database: Database) -> None:
    key, token = make_key(database)
    make_key(database, "bob", "admin")
    assert check(database, token) == key


def test_a_wrong_secret_is_refused(database: Database) -> None:
    key, token = make_key(database)
    other_key, other_token = make_key(database, "bob")
    last = token[-1]
    assert check(database, token[:-1] + ("A" if last != "A" else "B")) is None
    # Another key's valid secret under this key's id.
    assert check(database, f"tlk_{key.id}_{other_token.split('_', 2)[2]}") is None
    assert other_key.id != key.id


@pytest.mark.parametrize(
    "token",
    [
        "",
        "tlk_",
        "Bearer tlk_0123456789ab_" + "a" * 43,
        "tlk_0123456789ab",
        "tlk_0123456789AB_" + "a" * 43,  # ids are lower-case hex
        "tlk_0123456789ab_short",
        "xyz_0123456789ab_" + "a" * 43,
        "tlk_0123456789ab_" + "a" * 5000,  # refused before it is hashed
        "tlk_0123456789ab_" + "a" * 42 + "!",
    ],
)
def test_malformed_tokens_are_refused(database: Database, token: str) -> None:
    make_key(database)
    assert check(database, token) is None


def test_an_unknown_key_id_is_refused(database: Database) -> None:
    key, token = make_key(database)
    unknown = "0" * 12 if key.id != "0" * 12 else "1" * 12
    assert check(database, token.replace(key.id, unknown)) is None


def test_a_revoked_key_stops_working_and_revoking_again_keeps_the_first_time(
    database: Database,
) -> None:
    key, token = make_key(database)
    with database.transaction() as session:
        revoked = revoke_api_key(session, key.id, actor="root")
    assert revoked.revoked_at is not None
    assert revoked.model_copy(update={"revoked_at": None}) == key
    assert check(database, token) is None

    with database.transaction() as session:
        again = revoke_api_key(session, key.id, actor="root")
    assert again.revoked_at == revoked.revoked_at


def test_revoking_an_unknown_key_names_it(database: Database) -> None:
    expected = r"no API key 'nope'\. .* list them with 'taskloom keys list'"
    with database.session() as session, pytest.raises(UnknownApiKeyError, match=expected):
        revoke_api_key(session, "nope", actor="root")
    assert issubclass(UnknownApiKeyError, LookupError)


# --------------------------------------------------------------------------- listing, audit


def test_keys_are_listed_oldest_first_with_or_without_revoked_ones(database: Database) -> None:
    keys = [make_key(database, name)[0] for name in ("a", "b", "c")]
    with database.transaction() as session:
        revoke_api_key(session, keys[1].id, actor="root")
    with database.session() as session:
        assert [k.name for k in list_api_keys(session)] == ["a", "b", "c"]
        assert [k.name for k in list_api_keys(session, include_revoked=False)] == ["a", "c"]
        assert list_api_keys(session)[1].revoked_at is not None


def test_creating_and_revoking_are_audited_without_the_token(database: Database) -> None:
    key, token = make_key(database, "alice", "operator")
    with database.transaction() as session:
        revoke_api_key(session, key.id, actor="root")
        revoke_api_key(session, key.id, actor="root")  # nothing changed: not audited again
    with database.session() as session:
        entries = audit_log(session, entity="api_keys")
    assert [(e.actor, e.action, e.entity_id) for e in entries] == [
        ("root", "api_key.revoke", key.id),
        ("admin", "api_key.create", key.id),
    ]
    assert entries[1].details == {"name": "alice", "role": "operator"}
    assert all(token not in str(e.model_dump()) for e in entries)


# --------------------------------------------------------------------------- roles


def test_roles_are_ordered_and_each_has_what_the_lower_have() -> None:
    assert ROLES == ("viewer", "labeler", "operator", "admin")
    for i, role in enumerate(ROLES):
        for j, needed in enumerate(ROLES):
            assert role_allows(role, needed) is (i >= j), (role, needed)


def test_role_allows_refuses_unknown_roles() -> None:
    with pytest.raises(ValueError, match=r"Unknown role 'root'\. Valid roles"):
        role_allows("root", "viewer")
    with pytest.raises(ValueError, match="Unknown needed role 'operater'"):
        role_allows("admin", "operater")


# --------------------------------------------------------------------------- migration


def run_indexes(database: Database) -> set[str]:
    return {ix["name"] or "" for ix in inspect(database.engine).get_indexes("runs")}


def test_the_migration_adds_and_drops_the_table_and_run_indexes(database: Database) -> None:
    make_key(database)
    listing = {"ix_runs_workflow_created", "ix_runs_status_created"}
    assert listing <= run_indexes(database)
    database.downgrade("0003")
    assert "api_keys" not in inspect(database.engine).get_table_names()
    assert run_indexes(database) == {"ix_runs_workflow", "ix_runs_status", "ix_runs_created_at"}
    database.upgrade()
    assert "api_keys" in inspect(database.engine).get_table_names()
    assert run_indexes(database) == {*listing, "ix_runs_created_at"}
    with database.session() as session:
        assert list_api_keys(session) == []
    _, token = make_key(database)
    assert check(database, token) is not None
