"""``taskloom db``: migrate the knowledge base's schema and prune old checkpoints.

    taskloom db upgrade [--url URL] [--revision REV]   migrate up (default: to head)
    taskloom db downgrade REV [--url URL]              migrate down (``base``: drop everything)
    taskloom db current [--url URL]                    print the schema revision and the head
    taskloom db prune [--older-than-days D] [--keep-last N] [--url URL]
                                                       delete old checkpoints of finished runs

``--url`` defaults to env ``TASKLOOM_DATABASE_URL``, else ``sqlite:///taskloom.db``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from knowledge import Database, SchemaError, prune

__all__ = ["add_db_commands"]

_SECONDS_PER_DAY = 86_400.0


def add_db_commands(commands: Any) -> None:
    """Register ``taskloom db ...`` on the top-level subparsers object."""
    db = commands.add_parser("db", help="migrate the knowledge base, prune checkpoints")
    actions = db.add_subparsers(required=True, metavar="ACTION")

    upgrade = actions.add_parser("upgrade", help="migrate the schema up (default: to head)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_migrate, direction="up")

    downgrade = actions.add_parser("downgrade", help="migrate the schema down")
    downgrade.add_argument("revision", help="target revision ('base' drops every table)")
    downgrade.set_defaults(handler=_migrate, direction="down")

    current = actions.add_parser("current", help="print the schema revision and the head")
    current.set_defaults(handler=_current)

    prune_parser = actions.add_parser("prune", help="delete old checkpoints of finished runs")
    prune_parser.add_argument(
        "--older-than-days",
        type=float,
        metavar="D",
        help="prune runs finished more than D days ago",
    )
    prune_parser.add_argument(
        "--keep-last",
        type=int,
        metavar="N",
        help="keep the newest N finished runs whole",
    )
    prune_parser.set_defaults(handler=_prune)

    for parser in (upgrade, downgrade, current, prune_parser):
        parser.add_argument(
            "--url", help="database URL (default: $TASKLOOM_DATABASE_URL or sqlite:///taskloom.db)"
        )


def _open(args: argparse.Namespace, *, auto_upgrade: bool | None = False) -> Database:
    return Database(args.url, auto_upgrade=auto_upgrade)


def _migrate(args: argparse.Namespace) -> int:
    """``db upgrade`` and ``db downgrade``: move the schema and say from where to where."""
    with _open(args) as db:
        before = db.current_revision()
        (db.upgrade if args.direction == "up" else db.downgrade)(args.revision)
        after = db.current_revision()
        print(f"{db.display_url}: schema {before or 'base'} -> {after or 'base'}")
    return 0


def _current(args: argparse.Namespace) -> int:
    with _open(args) as db:
        current, head = db.current_revision(), db.head_revision()
        print(f"{db.display_url}: current {current or 'base'}, head {head}")
        try:
            db.check_schema()
        except SchemaError as exc:
            print(exc)
        else:
            print("up to date")
    return 0


def _prune(args: argparse.Namespace) -> int:
    if args.older_than_days is None and args.keep_last is None:
        print("error: give --older-than-days D and/or --keep-last N", file=sys.stderr)
        return 2
    older_than_s = None if args.older_than_days is None else args.older_than_days * _SECONDS_PER_DAY
    # Pruning uses the schema like any store call: SQLite is migrated, PostgreSQL checked.
    with _open(args, auto_upgrade=None) as db, db.transaction() as session:
        try:
            report = prune(session, older_than_s=older_than_s, keep_last=args.keep_last)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(
        f"pruned {report.steps_deleted} checkpoints of {report.runs_pruned} runs; "
        f"kept {report.runs_kept_for_feedback} runs whole because feedback points at them"
    )
    return 0
