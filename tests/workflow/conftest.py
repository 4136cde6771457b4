"""Fixtures for the HTTP service's tests: a seeded knowledge base and the app over it.

``seeded`` (``seed_service_kb``) fills a knowledge base with what every service test reads: one key
per role, predictions of an ``intent`` agent with open review items, and two model versions
of it with ``serving`` moved once (so a rollback has somewhere to go).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.testing import AsyncFakeAgent, FakeAgent
from knowledge import (
    ROLES,
    Database,
    ModelVersionIn,
    PredictionIn,
    Role,
    create_api_key,
    enqueue_uncertain,
    record_predictions,
    register_model_version,
    set_alias,
)
from workflow import CompiledWorkflow, ServiceConfig, Workflow, state

LABELS = ["card_lost", "refund", "top_up", "balance"]


class Ticket(BaseModel):
    """The service tests' task."""

    text: str


def triage_workflow(*, delay_s: float = 0.0) -> CompiledWorkflow:
    """Three fake steps; ``classify`` echoes the text, and ``card_lost`` routes to
    ``escalate`` on a rule, anything else to ``reply``. ``delay_s`` makes ``classify`` wait
    (an ``asyncio.sleep``, as a well-behaved agent on the server's loop would)."""
    wf = Workflow("triage", task=Ticket, description="fake triage for the service tests")
    wf.step("classify", AsyncFakeAgent(echo=True, delay_s=delay_s))
    wf.step("reply", FakeAgent(label="sent")).step("escalate", FakeAgent(label="queued"))
    wf.route("classify", "escalate", when=state("classify").label == "card_lost")
    wf.route("classify", "reply")
    return wf.compile()


@dataclass(frozen=True)
class Seeded:
    """What ``seed_service_kb`` put in the knowledge base."""

    keys: dict[str, str]  # role -> token
    prediction_ids: list[int]

    def headers(self, role: str) -> dict[str, str]:
        """The Authorization header of ``role``'s key."""
        return {"Authorization": f"Bearer {self.keys[role]}"}


class KbSeed:
    """Building blocks that fill a service test's knowledge base (the ``kb_seed`` fixture)."""

    @staticmethod
    def predictions(
        db: Database,
        rows: Sequence[tuple[str, Sequence[float]]],
        *,
        labels: Sequence[str] = LABELS,
        run_id: str | None = None,
    ) -> list[int]:
        """Record ``intent`` predictions of (text, probabilities) and queue them for review."""
        with db.transaction() as session:
            records = record_predictions(
                session,
                [
                    PredictionIn(
                        agent="intent",
                        model_version="v1",
                        input={"text": text},
                        output={"label": labels[max(range(len(p)), key=p.__getitem__)]},
                        label=labels[max(range(len(p)), key=p.__getitem__)],
                        confidence=max(p),
                        probabilities=list(p),
                        label_set=list(labels),
                        run_id=run_id,
                        step=None if run_id is None else "classify",
                    )
                    for text, p in rows
                ],
            )
            queued = enqueue_uncertain(session, "intent")
        assert queued == len(rows)
        return [r.id for r in records]

    @staticmethod
    def model_versions(db: Database, metrics: Sequence[tuple[str, dict[str, float]]]) -> None:
        """Register ``intent`` versions in order, moving ``serving`` to each in turn."""
        with db.transaction() as session:
            for version, scores in metrics:
                register_model_version(
                    session,
                    ModelVersionIn(
                        agent="intent",
                        version=version,
                        artifact_path=f"/models/intent/{version}",
                        sha256="0" * 64,
                        metrics=dict(scores),
                    ),
                )
                set_alias(session, "intent", "serving", version, "seed", f"{version} is better")

    @staticmethod
    def keys(db: Database, names: Mapping[Role, str]) -> dict[Role, str]:
        """One key per role, named as given; returns role -> token."""
        with db.transaction() as session:
            return {
                role: create_api_key(session, name, role, created_by="seed")[1]
                for role, name in names.items()
            }


def seed_service_kb(db: Database, *, predictions: int = 6) -> Seeded:
    """Keys for every role, ``intent`` predictions in review, two model versions."""
    keys = KbSeed.keys(db, {role: f"{role}-key" for role in ROLES})
    rows = []
    for i in range(predictions):
        top = 0.3 + 0.6 * i / max(predictions, 1)
        rest = (1 - top) / (len(LABELS) - 1)
        rows.append(
            (f"ticket {i}: where is my money", [top if j == i % 4 else rest for j in range(4)])
        )
    ids = KbSeed.predictions(db, rows)
    KbSeed.model_versions(
        db,
        [
            ("v1", {"accuracy": 0.81, "macro_f1": 0.79}),
            ("v2", {"accuracy": 0.86, "macro_f1": 0.84}),
        ],
    )
    return Seeded(keys=dict(keys), prediction_ids=ids)


@pytest.fixture(scope="session")
def kb_seed() -> type[KbSeed]:
    """``KbSeed``: predictions in review, model versions and keys for a service test."""
    return KbSeed


@pytest.fixture
def service_db(tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite knowledge base file."""
    db = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    yield db
    db.dispose()


@pytest.fixture
def service_config(tmp_path: Path) -> ServiceConfig:
    """Config whose fine-tuning command records its arguments instead of training."""
    # Writes its arguments (after the record's path) and the DB URL it got, atomically.
    script = (
        "import json, os, sys; path = sys.argv[1]; "
        "open(path + '.tmp', 'w').write(json.dumps({'argv': sys.argv[2:], "
        "'db': os.environ.get('TASKLOOM_DATABASE_URL')})); os.replace(path + '.tmp', path)"
    )
    return ServiceConfig(
        jobs_dir=str(tmp_path / "jobs"),
        finetune_command=(sys.executable, "-c", script, str(tmp_path / "job-args.json")),
    )


@pytest.fixture
def make_client(
    service_db: Database, service_config: ServiceConfig
) -> Iterator[Callable[..., Any]]:
    """``make_client(workflow=None, config=None)`` -> a started TestClient of a new app."""
    from fastapi.testclient import TestClient  # noqa: PLC0415 - the service extra

    from workflow import create_app  # noqa: PLC0415

    clients: list[Any] = []

    def make(workflow: CompiledWorkflow | None = None, config: ServiceConfig | None = None) -> Any:
        app = create_app(
            [workflow or triage_workflow()],
            database=service_db,
            config=config or service_config,
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def seeded(service_db: Database) -> Seeded:
    """The seeded knowledge base's keys and predictions."""
    return seed_service_kb(service_db)


@pytest.fixture
def workflow_factory() -> Callable[..., CompiledWorkflow]:
    """``triage_workflow(delay_s=0.0)``: the fake workflow the service tests submit to."""
    return triage_workflow


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local Ray instance (2 CPUs) for the whole session, shut down at its end.

    For the Ray executor's tests (``test_ray_executor.py``, the scenario table's Ray
    variant). Skips when Ray is not installed, except under ``CI=true`` (set by
    ``.ci/run``), where it fails: CI must not pass without testing the Ray executor.
    """
    import os  # noqa: PLC0415 - only the Ray tests need these

    try:
        import ray  # noqa: PLC0415
    except ImportError:
        reason = "Ray is not installed; pip install -e '.[ray]' to run the Ray executor tests"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Ray tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # replicas inherit it: 2 shared cores
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
