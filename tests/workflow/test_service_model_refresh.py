"""The served workflows follow the registry: promotions reach registry agents."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from agents import RunContext
from agents.testing import FakeAgent, FakeInput, FakeOutput
from knowledge import Database, serving_version, set_alias
from workflow import ServiceConfig, Workflow


class RegistryFake(FakeAgent):
    """Stands in for a model agent built with ``from_registry(db, "intent")``: its output's
    label is the model version it serves."""

    name = "registry_fake"

    def __init__(self, *, version: str = "v2", broken: bool = False) -> None:
        super().__init__()
        self.model_version, self.broken = version, broken
        self.registry_alias = ("intent", "serving")

    def refresh_from_registry(self, database: Database) -> bool:
        with database.session() as session:
            serving = serving_version(session, "intent")
        assert serving is not None
        if serving.version == self.model_version:
            return False
        if self.broken:
            raise RuntimeError("the new artifact fails its checksum")
        self.model_version = serving.version
        return True

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        return FakeOutput(text=input.text, label=self.model_version)


class Task(BaseModel):
    text: str


def _served_by(client: Any, headers: dict[str, str]) -> str:
    run = client.post("/api/workflows/registry/runs", json={"text": "x"}, headers=headers).json()
    label: str = run["steps"][0]["output"]["label"]
    return label


def _client(make_client: Any, agent: RegistryFake, config: ServiceConfig) -> Any:
    wf = Workflow("registry", task=Task)
    wf.step("intent", agent)
    return make_client(wf.compile(), config)


def test_a_promotion_through_the_service_is_served_from_the_next_run(
    make_client: Any, seeded: Any, service_config: ServiceConfig
) -> None:
    client = _client(make_client, RegistryFake(), service_config)
    operator, admin = seeded.headers("operator"), seeded.headers("admin")
    assert _served_by(client, operator) == "v2"
    client.post("/api/models/intent/promote", json={"version": "v1"}, headers=admin)
    assert _served_by(client, operator) == "v1"
    client.post("/api/models/intent/rollback", json={}, headers=admin)
    assert _served_by(client, operator) == "v2"


def test_a_promotion_made_elsewhere_is_picked_up_by_the_periodic_check(
    make_client: Any, seeded: Any, service_db: Database, service_config: ServiceConfig
) -> None:
    often = ServiceConfig(**{**vars(service_config), "model_refresh_s": 0.05})
    client = _client(make_client, RegistryFake(), often)
    with service_db.transaction() as session:  # as a fine-tuning round's process would
        set_alias(session, "intent", "serving", "v1", "finetune", "a better candidate")
    deadline = time.monotonic() + 10
    while _served_by(client, seeded.headers("operator")) != "v1":
        assert time.monotonic() < deadline, "the periodic check never swapped the model"
        time.sleep(0.05)


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    make_client: Any, seeded: Any, service_config: ServiceConfig
) -> None:
    client = _client(make_client, RegistryFake(broken=True), service_config)
    promoted = client.post(
        "/api/models/intent/promote", json={"version": "v1"}, headers=seeded.headers("admin")
    )
    assert promoted.status_code == 200  # the alias moved; this process keeps the old model
    assert _served_by(client, seeded.headers("operator")) == "v2"
