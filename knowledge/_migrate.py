"""Alembic driven from code: the migrations ship in the package, no ``alembic.ini`` needed.

The scripts live in ``knowledge/migrations`` (``env.py`` and ``versions/``), installed with
the package as data. Every function here works on a connection the caller opened and began a
transaction on, so ``Database`` decides how the schema change is locked and committed.

To write a new migration, change ``knowledge/_models.py``, then let Alembic draft it against
a database at head and edit the draft by hand::

    from alembic import command
    from knowledge._migrate import alembic_config
    command.revision(alembic_config(url="sqlite:///draft.db"), "what changed", autogenerate=True)

A test compares the models with a freshly migrated database on every backend, so a model
change without its migration fails the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection

# Alembic is imported inside the functions: it loads every dialect's DDL support (~0.3 s),
# which ``import knowledge`` should not pay for when no schema is touched.

__all__ = [
    "MIGRATIONS_DIR",
    "RevisionError",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "known_revisions",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Full-text objects the migrations create with raw DDL; the models do not describe them, so
# comparing models and database must skip them (FTS5 adds shadow tables named after its own).
_FULL_TEXT_TABLE = "chunks_fts"
_FULL_TEXT_INDEXES = frozenset({"ix_chunks_tsv"})


class RevisionError(Exception):
    """Alembic refused a revision: unknown, or not reachable from the current one."""


def alembic_config(
    connection: Connection | None = None,
    *,
    url: str | None = None,
    script_location: Path | None = None,
) -> Config:
    """Build the Alembic configuration in code.

    Args:
        connection: The connection ``env.py`` migrates (already in a transaction).
        url: A database URL, used only when no connection is given (drafting revisions).
        script_location: The migrations folder (default: the one shipped in the package).

    Returns:
        A ``Config`` for ``alembic.command`` functions.
    """
    from alembic.config import Config  # noqa: PLC0415 - see the imports above

    config = Config()
    location = str(script_location or MIGRATIONS_DIR)
    # ConfigParser interpolates '%', which can appear in paths and URLs.
    config.set_main_option("script_location", location.replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _script(script_location: Path | None = None) -> ScriptDirectory:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the imports above

    return ScriptDirectory.from_config(alembic_config(script_location=script_location))


def head_revision(script_location: Path | None = None) -> str:
    """Return the newest revision this taskloom knows."""
    head = _script(script_location).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError(f"No migrations found in {script_location or MIGRATIONS_DIR}")
    return head


def known_revisions(script_location: Path | None = None) -> list[str]:
    """Return every revision this taskloom knows, oldest first."""
    revisions = [rev.revision for rev in _script(script_location).walk_revisions()]
    return revisions[::-1]


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at (None: no taskloom schema yet)."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - see the imports

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(
    connection: Connection, revision: str = "head", *, script_location: Path | None = None
) -> None:
    """Run the migrations up to ``revision`` on ``connection``; the caller commits.

    Raises:
        RevisionError: ``revision`` is unknown or below the current one.
    """
    _run("upgrade", alembic_config(connection, script_location=script_location), revision)


def downgrade(
    connection: Connection, revision: str, *, script_location: Path | None = None
) -> None:
    """Run the migrations down to ``revision`` (``base``: nothing left); the caller commits.

    Raises:
        RevisionError: ``revision`` is unknown or above the current one.
    """
    _run("downgrade", alembic_config(connection, script_location=script_location), revision)


def _run(name: str, config: Config, revision: str) -> None:
    from alembic import command  # noqa: PLC0415 - see the imports above
    from alembic.util import CommandError  # noqa: PLC0415

    try:
        getattr(command, name)(config, revision)
    except CommandError as exc:
        raise RevisionError(str(exc)) from exc


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Tell Alembic's comparison to skip the full-text objects the models do not describe.

    Args:
        name: The reflected object's name.
        type_: What it is (``table``, ``index``, ``column``...).
        parent_names: Names of the schema and table it belongs to (unused).

    Returns:
        False for the FTS5 table and its shadow tables and the tsvector index.
    """
    del parent_names
    if name is None:
        return True
    if type_ == "table":
        return name != _FULL_TEXT_TABLE and not name.startswith(f"{_FULL_TEXT_TABLE}_")
    if type_ == "index":
        return name not in _FULL_TEXT_INDEXES
    return True
