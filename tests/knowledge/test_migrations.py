"""The Alembic migrations: up and down on both backends, models in step, the ``db`` commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from knowledge import Database, SchemaError, _migrate
from knowledge._models import (
    ApiKey,
    AuditEntry,
    Base,
    Chunk,
    Dataset,
    Document,
    Fact,
    Feedback,
    IdempotencyKey,
    ModelAlias,
    ModelVersion,
    Prediction,
    ReviewItem,
    Run,
    Step,
)
from workflow._cli import main

ROOT = Path(__file__).resolve().parents[2]
MODEL_TABLES = set(Base.metadata.tables)


def _tables(db: Database) -> set[str]:
    """The taskloom tables in the database (full-text and Alembic bookkeeping left out)."""
    names = set(inspect(db.engine).get_table_names())
    return {n for n in names if _migrate.include_name(n, "table", {})} - {"alembic_version"}


def _populate(session: Session) -> None:
    """One row in every table, linked the way the stores link them."""
    run = Run(
        id="r1", workflow="wf", task={"text": "hi"}, status="succeeded", created_at=1.0,
        finished_at=2.0,
    )  # fmt: skip
    step = Step(
        run_id="r1", seq=0, step="classify", agent="intent", status="ok", visit=1, attempts=1,
        input={"text": "hi"}, output={"label": "greet"}, error=None, started_at=1.0,
        duration_s=0.1, decision_kind="end", decision_route=None, decision_targets=[],
        decision_rule=None, decision_reason="terminal",
    )  # fmt: skip
    prediction = Prediction(
        run_id="r1", step="classify", agent="intent", model_version="v1", input={"text": "hi"},
        output={"label": "greet"}, label="greet", confidence=0.9, probabilities=[0.9, 0.1],
        label_set=["greet", "other"], created_at=1.0,
    )  # fmt: skip
    document = Document(source="faq.md", title="FAQ", content_hash="h1", meta={}, created_at=1.0)
    dataset = Dataset(
        agent="intent", version=1, content_hash="d1", size=1, label_set=["greet"], meta={},
        created_at=1.0,
    )  # fmt: skip
    version = ModelVersion(
        agent="intent", version="v1", status="serving", metrics={"f1": 0.9},
        artifact_path="/models/v1", sha256="0" * 64, created_at=1.0,
    )  # fmt: skip
    session.add_all([run, document, dataset, version])
    session.flush()  # parents first: the ORM orders inserts by relationships only
    session.add_all([step, prediction])
    session.flush()
    version.dataset_id = dataset.id
    session.add_all([
        Feedback(prediction_id=prediction.id, label="greet", source="human", author="ann",
                 status="new", shown={"text": "hi"}, created_at=2.0),
        ReviewItem(prediction_id=prediction.id, agent="intent", priority=0.5,
                   strategy="margin", status="open", created_at=2.0),
        Chunk(document_id=document.id, ordinal=0, text="reset your card pin", meta={}),
        Fact(subject="card", relation="has", object="pin", provenance={"doc": document.id},
             created_at=1.0),
        ModelAlias(agent="intent", alias="serving", model_version_id=version.id, actor="ci",
                   reason="first", at=1.0),
        IdempotencyKey(key="r1:send", run_id="r1", step="send", result={"ok": True},
                       created_at=1.0),
        AuditEntry(at=1.0, actor="ann", action="label", entity="prediction",
                   entity_id=str(prediction.id), details={}),
        ApiKey(id="0123456789ab", name="ann", role="labeler", token_sha256="0" * 64,
               created_by="admin", created_at=1.0, revoked_at=None),
    ])  # fmt: skip


# --------------------------------------------------------------------------- up and down


def test_up_down_up_on_an_empty_database(database_url: str) -> None:
    with Database(database_url, auto_upgrade=False) as db:
        assert db.current_revision() is None

        db.upgrade()
        assert (db.current_revision(), _tables(db)) == (db.head_revision(), MODEL_TABLES)
        db.downgrade("base")
        assert (db.current_revision(), _tables(db)) == (None, set())
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.upgrade()
        assert (db.current_revision(), _tables(db)) == (db.head_revision(), MODEL_TABLES)


def test_up_down_up_on_a_populated_database(database: Database) -> None:
    with database.transaction() as session:
        _populate(session)
    with database.session() as session:
        assert session.execute(select(Feedback.author)).scalars().all() == ["ann"]

    database.downgrade("base")
    assert _tables(database) == set()
    database.upgrade()

    with database.transaction() as session:
        assert session.execute(select(Run.id)).all() == []
        _populate(session)  # the recreated schema takes the same rows again


def test_models_match_the_migrations(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": _migrate.include_name}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_the_full_text_index_follows_the_chunks(database: Database) -> None:
    if database.dialect == "sqlite":
        query = text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :q")
    else:
        query = text(
            "SELECT id FROM chunks WHERE to_tsvector('english', text) @@ plainto_tsquery(:q)"
        )
    with database.transaction() as session:
        _populate(session)
        chunk = session.execute(select(Chunk)).scalar_one()
        assert session.execute(query, {"q": "pin"}).scalars().all() == [chunk.id]
        chunk.text = "block a lost card"
        session.flush()
        assert session.execute(query, {"q": "pin"}).scalars().all() == []
        assert session.execute(query, {"q": "lost"}).scalars().all() == [chunk.id]
        session.delete(chunk)
        session.flush()
        assert session.execute(query, {"q": "lost"}).scalars().all() == []

    indexes = {ix["name"] for ix in inspect(database.engine).get_indexes("chunks")}
    if database.dialect == "postgresql":
        assert "ix_chunks_tsv" in indexes


def test_unknown_revisions_are_refused_with_the_known_ones(database: Database) -> None:
    with pytest.raises(
        SchemaError, match=r"Known revisions: base, 0001, 0002, 0003, 0004 \(head\)"
    ):
        database.downgrade("0042")
    assert database.current_revision() == "0004"


# --------------------------------------------------------------------------- taskloom db


def test_cli_upgrade_current_downgrade(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Database(database_url) as db:
        head, shown = db.head_revision(), db.display_url

    assert main(["db", "current", "--url", database_url]) == 0
    out = capsys.readouterr().out
    assert f"{shown}: current base, head {head}" in out
    assert "taskloom db upgrade --url" in out

    assert main(["db", "upgrade", "--url", database_url]) == 0
    assert f"schema base -> {head}" in capsys.readouterr().out
    assert main(["db", "current", "--url", database_url]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["db", "downgrade", "base", "--url", database_url]) == 0
    assert f"schema {head} -> base" in capsys.readouterr().out
    with Database(database_url) as db:
        assert db.current_revision() is None


def test_cli_reports_a_bad_revision_without_a_traceback(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "downgrade", "nope", "--url", database.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot migrate")
    assert "Traceback" not in err


def test_cli_prune_keeps_the_last_state_of_each_run(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with database.transaction() as session:
        _populate(session)  # run r1 has feedback: pruning must keep it whole

    assert main(["db", "prune", "--keep-last", "0", "--url", database.url]) == 0
    assert "kept 1 runs whole because feedback points at them" in capsys.readouterr().out
    assert main(["db", "prune", "--url", database.url]) == 2
    assert "--older-than-days" in capsys.readouterr().err


# --------------------------------------------------------------------------- packaging


def test_the_wheel_ships_the_migrations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    for package in ("agents", "workflow", "knowledge", "finetune"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr

    (wheel,) = (tmp_path / "dist").glob("taskloom-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("knowledge/migrations/")}
    expected = {
        f"knowledge/migrations/{p.relative_to(_migrate.MIGRATIONS_DIR)}"
        for p in _migrate.MIGRATIONS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == expected
    assert "knowledge/migrations/versions/0001_initial.py" in shipped
