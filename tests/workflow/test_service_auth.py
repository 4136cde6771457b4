"""The service's authentication and every role boundary.

The table lists each operation with the lowest role allowed to call it; each test asks with
no key, with every role below (403) and with the lowest allowed role (not refused). A test
checks the table against the OpenAPI spec, so a new endpoint without a row fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from knowledge import ROLES, revoke_api_key

# (method, path template, lowest role, request body)
BOUNDARIES: list[tuple[str, str, str, Any]] = [
    ("GET", "/metrics", "viewer", None),
    ("GET", "/api/me", "viewer", None),
    ("GET", "/api/workflows", "viewer", None),
    ("GET", "/api/workflows/{name}/graph", "viewer", None),
    ("GET", "/api/runs", "viewer", None),
    ("GET", "/api/runs/{run_id}", "viewer", None),
    ("GET", "/api/runs/{run_id}/events", "viewer", None),
    ("GET", "/api/review", "viewer", None),
    ("GET", "/api/review/{agent}", "viewer", None),
    ("GET", "/api/predictions/{prediction_id}/feedback", "viewer", None),
    ("GET", "/api/models", "viewer", None),
    ("GET", "/api/models/{agent}", "viewer", None),
    ("GET", "/api/models/{agent}/jobs", "viewer", None),
    ("POST", "/api/feedback", "labeler", {"prediction_id": "{prediction_id}", "label": "refund"}),
    ("POST", "/api/review/items/{item_id}/skip", "labeler", None),
    ("POST", "/api/workflows/triage/runs", "operator", {"text": "refund please"}),
    ("POST", "/api/workflows/{name}/runs", "operator", {"text": "x"}),
    ("POST", "/api/models/{agent}/jobs", "operator", {"epochs": 1}),
    ("POST", "/api/models/{agent}/promote", "admin", {"version": "v1"}),
    ("POST", "/api/models/{agent}/rollback", "admin", {}),
    ("GET", "/api/keys", "admin", None),
    ("POST", "/api/keys", "admin", {"name": "new", "role": "viewer"}),
    ("DELETE", "/api/keys/{key_id}", "admin", None),
]
PUBLIC = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs")}


def _fill(template: str, values: dict[str, Any]) -> str:
    return template.format(**values)


def _values(client: Any, seeded: Any) -> dict[str, Any]:
    admin = seeded.headers("admin")
    run = client.post("/api/workflows/triage/runs", json={"text": "hi"}, headers=admin).json()
    item = client.get("/api/review/intent", headers=admin).json()["items"][0]
    victim = client.post(
        "/api/keys", json={"name": "victim", "role": "viewer"}, headers=admin
    ).json()
    return {
        "name": "triage",
        "run_id": run["run_id"],
        "agent": "intent",
        "prediction_id": item["prediction_id"],
        "item_id": item["id"],
        "key_id": victim["key"]["id"],
    }


def _call(client: Any, method: str, path: str, body: Any, values: dict[str, Any], **kw: Any) -> Any:
    if isinstance(body, dict):
        body = {k: (_fill(v, values) if isinstance(v, str) else v) for k, v in body.items()}
        if "prediction_id" in body:
            body["prediction_id"] = int(body["prediction_id"])
    return client.request(method, _fill(path, values), json=body, **kw)


def test_the_table_covers_every_operation_in_the_spec(make_client: Any) -> None:
    spec = make_client().get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    table = {(m, p) for m, p, _, _ in BOUNDARIES}
    assert operations - PUBLIC == table


@pytest.mark.parametrize(("method", "path", "lowest", "body"), BOUNDARIES)
def test_without_a_key_every_api_call_is_refused(
    shared_service: Any, method: str, path: str, lowest: str, body: Any
) -> None:
    client, seeded = shared_service
    values = _values(client, seeded)
    for headers in ({}, {"Authorization": "Bearer tlk_0000_nope"}, {"Authorization": "Basic x"}):
        response = _call(client, method, path, body, values, headers=headers)
        assert response.status_code == 401, (method, path, headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "lowest", "body"), BOUNDARIES)
def test_each_role_below_the_lowest_is_forbidden_and_the_lowest_is_admitted(
    shared_service: Any, method: str, path: str, lowest: str, body: Any
) -> None:
    client, seeded = shared_service
    values = _values(client, seeded)
    rank = ROLES.index(lowest)
    for role in ROLES[:rank]:
        response = _call(client, method, path, body, values, headers=seeded.headers(role))
        assert response.status_code == 403, (role, method, path, response.text)
        assert f"'{lowest}'" in response.json()["message"]
    response = _call(client, method, path, body, values, headers=seeded.headers(lowest))
    # Admitted: anything but an auth refusal (the unknown-workflow route answers 404).
    assert response.status_code not in (401, 403), (lowest, method, path, response.text)
    assert response.status_code < 500, response.text


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
