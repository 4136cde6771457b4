"""Operating the service: health, metrics, limits, CORS, errors, headers, ``taskloom serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.testing import FakeAgent, FakeInput
from knowledge import Database, create_api_key
from workflow import ServiceConfig, Workflow, create_app


def test_health_needs_no_key_and_names_the_workflows(make_client: Any) -> None:
    response = make_client().get("/health")
    assert response.json() == {"status": "ok", "database": "ok", "workflows": ["triage"]}


def test_health_is_503_when_the_database_is_unreachable(
    service_config: ServiceConfig, workflow_factory: Any
) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    db = Database("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    # Not resuming runs: start-up itself would fail on the database (fail fast, on purpose).
    config = ServiceConfig(**{**vars(service_config), "resume_on_start": False})
    with TestClient(create_app([workflow_factory()], database=db, config=config)) as c:
        response = c.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert "127.0.0.1" not in response.text  # no connection details leak


def test_metrics_count_requests_runs_steps_and_the_review_backlog(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    client.post("/api/workflows/triage/runs", json={"text": "x"}, headers=seeded.headers("admin"))
    client.get("/api/runs/unknown", headers=seeded.headers("viewer"))
    text = client.get("/metrics", headers=seeded.headers("viewer")).text
    assert (
        'taskloom_http_requests_total{method="POST",route="/api/workflows/triage/runs",'
        'status="200"} 1.0'
    ) in text
    # Route templates, never raw paths: label sets stay bounded.
    assert 'route="/api/runs/{run_id}",status="404"' in text
    assert "/api/runs/unknown" not in text
    assert 'taskloom_runs_total{status="succeeded",workflow="triage"} 1.0' in text
    assert 'taskloom_steps_total{agent="fake_async",status="ok"} 1.0' in text
    assert 'taskloom_review_open{agent="intent"} 6.0' in text


def test_a_body_over_the_limit_is_413_declared_or_streamed(
    make_client: Any, seeded: Any, service_config: ServiceConfig
) -> None:
    small = ServiceConfig(**{**vars(service_config), "max_body_bytes": 64})
    client = make_client(config=small)
    headers = seeded.headers("operator")
    declared = client.post("/api/workflows/triage/runs", json={"text": "x" * 100}, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    assert "64 bytes" in declared.json()["message"]

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        yield b"y" * 100
        yield b'"}'

    streamed = client.post(
        "/api/workflows/triage/runs",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert client.get("/api/runs", headers=headers).json()["runs"] == []
    fits = client.post("/api/workflows/triage/runs", json={"text": "ok"}, headers=headers)
    assert fits.status_code == 200


def test_cors_is_off_unless_origins_are_configured(
    make_client: Any, seeded: Any, service_config: ServiceConfig
) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    closed = make_client().options("/api/feedback", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    allowed = ServiceConfig(**{**vars(service_config), "cors_origins": ("https://ops.example",)})
    client = make_client(config=allowed)
    ok = client.options("/api/feedback", headers={**preflight, "Origin": "https://ops.example"})
    assert ok.headers["access-control-allow-origin"] == "https://ops.example"
    refused = client.options("/api/feedback", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers


def test_an_unexpected_error_is_json_without_trace_or_secret(
    make_client: Any, seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflow._service._routes_review as review  # noqa: PLC0415

    def broken(session: Any) -> dict[str, int]:
        raise RuntimeError("password=hunter2 in /srv/secret.py")

    monkeypatch.setattr(review, "review_counts", broken)
    response = make_client().get("/api/review", headers=seeded.headers("viewer"))
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal"
    assert body["message"].startswith("internal error; see the server log (incident ")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


def test_security_headers_and_the_dashboards_content_policy(make_client: Any) -> None:
    client = make_client()
    api = client.get("/health")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["x-frame-options"] == "DENY"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    root = client.get("/", follow_redirects=False)
    assert root.headers["location"] == "/ui/"


def test_workflows_with_the_same_name_are_refused(
    service_db: Database, workflow_factory: Any
) -> None:
    with pytest.raises(ValueError, match="Two served workflows are named 'triage'"):
        create_app([workflow_factory(), workflow_factory()], database=service_db)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_taskloom_serve_runs_a_saved_workflow_until_interrupted(tmp_path: Path) -> None:
    workflow_file = tmp_path / "echo.json"
    echo = Workflow("echo", task=FakeInput)
    echo.step("only", FakeAgent(echo=True))
    saved = echo.compile().to_dict()
    # By import path, even if a test registered a name for it: the server process has none.
    saved["steps"][0]["agent"] = "agents.testing._fakes:FakeAgent"
    workflow_file.write_text(json.dumps(saved))
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    db = Database(url)
    with db.transaction() as session:
        _, token = create_api_key(session, "ops", "operator", created_by="tests")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "workflow", "serve", "--workflow", str(workflow_file),
         "--allow", "agents.testing", "--db", url, "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "TASKLOOM_DATABASE_URL": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"{base}/health").json()["workflows"] == ["echo"]
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.2)
        run = httpx.post(
            f"{base}/api/workflows/echo/runs",
            json={"text": "hello"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert run["status"] == "succeeded"
        assert run["steps"][0]["output"]["label"] == "hello"
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert "dashboard at http://127.0.0.1:" in output
