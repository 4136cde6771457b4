"""``Database``: URLs, SQLite settings, first-use creation, concurrency, schema errors."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from knowledge import (
    Database,
    DatabaseOpenError,
    KnowledgeError,
    RunRecord,
    RunStatus,
    SchemaError,
    SqlRunStore,
    _migrate,
)
from knowledge._models import Run
from knowledge._redact import DEFAULT_REDACTOR, Redactor, redactor_for


def _run(run_id: str, workflow: str = "wf") -> Run:
    return Run(id=run_id, workflow=workflow, task={"text": "hi"}, status="running", created_at=1.0)


def _add_then_fail(db: Database, run: Run) -> None:
    with db.transaction() as session:
        session.add(run)
        session.flush()  # the row reached the database before the error
        raise RuntimeError("boom")


def _count_runs(db: Database) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(Run)).scalar_one()


# --------------------------------------------------------------------------- URLs


def test_default_url_comes_from_the_environment_else_a_local_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TASKLOOM_DATABASE_URL", raising=False)
    assert Database().url == "sqlite:///taskloom.db"

    monkeypatch.setenv("TASKLOOM_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    db = Database()
    assert db.url == f"sqlite:///{tmp_path / 'env.db'}"
    assert (db.dialect, db.auto_upgrade) == ("sqlite", True)


def test_postgresql_urls_get_psycopg_and_are_not_upgraded_implicitly() -> None:
    db = Database("postgresql://alice:s3cret@db.example:5432/kb")

    assert db.url == "postgresql+psycopg://alice:s3cret@db.example:5432/kb"
    assert db.dialect == "postgresql"
    assert db.auto_upgrade is False
    assert "s3cret" not in repr(db)
    assert "s3cret" not in db.display_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@localhost/kb", "Unsupported database URL scheme 'mysql'"),
        ("not a url", "is not a database URL"),
    ],
)
def test_unsupported_urls_are_refused_with_the_options(url: str, expected: str) -> None:
    with pytest.raises(DatabaseOpenError, match=expected) as info:
        Database(url)
    assert "sqlite:///PATH" in str(info.value)


def test_an_unreachable_server_gives_a_clear_error() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/kb")  # port 1: nothing listens
    with pytest.raises(DatabaseOpenError, match="Cannot connect to the database at") as info:
        db.current_revision()
    assert "server is running" in str(info.value)
    db.dispose()


# --------------------------------------------------------------------------- SQLite


def test_embedded_database_is_created_and_migrated_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "kb.db"
    db = Database(f"sqlite:///{path}")
    assert not path.exists()  # creating the object touches nothing

    with db.transaction() as session:
        session.add(_run("r1"))

    assert db.current_revision() == db.head_revision()
    assert _count_runs(db) == 1
    db.dispose()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    with db.session() as session:
        pragmas = {
            name: session.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    db.dispose()

    # synchronous: 1 is NORMAL.
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 30_000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def test_sqlite_transactions_take_the_write_lock_when_they_begin(tmp_path: Path) -> None:
    path = tmp_path / "kb.db"
    db = Database(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with db.transaction() as session:
            session.execute(select(Run.id)).all()  # only a read so far
            # BEGIN IMMEDIATE took the write lock: another writer cannot start.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        db.dispose()


def test_read_only_sessions_and_run_store_reads_never_take_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kb.db"
    db = Database(f"sqlite:///{path}")
    store = SqlRunStore(db)
    store.create_run(RunRecord("r1", "w", {}, RunStatus.RUNNING, time.time()))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with db.session(read_only=True) as session:
            assert session.execute(select(func.count(Run.id))).scalar_one() == 1
            # The reader holds no write lock: a writer starts at once (timeout 0)...
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE runs SET status = 'failed'")
            # ...and the reader still sees its snapshot, not the uncommitted write.
            assert session.execute(select(Run.status)).scalar_one() == "running"
        # While that writer holds the lock, reads go on (a write lock would wait 30 s).
        with db.session(read_only=True) as session:
            assert session.execute(select(Run.status)).scalar_one() == "running"
        assert store.get_run("r1").status is RunStatus.RUNNING
        assert [r.run_id for r in store.list_runs()] == ["r1"]
        other.execute("COMMIT")
        assert store.get_run("r1").status is RunStatus.FAILED
    finally:
        other.close()
        db.dispose()


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from knowledge import Database
    from knowledge._models import Run

    url, worker, rows, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    (barrier / f"ready-{worker}").touch()
    while not (barrier / "go").exists():  # start together, once every interpreter is up
        time.sleep(0.005)
    db = Database(url)  # the first one creates and migrates the file; the others wait
    began = time.time()
    for i in range(rows):
        with db.transaction() as session:
            session.add(Run(id=f"{worker}-{i}", workflow="w", task={}, status="running",
                            created_at=time.time()))
    print(began, time.time())
    db.dispose()
""")


def test_several_processes_create_and_write_one_sqlite_file_without_lock_errors(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    workers, rows = 4, 200
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{n}", str(rows), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]

    assert [err for (_, err), code in results if code != 0] == []
    assert not any("locked" in err for (_, err), _ in results)
    spans = [tuple(map(float, out.split())) for (out, _), _ in results]
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # they overlapped
    db = Database(url)
    assert _count_runs(db) == workers * rows
    db.dispose()


def test_a_corrupt_sqlite_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kb.db"
    path.write_bytes(bytes(range(256)) * 64)
    db = Database(f"sqlite:///{path}")

    with pytest.raises(KnowledgeError, match="not a SQLite database or is corrupt") as info:
        db.session()
    assert isinstance(info.value, DatabaseOpenError)
    assert str(path) in str(info.value)
    with pytest.raises(DatabaseOpenError):
        db.current_revision()
    db.dispose()


# --------------------------------------------------------------------------- both backends


def test_transaction_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    with database.transaction() as session:
        session.add(_run("kept"))
    with pytest.raises(RuntimeError, match="boom"):
        _add_then_fail(database, _run("dropped"))

    with database.session() as session:
        assert session.execute(select(Run.id)).scalars().all() == ["kept"]


def test_sessions_carry_the_redactor(database: Database) -> None:
    with database.session() as session:
        assert redactor_for(session) is database.redactor is DEFAULT_REDACTOR

    emails_only = Redactor(kinds=["email"])
    with Database(database.url, redactor=emails_only) as db, db.transaction() as session:
        assert redactor_for(session) is emails_only
        assert redactor_for(session).text("ann@example.com 4111 1111 1111 1111") == (
            "[EMAIL] 4111 1111 1111 1111"
        )


def test_an_empty_database_without_auto_upgrade_names_the_command(database_url: str) -> None:
    db = Database(database_url, auto_upgrade=False)

    with pytest.raises(SchemaError) as info:
        db.session()

    message = str(info.value)
    assert f"taskloom db upgrade --url '{db.display_url}'" in message
    assert "current: none" in message
    assert f"head: {db.head_revision()}" in message
    assert (info.value.current, info.value.head) == (None, db.head_revision())
    db.dispose()


# The shipped head revision, and the one a newer taskloom would add after it.
HEAD = max(p.name[:4] for p in (_migrate.MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
NEWER = f"{int(HEAD) + 1:04d}"


@pytest.fixture
def newer_migrations(tmp_path: Path) -> Path:
    """A copy of the shipped migrations plus a revision that this taskloom lacks."""
    folder = tmp_path / "migrations"
    shutil.copytree(_migrate.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / f"{NEWER}_extra.py").write_text(
        textwrap.dedent(f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "{NEWER}"
            down_revision = "{HEAD}"
            branch_labels = None
            depends_on = None


            def upgrade():
                op.create_table("extra", sa.Column("id", sa.Integer, primary_key=True))


            def downgrade():
                op.drop_table("extra")
        """)
    )
    return folder


def test_a_schema_behind_head_names_the_command_and_both_revisions(
    database: Database, newer_migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_migrate, "MIGRATIONS_DIR", newer_migrations)  # a newer taskloom
    db = Database(database.url, auto_upgrade=False)

    with pytest.raises(SchemaError) as info:
        db.session()
    message = str(info.value)
    assert f"taskloom db upgrade --url '{db.display_url}'" in message
    assert f"current: {HEAD}, head: {NEWER}" in message

    db.upgrade()
    db.check_schema()
    assert db.current_revision() == NEWER
    db.dispose()


def test_a_schema_newer_than_this_taskloom_says_to_upgrade_taskloom(
    database: Database, newer_migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(_migrate, "MIGRATIONS_DIR", newer_migrations)
        database.upgrade()  # a newer taskloom migrated the database

    with Database(database.url, auto_upgrade=True) as fresh:
        for call in (database.check_schema, database.upgrade, fresh.session):
            with pytest.raises(SchemaError, match="schema is newer than this taskloom") as info:
                call()
            assert "Upgrade taskloom" in str(info.value)
            assert info.value.current == NEWER
