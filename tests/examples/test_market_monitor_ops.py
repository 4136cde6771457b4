"""The market monitor's operations: webhook delivery, the analysts' CLI, the service routes.

Alerts are inserted into the outbox directly (no models run); the webhook tests post to a
real ``http.server`` on a loopback port, the CLI runs as ``python -m market_monitor`` in a
subprocess, the routes are served by ``create_app`` under a ``TestClient``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor import service, tables, webhook  # noqa: E402
from market_monitor.entities import Entity, store_entities, watchlist  # noqa: E402
from market_monitor.tables import Alert  # noqa: E402
from runner_kit import serve  # noqa: E402

from agents.testing import FakeAgent, FakeInput  # noqa: E402
from knowledge import (  # noqa: E402
    Database,
    PredictionIn,
    Role,
    create_api_key,
    feedback_for,
    record_predictions,
)
from workflow import ServiceConfig, Workflow, create_app  # noqa: E402

T0 = 1_714_550_400.0  # 2024-05-01 08:00 UTC
SECRET = "s3cret-for-tests"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A knowledge base with the monitor's tables and two gazetteer entities."""
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    tables.create_tables(database)
    entities = [
        Entity("TSLA", "Tesla", ("Tesla",), "Consumer Discretionary"),
        Entity("AAPL", "Apple", ("Apple",), "Information Technology"),
    ]
    store_entities(database, entities, source="test")
    yield database
    database.dispose()


def add_alert(
    db: Database, entity: str, published_at: float, *, decided: bool = True, surge: float = 3.0
) -> int:
    """An alert in the outbox, with (unless ``decided`` is false) its alert_policy decision."""
    with db.transaction() as session:
        prediction_id = None
        if decided:
            (record,) = record_predictions(
                session,
                [
                    PredictionIn(
                        agent="alert_policy",
                        model_version="v1",
                        input={"text": f"{entity} news"},
                        output={"decision": "alert"},
                        label="hold",
                        confidence=0.6,
                        probabilities=[0.4, 0.6],
                        label_set=["alert", "hold"],
                    )
                ],
            )
            prediction_id = record.id
        alert = Alert(
            dedup_key=f"{entity}:{int(published_at)}",
            entity=entity,
            direction="bearish",
            published_at=published_at,
            item_id=f"tweet-{entity}-{int(published_at)}",
            run_id="run-1",
            prediction_id=prediction_id,
            decided_by="policy",
            mentions=6,
            surge=surge,
            summary=f"{entity} bearish: 6 mentions",
            status="pending",
            attempts=0,
            last_error="",
            created_at=published_at,
        )
        session.add(alert)
        session.flush()
        return alert.id


def alert_row(db: Database, alert_id: int) -> Alert:
    with db.session(read_only=True) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        session.expunge(alert)
        return alert


# --------------------------------------------------------------------------- webhook


@dataclass
class Received:
    """What the test webhook got, and what it answers."""

    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook on a loopback port: records each POST and answers ``Received.status``."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append((dict(self.headers.items()), body))
            self.send_response(received.status)
            if received.status == 302:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads ``received`` instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_deliver_posts_signed_json_with_the_idempotency_key_and_marks_delivered(
    db: Database, hook: tuple[str, Received]
) -> None:
    url, received = hook
    first = add_alert(db, "TSLA", T0 + 60)
    second = add_alert(db, "AAPL", T0)  # published earlier, but raised later

    result = webhook.deliver(db, url, secret=SECRET)

    assert result == webhook.Delivery(delivered=2, failed=0, pending=0)
    bodies = [json.loads(body) for _, body in received.requests]
    assert [b["alert_id"] for b in bodies] == [second, first]  # outbox order: oldest raised
    assert bodies[1] == {
        "alert_id": first,
        "dedup_key": f"TSLA:{int(T0 + 60)}",
        "entity": "TSLA",
        "direction": "bearish",
        "published_at": T0 + 60,
        "summary": "TSLA bearish: 6 mentions",
    }
    headers, body = received.requests[1]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == f"TSLA:{int(T0 + 60)}"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[webhook.SIGNATURE_HEADER] == f"sha256={expected}"
    row = alert_row(db, first)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 1, "")
    assert row.delivered_at is not None
    assert abs(row.delivered_at - time.time()) < 60


def test_a_second_pass_sends_nothing_already_delivered(
    db: Database, hook: tuple[str, Received]
) -> None:
    url, received = hook
    add_alert(db, "TSLA", T0)
    webhook.deliver(db, url)
    later = add_alert(db, "AAPL", T0 + 600)

    result = webhook.deliver(db, url)

    assert result == webhook.Delivery(delivered=1)
    assert [json.loads(body)["alert_id"] for _, body in received.requests[1:]] == [later]
    assert webhook.SIGNATURE_HEADER not in received.requests[0][0]  # no secret, no signature
    assert webhook.deliver(db, url) == webhook.Delivery()


def test_a_failing_webhook_counts_attempts_then_fails_the_alert_without_leaking_the_secret(
    db: Database, hook: tuple[str, Received], caplog: pytest.LogCaptureFixture
) -> None:
    url, received = hook
    received.status = 500
    ids = [add_alert(db, "TSLA", T0), add_alert(db, "AAPL", T0 + 1)]

    first = webhook.deliver(db, url, secret=SECRET, max_attempts=2)
    row = alert_row(db, ids[0])
    second = webhook.deliver(db, url, secret=SECRET, max_attempts=2)

    assert first == webhook.Delivery(pending=2)  # an HTTP error does not stop the pass
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("HTTP 500")
    assert second == webhook.Delivery(failed=2)
    assert [(r.status, r.attempts) for r in map(lambda i: alert_row(db, i), ids)] == [
        ("failed", 2),
        ("failed", 2),
    ]
    assert webhook.deliver(db, url, max_attempts=2) == webhook.Delivery()  # failed stays put
    assert len(received.requests) == 4
    assert "HTTP 500" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in alert_row(db, ids[0]).last_error


def test_an_unreachable_webhook_leaves_alerts_pending_and_ends_the_pass(db: Database) -> None:
    ids = [add_alert(db, "TSLA", T0), add_alert(db, "AAPL", T0 + 1)]
    with socket.socket() as bound:  # bound but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/hook"

        result = webhook.deliver(db, url, timeout_s=2.0)

    assert result == webhook.Delivery(pending=1)
    first, second = alert_row(db, ids[0]), alert_row(db, ids[1])
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error.startswith("unreachable:")
    assert (second.status, second.attempts, second.last_error) == ("pending", 0, "")


def test_a_redirect_is_not_followed(db: Database, hook: tuple[str, Received]) -> None:
    url, received = hook
    received.status = 302
    alert_id = add_alert(db, "TSLA", T0)

    assert webhook.deliver(db, url) == webhook.Delivery(pending=1)
    assert len(received.requests) == 1
    assert alert_row(db, alert_id).last_error.startswith("HTTP 302")


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "http:///x"])
def test_only_http_urls_are_accepted(db: Database, url: str) -> None:
    with pytest.raises(ValueError, match=r"http:// or https://"):
        webhook.deliver(db, url)


# --------------------------------------------------------------------------- CLI


def cli(db: Database, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    """``python -m market_monitor --db URL ARGS`` from ``examples/``, as analyst alice."""
    inherited = {"TASKLOOM_DATABASE_URL", "MM_WEBHOOK_SECRET"}  # only what the test says
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    env.update(HF_HUB_OFFLINE="1", USER="alice", **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "market_monitor", "--db", db.url, *args],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_alerts_prints_a_table_of_the_period(db: Database) -> None:
    alert_id = add_alert(db, "TSLA", T0 + 90, surge=3.4)
    add_alert(db, "AAPL", T0 + 7200)  # 10:00, after --until

    done = cli(db, "alerts", "--since", "2024-05-01", "--until", "2024-05-01T09:00")

    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == [
        "id",
        "time",
        "UTC",
        "entity",
        "direction",
        "mentions",
        "surge",
        "decided",
        "by",
        "status",
        "verdict",
    ]
    (row,) = rows
    assert row.split() == [
        str(alert_id),
        "2024-05-01",
        "08:01",
        "TSLA",
        "bearish",
        "6",
        "3.4x",
        "policy",
        "pending",
        "-",
    ]


def test_cli_mark_records_outcome_feedback_once_per_author(db: Database) -> None:
    alert_id = add_alert(db, "TSLA", T0)

    done = cli(db, "mark", str(alert_id), "useful")
    again = cli(db, "mark", str(alert_id), "noise")

    assert done.returncode == 0, done.stderr
    assert "Recorded 'useful' by alice" in done.stdout
    prediction_id = alert_row(db, alert_id).prediction_id
    assert prediction_id is not None
    with db.session(read_only=True) as session:
        feedback = feedback_for(session, prediction_id)
    assert [(f.label, f.source, f.author) for f in feedback] == [("alert", "outcome", "alice")]
    assert again.returncode == 1
    assert again.stderr.startswith("error: ")
    assert "alice" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_bad_verdict_as_usage_and_an_unknown_alert_as_an_error(
    db: Database,
) -> None:
    bad = cli(db, "mark", "1", "maybe")
    unknown = cli(db, "mark", "99", "noise")

    assert bad.returncode == 2
    assert "invalid choice: 'maybe'" in bad.stderr
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: No alert 99. List them with: python -m market_monitor alerts"
    ]


def test_cli_watch_and_unwatch_change_the_watchlist(db: Database) -> None:
    watched = cli(db, "watch", "tsla")
    assert watched.returncode == 0, watched.stderr
    assert watchlist(db) == {"TSLA"}

    unwatched = cli(db, "unwatch", "TSLA")
    unknown = cli(db, "watch", "ZZZZ")

    assert unwatched.returncode == 0, unwatched.stderr
    assert watchlist(db) == set()
    assert unknown.returncode == 1
    assert "Unknown entity 'ZZZZ'" in unknown.stderr


def test_cli_deliver_signs_with_the_secret_from_the_environment(
    db: Database, hook: tuple[str, Received]
) -> None:
    url, received = hook
    add_alert(db, "TSLA", T0)

    done = cli(db, "deliver", "--webhook", url, MM_WEBHOOK_SECRET=SECRET)
    refused = cli(db, "deliver", "--webhook", "ftp://example.com/hook")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "delivered 1, failed 0, pending 0"
    headers, body = received.requests[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[webhook.SIGNATURE_HEADER] == f"sha256={expected}"
    assert SECRET not in done.stdout + done.stderr
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: The webhook URL must be http:// or https://")


def test_cli_digest_writes_the_markdown_file(db: Database, tmp_path: Path) -> None:
    pytest.importorskip("market_monitor.digest", reason="digest.py is not written yet")
    alert_id = add_alert(db, "TSLA", T0 + 60)
    out = tmp_path / "digest.md"

    done = cli(
        db,
        "digest",
        "--since",
        "2024-05-01T08:00",
        "--until",
        "2024-05-01T09:00Z",
        "--out",
        str(out),
    )
    empty = cli(db, "digest", "--since", "2024-05-01", "--until", "2024-05-01")

    assert done.returncode == 0, done.stderr
    assert f"alert #{alert_id}" in out.read_text("utf-8")
    assert empty.returncode == 1
    assert empty.stderr.startswith("error: The period is empty")


# --------------------------------------------------------------------------- service


@dataclass(frozen=True)
class Service:
    client: TestClient
    headers: dict[str, dict[str, str]]  # key name -> Authorization header


@pytest.fixture
def api(db: Database) -> Iterator[Service]:
    """The service with the monitor's routes, and a viewer and two labeler keys."""
    keys: dict[str, Role] = {"vera": "viewer", "lena": "labeler", "lars": "labeler"}
    with db.transaction() as session:
        tokens = {
            name: create_api_key(session, name, role, created_by="test")[1]
            for name, role in keys.items()
        }
    wf = Workflow("noop", task=FakeInput)
    wf.step("only", FakeAgent(echo=True))
    app = create_app(
        [wf.compile()],
        database=db,
        config=ServiceConfig(resume_on_start=False, dashboard=False),
        routers=[service.market_router(db)],
    )
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Service(client, headers)


def test_routes_need_a_key_and_the_verdict_needs_a_labeler(db: Database, api: Service) -> None:
    alert_id = add_alert(db, "TSLA", T0)
    verdict = f"/api/market/alerts/{alert_id}/verdict"

    assert api.client.get("/api/market/alerts").status_code == 401
    refused = api.client.post(verdict, json={"verdict": "noise"}, headers=api.headers["vera"])

    assert refused.status_code == 403
    assert "'labeler'" in refused.json()["message"]
    prediction_id = alert_row(db, alert_id).prediction_id
    assert prediction_id is not None
    with db.session(read_only=True) as session:
        assert feedback_for(session, prediction_id) == []


def test_viewer_lists_alerts_of_a_period(db: Database, api: Service) -> None:
    ids = [add_alert(db, "TSLA", T0), add_alert(db, "AAPL", T0 + 60)]

    everything = api.client.get("/api/market/alerts", headers=api.headers["vera"])
    window = api.client.get(
        "/api/market/alerts",
        params={"since": T0 + 1, "until": T0 + 61},
        headers=api.headers["vera"],
    )

    assert everything.status_code == 200, everything.text
    assert [a["id"] for a in everything.json()["alerts"]] == ids
    (only,) = window.json()["alerts"]
    assert only["id"] == ids[1]
    assert (only["entity"], only["status"], only["verdict"]) == ("AAPL", "pending", None)
    too_many = api.client.get(
        "/api/market/alerts", params={"limit": 5000}, headers=api.headers["vera"]
    )
    assert too_many.status_code == 422


def test_labeler_marks_an_alert_once_and_the_verdict_shows(db: Database, api: Service) -> None:
    alert_id = add_alert(db, "TSLA", T0)
    verdict = f"/api/market/alerts/{alert_id}/verdict"

    created = api.client.post(verdict, json={"verdict": "noise"}, headers=api.headers["lena"])
    again = api.client.post(verdict, json={"verdict": "useful"}, headers=api.headers["lena"])
    other = api.client.post(verdict, json={"verdict": "noise"}, headers=api.headers["lars"])

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["alert_id"], body["verdict"], body["label"], body["author"]) == (
        alert_id,
        "noise",
        "hold",
        "lena",
    )
    with db.session(read_only=True) as session:
        feedback = feedback_for(session, body["prediction_id"])
    assert [(f.id, f.label, f.source, f.author) for f in feedback] == [
        (body["feedback_id"], "hold", "outcome", "lena"),
        (other.json()["feedback_id"], "hold", "outcome", "lars"),
    ]
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert "'lena'" in again.json()["message"]
    assert other.status_code == 201  # each analyst has their own verdict
    listed = api.client.get("/api/market/alerts", headers=api.headers["vera"]).json()["alerts"]
    assert listed[0]["verdict"] == "noise"


def test_verdicts_on_unknown_or_undecided_alerts_are_refused(db: Database, api: Service) -> None:
    undecided = add_alert(db, "TSLA", T0, decided=False)

    missing = api.client.post(
        "/api/market/alerts/999/verdict", json={"verdict": "noise"}, headers=api.headers["lena"]
    )
    no_decision = api.client.post(
        f"/api/market/alerts/{undecided}/verdict",
        json={"verdict": "useful"},
        headers=api.headers["lena"],
    )
    bad = api.client.post(
        f"/api/market/alerts/{undecided}/verdict",
        json={"verdict": "maybe"},
        headers=api.headers["lena"],
    )

    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "No alert 999."}
    assert no_decision.status_code == 409
    assert "alert_policy" in no_decision.json()["message"]
    assert bad.status_code == 422


def test_digest_route_serves_markdown(db: Database, api: Service) -> None:
    pytest.importorskip("market_monitor.digest", reason="digest.py is not written yet")
    alert_id = add_alert(db, "TSLA", T0)

    response = api.client.get(
        "/api/market/digest", params={"since": T0, "until": T0 + 3600}, headers=api.headers["vera"]
    )
    backwards = api.client.get(
        "/api/market/digest", params={"since": T0, "until": T0}, headers=api.headers["vera"]
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text.startswith("# Market digest: 2024-05-01 08:00 to 2024-05-01 09:00 UTC")
    assert f"alert #{alert_id}" in response.text
    assert backwards.status_code == 422
    assert backwards.json()["error"] == "unprocessable"


def test_serve_prints_working_keys_and_serves_the_market_routes(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn  # noqa: PLC0415 - only this test serves

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    wf = Workflow("noop", task=FakeInput)
    wf.step("only", FakeAgent(echo=True))

    routers = [service.market_router(db)]
    assert serve(db, wf.compile(), 8766, name="market", routers=routers) == 0

    assert (served["host"], served["port"]) == ("127.0.0.1", 8766)
    tokens = dict(re.findall(r"(admin|labeler)\s+key: (tlk_\S+)", capsys.readouterr().out))
    with TestClient(served["app"]) as client:
        labeler = {"Authorization": f"Bearer {tokens['labeler']}"}
        response = client.get("/api/market/alerts", headers=labeler)
    assert response.status_code == 200
    assert response.json() == {"alerts": []}
