"""Submitting tasks, reading runs, streaming their events, and not losing runs on restart."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from agents.testing import FakeAgent
from knowledge import RunRecord, RunStatus, SqlRunStore
from workflow import ServiceConfig, Workflow


def _events(client: Any, run_id: str, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """Read a run's whole event stream as (event, data) pairs."""
    events, name = [], None
    with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_task_run_with_wait_returns_the_trace_with_fired_rules(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    response = client.post(
        "/api/workflows/triage/runs", json={"text": "card_lost"}, headers=seeded.headers("operator")
    )
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["task"] == {"text": "card_lost"}
    assert [s["step"] for s in run["steps"]] == ["classify", "escalate"]
    first = run["steps"][0]
    assert first["decision"]["kind"] == "rule"
    assert first["decision"]["rule"] == "state('classify').label == 'card_lost'"
    assert first["decision"]["targets"] == ["escalate"]
    assert first["output"]["label"] == "card_lost"
    assert first["duration_ms"] >= 0
    assert run["steps"][1]["decision"]["kind"] == "end"


def test_the_default_route_fires_when_no_rule_holds(make_client: Any, seeded: Any) -> None:
    run = (
        make_client()
        .post(
            "/api/workflows/triage/runs", json={"text": "refund"}, headers=seeded.headers("admin")
        )
        .json()
    )
    assert [s["step"] for s in run["steps"]] == ["classify", "reply"]
    assert run["steps"][0]["decision"]["kind"] == "default"


def test_a_background_run_streams_its_steps_live_then_ends(
    make_client: Any, seeded: Any, workflow_factory: Any
) -> None:
    client = make_client(workflow_factory(delay_s=0.3))
    headers = seeded.headers("operator")
    started = client.post(
        "/api/workflows/triage/runs?wait=false", json={"text": "card_lost"}, headers=headers
    )
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    # The run is recorded before the answer, so it can be read at once.
    assert client.get(f"/api/runs/{run_id}", headers=headers).json()["status"] == "running"
    events = _events(client, run_id, seeded.headers("viewer"))
    assert [e for e, _ in events] == ["step", "step", "end"]
    assert [d["step"] for _, d in events[:2]] == ["classify", "escalate"]
    assert events[-1][1]["status"] == "succeeded"
    assert events[-1][1]["run_id"] == run_id


def test_the_stream_of_a_finished_run_replays_it(make_client: Any, seeded: Any) -> None:
    client = make_client()
    headers = seeded.headers("operator")
    run = client.post("/api/workflows/triage/runs", json={"text": "x"}, headers=headers).json()
    events = _events(client, run["run_id"], headers)
    assert [d["seq"] for e, d in events if e == "step"] == [s["seq"] for s in run["steps"]]
    assert events[-1][0] == "end"


def test_a_task_that_does_not_match_the_workflow_is_refused_and_not_recorded(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    headers = seeded.headers("operator")
    response = client.post("/api/workflows/triage/runs", json={"txt": "typo"}, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unprocessable"
    assert any(p.startswith("text:") for p in body["problems"])
    assert client.get("/api/runs", headers=headers).json()["runs"] == []


def test_a_task_for_an_unknown_workflow_names_the_served_ones(
    make_client: Any, seeded: Any
) -> None:
    response = make_client().post(
        "/api/workflows/triag/runs", json={"text": "x"}, headers=seeded.headers("operator")
    )
    assert response.status_code == 404
    assert response.json()["message"] == "Unknown workflow 'triag'. Workflows: triage."


def test_a_failed_run_is_answered_with_its_error(make_client: Any, seeded: Any) -> None:
    class Task(BaseModel):
        text: str

    wf = Workflow("flaky", task=Task)
    wf.step("only", FakeAgent(fail_times=5))
    client = make_client(wf.compile())
    run = client.post(
        "/api/workflows/flaky/runs", json={"text": "x"}, headers=seeded.headers("operator")
    ).json()
    assert run["status"] == "failed"
    assert "scripted failure" in run["error"]
    assert run["steps"][0]["status"] == "failed"


def test_runs_are_listed_newest_first_filtered_and_paged(make_client: Any, seeded: Any) -> None:
    client = make_client()
    headers = seeded.headers("operator")
    ids = [
        client.post("/api/workflows/triage/runs", json={"text": f"t{i}"}, headers=headers).json()[
            "run_id"
        ]
        for i in range(5)
    ]
    first = client.get("/api/runs?limit=3", headers=headers).json()
    assert [r["run_id"] for r in first["runs"]] == ids[::-1][:3]
    rest = client.get(f"/api/runs?limit=3&before={first['next_before']}", headers=headers).json()
    assert [r["run_id"] for r in rest["runs"]] == ids[::-1][3:]
    assert rest["next_before"] is None
    assert client.get("/api/runs?status=failed", headers=headers).json()["runs"] == []
    assert len(client.get("/api/runs?workflow=triage", headers=headers).json()["runs"]) == 5
    assert client.get("/api/runs?limit=0", headers=headers).status_code == 422


def test_unknown_runs_are_404_for_the_detail_and_the_stream(make_client: Any, seeded: Any) -> None:
    client = make_client()
    headers = seeded.headers("viewer")
    for path in ("/api/runs/nope", "/api/runs/nope/events"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_workflows_and_their_graph_are_described(make_client: Any, seeded: Any) -> None:
    client = make_client()
    headers = seeded.headers("viewer")
    (workflow,) = client.get("/api/workflows", headers=headers).json()["workflows"]
    assert workflow["name"] == "triage"
    assert workflow["entry"] == "classify"
    assert workflow["task_schema"]["required"] == ["text"]
    graph = client.get("/api/workflows/triage/graph", headers=headers).json()
    assert graph["mermaid"].startswith("flowchart")
    assert "card_lost" in graph["mermaid"]


def test_an_unfinished_run_is_resumed_when_the_service_starts(
    make_client: Any, seeded: Any, service_db: Any, service_config: ServiceConfig
) -> None:
    store = SqlRunStore(service_db)
    store.create_run(RunRecord("a" * 32, "triage", {"text": "x"}, RunStatus.RUNNING, time.time()))
    store.create_run(RunRecord("b" * 32, "triage", {"text": "x"}, RunStatus.RUNNING, time.time()))
    client = make_client(config=ServiceConfig(**{**vars(service_config), "resume_on_start": False}))
    assert store.get_run("a" * 32).status is RunStatus.RUNNING
    client.__exit__(None, None, None)
    client = make_client()
    events = _events(client, "a" * 32, seeded.headers("viewer"))  # waits for the resumed run
    assert events[-1][1]["status"] == "succeeded"
    assert _events(client, "b" * 32, seeded.headers("viewer"))[-1][1]["status"] == "succeeded"


def test_a_run_cut_off_by_shutdown_is_finished_by_the_next_start(
    make_client: Any,
    seeded: Any,
    service_db: Any,
    service_config: ServiceConfig,
    workflow_factory: Any,
) -> None:
    slow = workflow_factory(delay_s=1.0)
    quick_exit = ServiceConfig(**{**vars(service_config), "shutdown_grace_s": 0.05})
    client = make_client(slow, quick_exit)
    headers = seeded.headers("operator")
    run_id = client.post(
        "/api/workflows/triage/runs?wait=false", json={"text": "x"}, headers=headers
    ).json()["run_id"]
    client.__exit__(None, None, None)  # shutdown while the first step sleeps
    assert SqlRunStore(service_db).get_run(run_id).status is RunStatus.RUNNING
    assert SqlRunStore(service_db).steps(run_id) == []
    client = make_client(slow)
    events = _events(client, run_id, headers)
    assert events[-1][1]["status"] == "succeeded"
    steps = client.get(f"/api/runs/{run_id}", headers=headers).json()["steps"]
    assert [s["step"] for s in steps] == ["classify", "reply"]


def test_a_slow_sync_agent_does_not_stall_other_requests(make_client: Any, seeded: Any) -> None:
    class Task(BaseModel):
        text: str

    wf = Workflow("slow", task=Task)
    wf.step("only", FakeAgent(delay_s=1.0))  # sync, not declared blocking
    client = make_client(wf.compile())
    headers = seeded.headers("operator")
    run_id = client.post(
        "/api/workflows/slow/runs?wait=false", json={"text": "x"}, headers=headers
    ).json()["run_id"]
    assert client.get("/health").json()["status"] == "ok"
    # Answered while the agent still sleeps: it runs in a worker thread, not on the loop.
    assert client.get(f"/api/runs/{run_id}", headers=headers).json()["status"] == "running"
    assert _events(client, run_id, headers)[-1][1]["status"] == "succeeded"
