"""Property-based tests of the HTTP service against its own OpenAPI spec (schemathesis).

Runs over every operation of the generated spec, in-process (schemathesis's ASGI client;
its pytest plugin restarts the app's lifespan for each test), against one seeded SQLite
knowledge base per module:

1. an admin key: no 5xx, and every response is documented (status code, content type, body
   schema, headers); authentication is not ignored. Invalid requests (schemathesis's negative
   mode) get a JSON error, never a 5xx; seeded ids get their documented 2xx answers;
2. no key: every ``/api/*`` and ``/metrics`` operation answers 401 with the challenge;
   ``/health`` and the spec need none;
3. each lower role: operations above it answer 403, those at or below it get past the check.

``REQUIRED_ROLE`` says which role each operation needs; a test holds that it names every
operation of the spec, so an endpoint added without an entry fails here. Generation is
derandomized (the same cases on every machine) and small, so the file runs in CI's default
test run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import BaseModel
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from agents.testing import FakeAgent
from knowledge import (
    Database,
    Role,
    SqlRunStore,
    review_queue,
)
from workflow import CompiledWorkflow, Engine, ServiceConfig, Workflow, create_app, state

ROLES: tuple[Role, ...] = ("viewer", "labeler", "operator", "admin")
# The role each operation of the spec needs (None: public). Keyed by schemathesis's label.
REQUIRED_ROLE: dict[str, Role | None] = {
    "GET /health": None,
    "GET /metrics": "viewer",
    "GET /api/me": "viewer",
    "GET /api/workflows": "viewer",
    "GET /api/workflows/{name}/graph": "viewer",
    "GET /api/runs": "viewer",
    "GET /api/runs/{run_id}": "viewer",
    "GET /api/runs/{run_id}/events": "viewer",
    "GET /api/review": "viewer",
    "GET /api/review/{agent}": "viewer",
    "GET /api/predictions/{prediction_id}/feedback": "viewer",
    "GET /api/models": "viewer",
    "GET /api/models/{agent}": "viewer",
    "GET /api/models/{agent}/jobs": "viewer",
    "POST /api/feedback": "labeler",
    "POST /api/review/items/{item_id}/skip": "labeler",
    "POST /api/workflows/triage/runs": "operator",
    "POST /api/workflows/{name}/runs": "operator",
    "POST /api/models/{agent}/jobs": "operator",
    "POST /api/models/{agent}/promote": "admin",
    "POST /api/models/{agent}/rollback": "admin",
    "GET /api/keys": "admin",
    "POST /api/keys": "admin",
    "DELETE /api/keys/{key_id}": "admin",
}
PROTECTED = sorted(label for label, role in REQUIRED_ROLE.items() if role is not None)


def rank(role: Role | None) -> int:
    """A role's place in the hierarchy; public operations rank below viewer."""
    return -1 if role is None else ROLES.index(role)


# Run 3's pairs: a role and a protected operation that needs more (must be 403), or not more
# (must get past the role check). Admin may do everything: run 1 covers it.
DENIED = [(r, op) for r in ROLES for op in PROTECTED if rank(r) < rank(REQUIRED_ROLE[op])]
ALLOWED = [(r, op) for r in ROLES[:-1] for op in PROTECTED if rank(r) >= rank(REQUIRED_ROLE[op])]
LABELS = ["refund", "card_lost", "transfer"]
PROBABILITIES = [[0.40, 0.35, 0.25], [0.34, 0.33, 0.33], [0.50, 0.30, 0.20]]
# No example database and derandomized: CI runs the same cases everywhere. No shrinking: a
# failure's report already holds a curl command, and shrinking costs seconds per failure.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    # Schemathesis's strategies filter and build large inputs by design, and CI's shared
    # cores are slow: the health checks would fail runs that test nothing wrong.
    suppress_health_check=list(HealthCheck),
)
ADMIN_EXAMPLES = 30
ROLE_EXAMPLES = 6
NEGATIVE_EXAMPLES = 15


CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


class Task(BaseModel):
    text: str


@dataclass
class Served:
    """The app under test, its spec, and what was seeded into its knowledge base."""

    app: Any
    database: Database
    schema: Any
    tokens: dict[Role, str]
    run_id: str
    prediction_ids: list[int]
    item_ids: list[int]


def triage() -> CompiledWorkflow:
    """classify -> refund (a rule) or reply (the default)."""
    wf = Workflow("triage", task=Task)
    wf.step("classify", FakeAgent(echo=True))
    wf.step("refund", FakeAgent(label="refunded")).step("reply", FakeAgent(label="answered"))
    wf.route("classify", "refund", when=state("classify").label == "refund")
    wf.route("classify", "reply")
    return wf.compile()


def seed(
    database: Database, workflow: CompiledWorkflow, kb_seed: Any
) -> tuple[str, list[int], dict[Role, str]]:
    """A run, review items on three predictions, two model versions, a key per role."""
    run_id = Engine(SqlRunStore(database)).run_sync(workflow, {"text": "refund"}).run_id
    rows = [(f"text {i}", vector) for i, vector in enumerate(PROBABILITIES)]
    prediction_ids = kb_seed.predictions(database, rows, labels=LABELS, run_id=run_id)
    scores = {"accuracy": 0.8, "macro_f1": 0.7}
    kb_seed.model_versions(database, [("v1", scores), ("v2", scores)])
    return run_id, prediction_ids, kb_seed.keys(database, {role: role for role in ROLES})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, kb_seed: Any) -> Iterator[Served]:
    """The app over a seeded SQLite file, and its spec loaded by schemathesis (no key)."""
    from schemathesis.python.asgi import shutdown_lifespans  # noqa: PLC0415 - test-only helper

    root = tmp_path_factory.mktemp("service")
    database = Database(f"sqlite:///{root / 'kb.db'}")
    workflow = triage()
    run_id, prediction_ids, tokens = seed(database, workflow, kb_seed)
    config = ServiceConfig(
        finetune_command=(sys.executable, "-c", "pass"),  # never trains a model
        jobs_dir=str(root / "jobs"),
        shutdown_grace_s=5.0,
        dashboard=False,
    )
    app = create_app([workflow], database=database, config=config)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with database.session() as session:
        item_ids = [item.id for item in review_queue(session, "intent", limit=10)]
    yield Served(app, database, schema, tokens, run_id, prediction_ids, item_ids)
    shutdown_lifespans()  # stops the app's lifespan: background runs end, the engine closes
    database.engine.dispose()


def bearer(served: Served, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.tokens[role]}"}


def operation(served: Served, label: str) -> Any:
    method, path = label.split(" ", 1)
    return served.schema[path][method]


def fuzz(
    served: Served,
    label: str,
    examples: int,
    check: Callable[[Any], None],
    *,
    negative: bool = False,
) -> None:
    """Run ``check`` on ``examples`` generated cases (invalid ones if ``negative``) of ``label``."""
    mode = GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE
    strategy = operation(served, label).as_strategy(mode)

    @settings(FUZZ, max_examples=examples)
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    run()


def test_spec_lists_exactly_the_operations_of_the_role_table(served: Served) -> None:
    labels = {result.ok().label for result in served.schema.get_all_operations()}
    missing = sorted(labels - REQUIRED_ROLE.keys())
    assert not missing, f"add these operations to REQUIRED_ROLE with the role they need: {missing}"
    assert sorted(REQUIRED_ROLE.keys() - labels) == [], "REQUIRED_ROLE names removed operations"


def test_spec_and_health_are_public(served: Served) -> None:
    client = TestClient(served.app)  # no lifespan needed: neither reads the service's state
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/health").json()["workflows"] == ["triage"]


def at(body: Any = None, query: dict[str, Any] | None = None, **path: Any) -> dict[str, Any]:
    """A case's fields: its path parameters, and its body and query when given."""
    fields: dict[str, Any] = {"path_parameters": path, "query": query}
    return fields if body is None else {**fields, "body": body}


def seeded_requests(served: Served) -> list[tuple[str, Role, dict[str, Any], int]]:
    """(operation, role, case fields, expected status): the 2xx answers random ids miss."""
    run, pid, item = served.run_id, served.prediction_ids[-1], served.item_ids[0]
    label = {"prediction_id": pid, "label": "refund"}
    return [
        ("GET /api/runs/{run_id}", "viewer", at(run_id=run), 200),
        ("GET /api/runs/{run_id}/events", "viewer", at(run_id=run), 200),
        ("GET /api/workflows/{name}/graph", "viewer", at(name="triage"), 200),
        ("GET /api/review/{agent}", "viewer", at(agent="intent"), 200),
        ("GET /api/models/{agent}", "viewer", at(agent="intent"), 200),
        ("POST /api/review/items/{item_id}/skip", "labeler", at(item_id=item), 200),
        ("POST /api/feedback", "labeler", at(label), 201),
        ("GET /api/predictions/{prediction_id}/feedback", "viewer", at(prediction_id=pid), 200),
        ("POST /api/workflows/triage/runs", "operator", at({"text": "refund"}), 200),
        ("POST /api/workflows/triage/runs", "operator", at({"text": "hi"}, {"wait": False}), 202),
        ("POST /api/models/{agent}/jobs", "operator", at({"epochs": 1}, agent="intent"), 202),
        ("GET /api/models/{agent}/jobs", "viewer", at(agent="intent"), 200),
        ("POST /api/models/{agent}/promote", "admin", at({"version": "v1"}, agent="intent"), 200),
        ("POST /api/models/{agent}/rollback", "admin", at({}, agent="intent"), 200),
        ("POST /api/keys", "admin", at({"name": "temp", "role": "viewer"}), 201),
    ]  # fmt: skip


def test_seeded_objects_get_documented_success_answers(served: Served) -> None:
    for label, role, fields, status in seeded_requests(served):
        case = operation(served, label).Case(**fields)
        response = case.call_and_validate(headers=bearer(served, role), checks=CONFORMANCE)
        assert response.status_code == status, (label, response.text[:300])
    created = response.json()["key"]["id"]
    revoke = operation(served, "DELETE /api/keys/{key_id}").Case(
        path_parameters={"key_id": created}
    )
    response = revoke.call_and_validate(headers=bearer(served, "admin"), checks=CONFORMANCE)
    assert response.json()["revoked_at"] is not None


@pytest.mark.parametrize("label", sorted(REQUIRED_ROLE))
def test_admin_requests_get_documented_answers_and_never_a_server_error(
    served: Served, label: str
) -> None:
    def check(case: Any) -> None:
        case.call_and_validate(headers=bearer(served, "admin"), checks=CONFORMANCE)

    fuzz(served, label, ADMIN_EXAMPLES, check)


@pytest.mark.parametrize("label", PROTECTED)  # /health has nothing to make invalid
def test_invalid_requests_get_a_json_error_and_never_a_server_error(
    served: Served, label: str
) -> None:
    # Negative mode breaks one part of each request (a body of the wrong type, bytes that are
    # no JSON, a mangled header...): whatever the status, it is an error in the JSON shape.
    def check(case: Any) -> None:
        response = case.call(headers=bearer(served, "admin"))
        where = (case.as_curl_command(), response.status_code, response.text[:300])
        assert response.status_code < 500, where
        if response.status_code >= 400:
            assert set(response.json()) >= {"error", "message"}, where

    fuzz(served, label, NEGATIVE_EXAMPLES, check, negative=True)


@pytest.mark.parametrize("label", PROTECTED)
def test_requests_without_a_key_are_refused_with_401(served: Served, label: str) -> None:
    def check(case: Any) -> None:
        case.headers.pop("Authorization", None)  # schemathesis may generate one
        response = case.call()
        assert response.status_code == 401, (case.as_curl_command(), response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == ["Bearer"]

    fuzz(served, label, ROLE_EXAMPLES, check)


@pytest.mark.parametrize(("role", "label"), DENIED)
def test_lower_roles_are_refused_with_403(served: Served, role: Role, label: str) -> None:
    def check(case: Any) -> None:
        response = case.call(headers=bearer(served, role))
        where = (role, case.as_curl_command(), response.status_code, response.text[:300])
        assert response.status_code == 403, where
        assert response.json()["error"] == "forbidden", where

    fuzz(served, label, ROLE_EXAMPLES, check)


@pytest.mark.parametrize(("role", "label"), ALLOWED)
def test_roles_get_past_the_role_check_where_allowed(
    served: Served, role: Role, label: str
) -> None:
    # No body: the role check comes first, so 422 (or 404) means it let the key through.
    samples = {
        "name": "triage",
        "run_id": served.run_id,
        "agent": "intent",
        "prediction_id": served.prediction_ids[0],
        "item_id": 10**6,  # unknown: skipping it changes nothing
        "key_id": "unknown",
    }
    path_parameters = {name: value for name, value in samples.items() if f"{{{name}}}" in label}
    case = operation(served, label).Case(path_parameters=path_parameters)
    response = case.call(headers=bearer(served, role))
    assert response.status_code not in (401, 403), (role, label, response.text)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/feedback", {"prediction_id": 2**63, "label": "refund"}),
        ("GET", f"/api/predictions/{2**63}/feedback", None),
        ("POST", f"/api/review/items/{2**63}/skip", None),
    ],
)
def test_ids_past_64_bits_are_not_a_server_error(
    served: Served, method: str, path: str, body: Any
) -> None:
    # SQLite's integers stop at 2**63 - 1; a larger id once reached the database (a 500).
    client = TestClient(served.app)  # re-raises the app's exception instead of answering 500
    response = client.request(method, path, json=body, headers=bearer(served, "admin"))
    assert response.status_code in (404, 422), response.text


def test_runs_still_work_after_the_app_restarts(served: Served) -> None:
    # schemathesis's pytest plugin ends the app's lifespan after every test and the next
    # request starts it again; TestClient does the same with each ``with``.
    config = ServiceConfig(
        finetune_command=(sys.executable, "-c", "pass"), resume_on_start=False, dashboard=False
    )
    app = create_app([triage()], database=served.database, config=config)
    with TestClient(app):
        pass
    with TestClient(app) as client:
        response = client.post(
            "/api/workflows/triage/runs",
            json={"text": "refund"},
            headers=bearer(served, "operator"),
        )
    assert response.json()["status"] == "succeeded", response.json()["error"]
