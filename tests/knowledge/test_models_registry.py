"""Model versions and aliases: registration, moves with history and audit, rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowledge import (
    Database,
    DuplicateModelVersionError,
    ModelRegistryError,
    ModelVersionIn,
    RollbackError,
    UnknownModelVersionError,
    alias_history,
    audit_log,
    get_alias,
    get_model_version,
    model_versions,
    register_model_version,
    rollback,
    serving_version,
    set_alias,
)
from knowledge import _models as orm

SHA = "0123456789abcdef" * 4


def version_in(version: str, agent: str = "intent", **kw: object) -> ModelVersionIn:
    return ModelVersionIn(
        agent=agent, version=version, artifact_path=f"/models/{agent}/{version}", sha256=SHA, **kw
    )


def rows(session: Session, model: type[orm.Base]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def registered(database: Database) -> None:
    with database.transaction() as session:
        for name in ("v1", "v2", "v3"):
            register_model_version(session, version_in(name, metrics={"accuracy": 0.8}))
        register_model_version(session, version_in("v1", agent="sentiment"))


def test_a_registered_version_reads_back(database: Database) -> None:
    with database.transaction() as session:
        stored = register_model_version(
            session, version_in("v1", metrics={"f1": {"refund": 0.9}}, status="candidate")
        )

    with database.session() as session:
        assert get_model_version(session, "intent", "v1") == stored
    assert (stored.sha256, stored.status, stored.metrics) == (
        SHA,
        "candidate",
        {"f1": {"refund": 0.9}},
    )
    assert stored.artifact_path == "/models/intent/v1"


def test_registering_a_version_twice_is_refused_and_changes_nothing(
    database: Database, registered: None
) -> None:
    with database.session() as session:
        with pytest.raises(DuplicateModelVersionError, match="already has a model version 'v2'"):
            register_model_version(session, version_in("v2"))
        session.commit()
        assert [v.version for v in model_versions(session, "intent")] == ["v1", "v2", "v3"]


def test_unknown_versions_list_the_registered_ones(database: Database, registered: None) -> None:
    with database.session() as session:
        with pytest.raises(UnknownModelVersionError, match="Registered versions: v1, v2, v3"):
            set_alias(session, "intent", "serving", "v9", "ops", "promote")
        with pytest.raises(LookupError, match="none yet"):
            get_model_version(session, "nobody", "v1")
        session.commit()
        assert rows(session, orm.ModelAlias) == rows(session, orm.AuditEntry) == 0


def test_moves_are_recorded_with_the_previous_version_and_audited(
    database: Database, registered: None
) -> None:
    with database.transaction() as session:
        first = set_alias(session, "intent", "serving", "v1", "ops", "initial")
        second = set_alias(session, "intent", "serving", "v2", "gate", "f1 +3 points")
        set_alias(session, "intent", "candidate", "v3", "trainer", "new run")

    assert (first.version, first.previous_version) == ("v1", None)
    assert (second.version, second.previous_version, second.actor) == ("v2", "v1", "gate")
    with database.session() as session:
        assert alias_history(session, "intent", "serving") == [second, first]
        assert alias_history(session, "intent", "serving", limit=1) == [second]
        assert get_alias(session, "intent", "candidate").version == "v3"  # type: ignore[union-attr]
        serving = serving_version(session, "intent")
        entries = audit_log(session, entity="model_aliases")
    assert serving is not None
    assert serving.version == "v2"
    assert [(e.actor, e.action, e.details["version"], e.details["from"]) for e in entries] == [
        ("trainer", "alias.move", "v3", None),
        ("gate", "alias.move", "v2", "v1"),
        ("ops", "alias.move", "v1", None),
    ]
    assert entries[1].entity_id == str(second.id)


def test_moving_serving_keeps_statuses_in_step(database: Database, registered: None) -> None:
    with database.transaction() as session:
        set_alias(session, "intent", "serving", "v1", "ops", "initial")
        set_alias(session, "intent", "serving", "v2", "gate", "better")

    with database.session() as session:
        statuses = {v.version: v.status for v in model_versions(session, "intent")}
    assert statuses == {"v1": "retired", "v2": "serving", "v3": "candidate"}


def test_setting_an_alias_where_it_already_points_changes_nothing(
    database: Database, registered: None
) -> None:
    with database.transaction() as session:
        first = set_alias(session, "intent", "serving", "v1", "ops", "initial")
        again = set_alias(session, "intent", "serving", "v1", "ops", "retry after a crash")

    assert again == first
    with database.session() as session:
        assert rows(session, orm.ModelAlias) == 1


def test_rollback_undoes_the_last_move_and_a_second_rollback_undoes_the_first(
    database: Database, registered: None
) -> None:
    with database.transaction() as session:
        for version in ("v1", "v2", "v3"):
            set_alias(session, "intent", "serving", version, "gate", "promote")
        back = rollback(session, "intent", "serving", "ops", "v3 answers in French")

    assert (back.version, back.previous_version, back.actor) == ("v2", "v3", "ops")
    with database.transaction() as session:
        assert serving_version(session, "intent").version == "v2"  # type: ignore[union-attr]
        forth = rollback(session, "intent", "serving", "ops")
    assert (forth.version, forth.previous_version, forth.reason) == ("v3", "v2", "rollback")
    with database.session() as session:
        history = alias_history(session, "intent", "serving")
        [entry, *_] = audit_log(session, action="alias.rollback")
    assert [m.version for m in history] == ["v3", "v2", "v3", "v2", "v1"]
    assert (entry.actor, entry.details["version"], entry.details["from"]) == ("ops", "v3", "v2")


def test_rollback_without_an_earlier_version_is_refused(
    database: Database, registered: None
) -> None:
    with database.session() as session:
        with pytest.raises(RollbackError, match="it has never been set"):
            rollback(session, "intent", "serving", "ops")
        set_alias(session, "intent", "serving", "v1", "ops", "initial")
        with pytest.raises(RollbackError, match="it has pointed at 'v1' only") as caught:
            rollback(session, "intent", "serving", "ops")
        session.commit()
        assert rows(session, orm.ModelAlias) == 1
    assert isinstance(caught.value, ModelRegistryError)
    assert "Use set_alias" in str(caught.value)


def test_aliases_are_per_agent(database: Database, registered: None) -> None:
    with database.transaction() as session:
        set_alias(session, "sentiment", "serving", "v1", "ops", "initial")
        with pytest.raises(UnknownModelVersionError, match="Agent 'sentiment'"):
            set_alias(session, "sentiment", "serving", "v2", "ops", "no such version")

    with database.session() as session:
        assert serving_version(session, "intent") is None
        assert get_alias(session, "sentiment", "serving").agent == "sentiment"  # type: ignore[union-attr]


def test_alias_and_actor_names_must_fit(database: Database, registered: None) -> None:
    with database.session() as session, pytest.raises(ValueError, match="actor must be 1 to 200"):
        set_alias(session, "intent", "serving", "v1", "", "initial")
