"""The service's authentication: bad credentials, revocation, what keys reveal.

Every operation's role boundary (no key, each role below, the lowest allowed) is checked
against the OpenAPI spec in ``test_service_schemathesis.py``.
"""

from __future__ import annotations

from typing import Any

from knowledge import ROLES, revoke_api_key


def test_unknown_malformed_or_foreign_credentials_are_401(make_client: Any, seeded: Any) -> None:
    client = make_client()
    token = seeded.keys["admin"]
    for header in (
        "Bearer tlk_000000000000_nope",  # unknown key id
        f"Bearer {token[:-1]}{'A' if token[-1] != 'A' else 'B'}",  # right id, wrong secret
        "Bearer not-a-key",
        f"Basic {token}",  # not a bearer token
        f"bearer{token}",
    ):
        response = client.post(
            "/api/workflows/triage/runs", json={"text": "x"}, headers={"Authorization": header}
        )
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/runs", headers=seeded.headers("admin")).json()["runs"] == []


def test_a_revoked_key_is_refused_at_once(make_client: Any, seeded: Any, service_db: Any) -> None:
    client = make_client()
    assert client.get("/api/me", headers=seeded.headers("viewer")).status_code == 200
    key_id = client.get("/api/me", headers=seeded.headers("viewer")).json()["key_id"]
    with service_db.transaction() as session:
        revoke_api_key(session, key_id, actor="tests")  # as `taskloom keys revoke` would
    response = client.get("/api/me", headers=seeded.headers("viewer"))
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_a_key_revoked_through_the_api_stops_working(make_client: Any, seeded: Any) -> None:
    client = make_client()
    admin = seeded.headers("admin")
    created = client.post("/api/keys", json={"name": "temp", "role": "operator"}, headers=admin)
    assert created.status_code == 201
    token, key_id = created.json()["secret"], created.json()["key"]["id"]
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=mine).json()["role"] == "operator"
    assert client.delete(f"/api/keys/{key_id}", headers=admin).json()["revoked_at"] is not None
    assert client.get("/api/me", headers=mine).status_code == 401


def test_key_listing_never_shows_a_secret_or_hash(make_client: Any, seeded: Any) -> None:
    client = make_client()
    listing = client.get("/api/keys", headers=seeded.headers("admin"))
    text = listing.text
    assert {k["name"] for k in listing.json()["keys"]} >= {f"{r}-key" for r in ROLES}
    for token in seeded.keys.values():
        assert token not in text
        assert token.rsplit("_", 1)[-1] not in text
    assert "hash" not in text


def test_me_reports_the_calling_key(make_client: Any, seeded: Any) -> None:
    me = make_client().get("/api/me", headers=seeded.headers("labeler")).json()
    assert (me["name"], me["role"]) == ("labeler-key", "labeler")
