"""Model versions through the service: metrics, promote, roll back, start fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from knowledge import alias_history, serving_version


def test_models_list_and_detail_show_metrics_and_alias_history(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    headers = seeded.headers("viewer")
    assert client.get("/api/models", headers=headers).json() == {
        "agents": [{"agent": "intent", "serving": "v2", "versions": 2}]
    }
    detail = client.get("/api/models/intent", headers=headers).json()
    assert detail["serving"] == "v2"
    assert [v["version"] for v in detail["versions"]] == ["v1", "v2"]
    assert detail["versions"][1]["metrics"] == {"accuracy": 0.86, "macro_f1": 0.84}
    assert "artifact_path" not in detail["versions"][0]
    assert [(m["version"], m["previous_version"]) for m in detail["history"]] == [
        ("v2", "v1"),
        ("v1", None),
    ]
    assert client.get("/api/models/nobody", headers=headers).status_code == 404


def test_an_admin_promotes_and_rolls_back_with_the_key_as_actor(
    make_client: Any, seeded: Any, service_db: Any
) -> None:
    client = make_client()
    admin = seeded.headers("admin")
    back = client.post("/api/models/intent/rollback", json={"reason": "regression"}, headers=admin)
    assert back.status_code == 200
    assert (back.json()["version"], back.json()["actor"]) == ("v1", "admin-key")
    promoted = client.post("/api/models/intent/promote", json={"version": "v2"}, headers=admin)
    assert promoted.json()["version"] == "v2"
    with service_db.session() as session:
        assert serving_version(session, "intent").version == "v2"
        reasons = [m.reason for m in alias_history(session, "intent", "serving")]
    assert reasons[:2] == ["promoted from the service", "regression"]


def test_promoting_an_unknown_version_is_404_and_changes_nothing(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    response = client.post(
        "/api/models/intent/promote", json={"version": "v9"}, headers=seeded.headers("admin")
    )
    assert response.status_code == 404
    assert "v9" in response.json()["message"]
    serving = client.get("/api/models/intent", headers=seeded.headers("viewer")).json()["serving"]
    assert serving == "v2"


def test_a_fine_tuning_round_starts_as_its_own_process(
    make_client: Any, seeded: Any, service_db: Any, tmp_path: Path
) -> None:
    client = make_client()
    response = client.post(
        "/api/models/intent/jobs",
        json={"epochs": 2, "tier": "head"},
        headers=seeded.headers("operator"),
    )
    assert response.status_code == 202
    started = response.json()
    assert started["agent"] == "intent"
    assert started["pid"] > 0
    record = tmp_path / "job-args.json"
    deadline = time.monotonic() + 20
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = json.loads(record.read_text())
    assert seen["argv"] == [
        "--agent", "intent", "--out", str(tmp_path / "jobs"), "--epochs", "2", "--tier", "head",
    ]  # fmt: skip
    # The database URL travels in the environment, never on the command line.
    assert seen["db"] == service_db.url
    assert Path(started["log"]).parent == tmp_path / "jobs" / "logs"


def test_a_round_for_an_agent_without_models_is_404(make_client: Any, seeded: Any) -> None:
    response = make_client().post(
        "/api/models/ghost/jobs", json={}, headers=seeded.headers("operator")
    )
    assert response.status_code == 404
    assert "intent" in response.json()["message"]


def test_jobs_are_listed(make_client: Any, seeded: Any) -> None:
    jobs = make_client().get("/api/models/intent/jobs", headers=seeded.headers("viewer"))
    assert jobs.json() == {"jobs": []}


def test_a_second_round_while_one_runs_is_409(
    make_client: Any, seeded: Any, service_config: Any
) -> None:
    slow = dataclasses.replace(
        service_config, finetune_command=(sys.executable, "-c", "import time; time.sleep(3)")
    )
    client = make_client(config=slow)
    headers = seeded.headers("operator")
    first = client.post("/api/models/intent/jobs", json={}, headers=headers)
    assert first.status_code == 202
    second = client.post("/api/models/intent/jobs", json={}, headers=headers)
    assert second.status_code == 409
    assert f"pid {first.json()['pid']}" in second.json()["message"]
