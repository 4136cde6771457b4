"""Database fixtures: every store test runs on SQLite and, when configured, on PostgreSQL.

- ``database``: a ``Database`` at the schema's head with no rows, one per test, parametrized
  over ``sqlite`` (a new file in ``tmp_path``) and ``postgres`` (a throwaway database
  ``taskloom_t_<hex>`` on the server in env ``TASKLOOM_TEST_POSTGRES_URL``; marked
  ``postgres``).
- ``database_url``: the URL of a new, empty database (no schema), same parametrization.

On PostgreSQL, ``CREATE DATABASE`` costs 0.1-1 s, so ``database`` reuses one migrated
database: after each test the fixture closes every connection to it and deletes every row
(sequences restarted, so ids start at 1 again), which takes a few milliseconds. A test that
leaves the schema changed (not at head, or with other tables) gets its database dropped
instead, and the next test a new one. Every database made here is dropped ``WITH (FORCE)``
by the end of the session.

When the server is not configured or not reachable the postgres variants are skipped with
the reason, except under ``CI=true`` (set by ``.ci/run``), where they fail: CI must not pass
without testing PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from sqlalchemy import URL, Engine, create_engine, inspect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from knowledge import Database, _migrate
from knowledge._models import Base

POSTGRES_URL_ENV = "TASKLOOM_TEST_POSTGRES_URL"
DB_PREFIX = "taskloom_t_"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Children before parents, so deleting rows never trips a foreign key.
_DELETE_ORDER = [table.name for table in reversed(Base.metadata.sorted_tables)]
_HEAD_TABLES = {*Base.metadata.tables, "alembic_version"}


class PostgresServer:
    """Creates, resets and drops throwaway databases on the test server."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._admin: Engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._clean: str | None = None  # a migrated database with no rows, ready for reuse

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with self._admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def create(self) -> str:
        """Create an empty database; return its URL."""
        name = f"{DB_PREFIX}{uuid.uuid4().hex[:16]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop a database made here, closing any connection a test left open."""
        self.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def acquire(self) -> str:
        """Return the URL of a migrated database with no rows."""
        url, self._clean = self._clean, None
        if url is None:
            url = self.create()
            with Database(url) as db:
                db.upgrade()
        return url

    def release(self, url: str) -> None:
        """Empty the database for the next test, or drop it if the test changed its schema."""
        try:
            self._reset(url)
        except Exception:
            self.drop(url)
            raise
        if self._clean is not None:  # pragma: no cover - one test holds one database
            self.drop(self._clean)
        self._clean = url

    def close(self) -> None:
        """Drop the database kept for reuse and close the admin engine."""
        if self._clean is not None:
            self.drop(self._clean)
        self._admin.dispose()

    def _reset(self, url: str) -> None:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                # Connections the test forgot would hold locks that block the deletes.
                connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if set(inspect(connection).get_table_names()) != _HEAD_TABLES:
                    raise _SchemaChangedError(url)
                revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                if revision.scalar() != _migrate.head_revision():
                    raise _SchemaChangedError(url)
                connection.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                for table in _DELETE_ORDER:
                    connection.exec_driver_sql(f'DELETE FROM "{table}"')
                sequences = connection.exec_driver_sql(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                ).scalars()
                for sequence in list(sequences):
                    connection.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')
        finally:
            engine.dispose()


class _SchemaChangedError(Exception):
    """The test left the schema changed: its database is dropped, not reused."""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; skips (fails under CI=true) when it cannot be used."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if not raw:
        _unavailable(
            f"{POSTGRES_URL_ENV} is not set; set it to a server URL such as "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test to run the PostgreSQL tests"
        )
    url = make_url(str(raw))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    server = PostgresServer(url)
    try:
        server.execute("SELECT 1")
    except DBAPIError as exc:
        server.close()
        _unavailable(
            f"the PostgreSQL server in {POSTGRES_URL_ENV} "
            f"({url.render_as_string(hide_password=True)}) is unreachable "
            f"({' '.join(str(exc.orig).split())}). Start it (pg_ctlcluster "
            "--skip-systemctl-redirect $(ls /etc/postgresql) main start) or fix the URL."
        )
    yield server
    server.close()


@contextmanager
def _migrated_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'knowledge.db'}"
        with Database(url) as db:
            db.upgrade()
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.acquire()
    try:
        yield url
    finally:
        # A changed schema is dropped there; the next test gets a new database.
        with suppress(_SchemaChangedError):
            server.release(url)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A ``Database`` at the schema's head with no rows, on each backend."""
    with _migrated_url(request) as url, Database(url) as db:
        yield db


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database (no schema) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{request.getfixturevalue('tmp_path') / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create()
    try:
        yield url
    finally:
        server.drop(url)
