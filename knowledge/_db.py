"""The database handle: one engine, its sessions and transactions, and the schema's migrations.

``Database`` opens the knowledge base at a URL (default: env ``TASKLOOM_DATABASE_URL``, else
``sqlite:///taskloom.db``), and is the one place that knows the backend's quirks:

- **SQLite** (embedded default): each connection runs WAL (readers never block the writer),
  ``synchronous=NORMAL`` (a commit survives the process being killed; the last commits may be
  lost on power failure, never corrupted), ``foreign_keys=ON`` and a 30 s busy timeout. Every
  transaction starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe: the
  driver's own BEGIN is switched off and SQLAlchemy emits one), so a transaction takes the
  write lock when it starts and concurrent writers, threads or processes, queue on the busy
  timeout instead of failing with "database is locked" when a read lock would have to be
  upgraded. The file is created, and migrated to head, on first use.
- **PostgreSQL**: the same code through psycopg 3 (``postgresql://`` URLs get the psycopg
  driver). The schema is never changed implicitly: the first session checks it and raises
  ``SchemaError`` naming the command to run when it is not at head.

Schema changes (``upgrade``/``downgrade``) run in one transaction holding the backend's write
lock (SQLite) or an advisory lock (PostgreSQL), so processes starting together on a fresh
database migrate it once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from knowledge import _migrate
from knowledge._errors import DatabaseOpenError, SchemaError
from knowledge._redact import DEFAULT_REDACTOR, Redactor

__all__ = ["BUSY_TIMEOUT_MS", "DEFAULT_URL", "READ_ONLY", "URL_ENV", "Database"]

URL_ENV = "TASKLOOM_DATABASE_URL"
DEFAULT_URL = "sqlite:///taskloom.db"
BUSY_TIMEOUT_MS = 30_000
# The execution option marking a connection's work as reads only (see Database.session).
READ_ONLY = "taskloom_read_only"
# Any fixed 64-bit number: the advisory lock that serialises schema changes on PostgreSQL.
_PG_SCHEMA_LOCK = 0x7A5C_100D_5C4E_3A01
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")


class Database:
    """The knowledge base's database: engine, sessions, transactions, migrations.

    Cheap to create: nothing connects until first used. ``session()`` and ``transaction()``
    make the schema ready first, once: upgraded to head when ``auto_upgrade`` is on, checked
    otherwise. Usable as a context manager that disposes the engine on exit.

    Args:
        url: SQLAlchemy URL (default: env ``TASKLOOM_DATABASE_URL``, else
            ``sqlite:///taskloom.db``). ``postgresql://`` URLs use psycopg 3.
        redactor: Cleans user text before store functions write it (default: the package's
            default redactor); sessions carry it in ``session.info["redactor"]``.
        auto_upgrade: Migrate the schema to head on first use (default: on for SQLite,
            off otherwise: a shared server is upgraded on purpose, with ``taskloom db upgrade``).

    Attributes:
        url: The URL in use (driver filled in).
        engine: The SQLAlchemy engine.
        dialect: ``"sqlite"`` or ``"postgresql"``.
        redactor: The redactor sessions carry.
        auto_upgrade: Whether first use migrates the schema.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redactor: Redactor | None = None,
        auto_upgrade: bool | None = None,
    ) -> None:
        parsed = _parse_url(url if url is not None else os.environ.get(URL_ENV) or DEFAULT_URL)
        self.url: str = parsed.render_as_string(hide_password=False)
        self.dialect: str = parsed.get_backend_name()
        self.engine: Engine = (
            _sqlite_engine(parsed) if self.dialect == "sqlite" else _pg_engine(parsed)
        )
        self.redactor: Redactor = redactor if redactor is not None else DEFAULT_REDACTOR
        self.auto_upgrade: bool = self.dialect == "sqlite" if auto_upgrade is None else auto_upgrade
        self._ready = threading.Event()
        self._ready_lock = threading.Lock()

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    # ------------------------------------------------------------------ sessions

    def session(self, *, read_only: bool = False) -> Session:
        """Return a new session; the caller commits (or use ``transaction()``).

        Args:
            read_only: The session only reads. On SQLite its transactions then start deferred
                instead of taking the write lock, so it neither waits for writers nor makes
                them wait (WAL readers see the last commit). A write in such a session fails
                with "database is locked" when another connection writes: never write in one.

        Raises:
            SchemaError: The schema is not at head and ``auto_upgrade`` is off, or it is
                newer than this taskloom.
            DatabaseOpenError: The database cannot be opened.
        """
        self._ensure_ready()
        bind = self.engine.execution_options(**{READ_ONLY: True}) if read_only else self.engine
        return Session(bind, info={"redactor": self.redactor})

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session in a transaction: committed on success, rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (the object stays usable; it reconnects)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def head_revision(self) -> str:
        """Return the newest schema revision this taskloom knows."""
        return _migrate.head_revision()

    def current_revision(self) -> str | None:
        """Return the database's schema revision (None: no taskloom schema yet)."""
        with self._connect() as connection:
            return _migrate.current_revision(connection)

    def check_schema(self) -> None:
        """Raise ``SchemaError`` unless the schema is exactly at head.

        Raises:
            SchemaError: The schema is missing or behind (the message names the
                ``taskloom db upgrade`` command to run), or newer than this taskloom.
        """
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise self._schema_error(current, head)

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema up to ``revision`` (default: head), in one locked transaction.

        Raises:
            SchemaError: The schema is newer than this taskloom, or ``revision`` is unknown
                or not above the current one.
        """
        with self._schema_change() as connection:
            current = _migrate.current_revision(connection)
            if current is not None and current not in _migrate.known_revisions():
                raise self._schema_error(current, self.head_revision())
            _migrate.upgrade(connection, revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the schema down to ``revision`` (``base``: drop everything, data included).

        Raises:
            SchemaError: ``revision`` is unknown or not below the current one.
        """
        with self._schema_change() as connection:
            _migrate.downgrade(connection, revision)
        self._ready.clear()

    # ------------------------------------------------------------------ internals

    def _ensure_ready(self) -> None:
        if self._ready.is_set():
            return
        with self._ready_lock:
            if self._ready.is_set():  # another thread made it ready while this one waited
                return
            if self.auto_upgrade and self.current_revision() != self.head_revision():
                self.upgrade()  # re-reads the revision under the lock: one process migrates
            else:
                self.check_schema()
            self._ready.set()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """Yield a connection; turn "cannot open" failures into ``DatabaseOpenError``."""
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            raise DatabaseOpenError(self._open_failure_message(exc)) from exc
        with connection:
            try:
                yield connection
            except DBAPIError as exc:
                # A damaged SQLite file may open and fail only when a page is read.
                if self.dialect == "sqlite" and _is_corrupt(exc):
                    raise DatabaseOpenError(self._open_failure_message(exc)) from exc
                raise

    @contextmanager
    def _schema_change(self) -> Iterator[Connection]:
        with self._connect() as connection, connection.begin():
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK}
                )
            try:
                yield connection
            except _migrate.RevisionError as exc:
                raise SchemaError(
                    f"Cannot migrate {self.display_url}: {str(exc).rstrip('.')}. Known revisions: "
                    f"base, {', '.join(_migrate.known_revisions())} (head)."
                ) from exc

    def _schema_error(self, current: str | None, head: str) -> SchemaError:
        command = f"taskloom db upgrade --url '{self.display_url}'"
        if current is not None and current not in _migrate.known_revisions():
            message = (
                f"The database at {self.display_url} has schema revision '{current}', which "
                f"this taskloom does not know (its newest is '{head}'): the schema is newer than "
                "this taskloom. Upgrade taskloom (pip install -U taskloom) to use this database, "
                "or point it at another database."
            )
        else:
            state = "has no taskloom schema" if current is None else f"is at '{current}'"
            message = (
                f"The database schema at {self.display_url} {state}; this taskloom needs "
                f"revision '{head}' (current: {current or 'none'}, head: {head}). "
                f"Run the migrations: {command}"
            )
        return SchemaError(message, current=current, head=head)

    def _open_failure_message(self, exc: DBAPIError) -> str:
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        if self.dialect == "sqlite" and _is_corrupt(exc):
            return (
                f"Cannot open the SQLite database {self.engine.url.database} ({reason}). The file "
                "is not a SQLite database or is corrupt. Restore it from a backup, or point "
                f"{URL_ENV} (or --url) at another file."
            )
        if self.dialect == "sqlite":
            return (
                f"Cannot open the SQLite database {self.engine.url.database} ({reason}). Check "
                "that the path is right and that its folder is writable."
            )
        return (
            f"Cannot connect to the database at {self.display_url} ({reason}). Check that the "
            "server is running and that the URL's user, host, port and database are right."
        )


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseOpenError(
            f"'{url}' is not a database URL. Use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE."
        ) from exc
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed
    raise DatabaseOpenError(
        f"Unsupported database URL scheme '{parsed.drivername}' in "
        f"{parsed.render_as_string(hide_password=True)}. Supported: sqlite (sqlite:///PATH) "
        "and postgresql (postgresql://USER@HOST:PORT/DATABASE, driver psycopg 3)."
    )


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {}
    if memory:
        # One shared connection, or each pooled connection would see its own empty database.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(url, **options)
    if not memory:
        event.listen(engine, "do_connect", _make_folder)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _make_folder(dialect: Any, connection_record: Any, cargs: Any, cparams: Any) -> None:
    """Create the database file's folder before SQLite opens it (the file it creates)."""
    del dialect, connection_record, cparams
    if str(cargs[0]).startswith("file:"):
        return  # a SQLite URI (uri=true): SQLite resolves it, mode=ro may not want a folder
    folder = Path(str(cargs[0])).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseOpenError(
            f"Cannot create the folder {folder} for the SQLite database ({exc.strerror}). "
            f"Point {URL_ENV} (or --url) at a writable place."
        ) from exc


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    del connection_record
    # The driver's own BEGIN is deferred; switch it off so _on_sqlite_begin emits ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # The busy timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # Take the write lock up front: a deferred transaction that reads and then writes cannot
    # wait for the lock (SQLite fails it at once to avoid a deadlock). Read-only work needs
    # no lock, and taking it would queue every reader behind every writer.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _pg_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def _is_corrupt(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "not a database" in message or "malformed" in message
