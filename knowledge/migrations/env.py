"""Alembic's environment for taskloom: migrate the connection ``Database`` hands over.

``knowledge._migrate`` puts an open connection, already inside a transaction, in
``config.attributes["connection"]``; this script runs the migrations on it and leaves the
commit to the caller, which holds the lock that keeps concurrent upgraders apart. Without a
connection (drafting a revision with ``alembic.command.revision``) it connects to the URL in
the configuration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from knowledge._migrate import include_name
from knowledge._models import Base


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=include_name,
        # SQLite cannot ALTER most things: future migrations use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("taskloom migrations run online only; pass a connection or a URL")
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("No connection and no sqlalchemy.url in the Alembic config")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_run()
