"""An app's own routes on the service: ``create_app(routers=...)`` and ``require_role``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from knowledge import ApiKey, Database, get_prediction
from workflow import CompiledWorkflow, ServiceConfig, WorkflowError, create_app, require_role


def labels_router(database: Database) -> APIRouter:
    """An app's router: it closes over the knowledge base it was built with."""
    router = APIRouter(prefix="/api/app", tags=["app"])

    @router.get("/predictions/{prediction_id}/text")
    def prediction_text(
        prediction_id: int, key: Annotated[ApiKey, Depends(require_role("viewer"))]
    ) -> dict[str, Any]:
        with database.session(read_only=True) as session:
            prediction = get_prediction(session, prediction_id)  # unknown id: taskloom error
        return {"text": prediction.input["text"], "viewer": key.name}

    @router.post("/labels")
    def add_label(
        body: dict[str, str], key: Annotated[ApiKey, Depends(require_role("labeler"))]
    ) -> dict[str, str]:
        return {"label": body["label"], "by": key.name}

    return router


@pytest.fixture
def client(
    service_db: Database,
    service_config: ServiceConfig,
    seeded: Any,
    workflow_factory: Callable[..., CompiledWorkflow],
) -> Iterator[TestClient]:
    app = create_app(
        [workflow_factory()],
        database=service_db,
        config=service_config,
        routers=[labels_router(service_db)],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_an_app_route_without_a_key_is_401(client: TestClient) -> None:
    response = client.post("/api/app/labels", json={"label": "refund"})

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_app_route_refuses_a_lower_role_with_403_naming_the_role(
    client: TestClient, seeded: Any
) -> None:
    response = client.post(
        "/api/app/labels", json={"label": "refund"}, headers=seeded.headers("viewer")
    )

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "'labeler'" in response.json()["message"]


def test_an_app_route_admits_its_role_and_higher_and_sees_the_key(
    client: TestClient, seeded: Any
) -> None:
    for role in ("labeler", "admin"):
        response = client.post(
            "/api/app/labels", json={"label": "refund"}, headers=seeded.headers(role)
        )

        assert response.status_code == 200, response.text
        assert response.json() == {"label": "refund", "by": f"{role}-key"}


def test_an_app_route_reads_the_knowledge_base_it_closes_over(
    client: TestClient, seeded: Any
) -> None:
    response = client.get(
        f"/api/app/predictions/{seeded.prediction_ids[0]}/text", headers=seeded.headers("viewer")
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"text": "ticket 0: where is my money", "viewer": "viewer-key"}


def test_errors_in_an_app_route_use_the_service_error_format(
    client: TestClient, seeded: Any
) -> None:
    missing = client.get("/api/app/predictions/999999/text", headers=seeded.headers("viewer"))
    invalid = client.post(
        "/api/app/labels", json=["not", "a", "dict"], headers=seeded.headers("admin")
    )

    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert "999999" in missing.json()["message"]
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "unprocessable"
    assert invalid.json()["problems"]


def test_app_routes_are_in_the_openapi_spec_next_to_the_built_in_ones(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert "post" in paths["/api/app/labels"]
    assert "get" in paths["/api/app/predictions/{prediction_id}/text"]
    assert "/api/runs/{run_id}" in paths


def test_a_router_that_is_not_an_api_router_is_refused(service_db: Database) -> None:
    with pytest.raises(WorkflowError, match=r"fastapi.APIRouter objects; got dict"):
        create_app([], database=service_db, routers=[{"path": "/x"}])
