"""``taskloom keys``: create, list and revoke the HTTP service's API keys.

    taskloom keys create --name NAME --role ROLE [--db URL] [--json]
                                      make a key; its token is printed once, never again
    taskloom keys list [--db URL] [--json]
                                      every key: id, name, role, created, revoked
    taskloom keys revoke KEY_ID [--db URL]
                                      the key stops working at once

``--db`` defaults to env ``TASKLOOM_DATABASE_URL``, else ``sqlite:///taskloom.db``. Roles,
ascending: viewer < labeler < operator < admin. Only the token's SHA-256 is stored, so a lost
token cannot be recovered: revoke the key and create another.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from knowledge import ROLES, ApiKey, Database, create_api_key, list_api_keys, revoke_api_key

__all__ = ["add_keys_commands"]


def add_keys_commands(commands: Any) -> None:
    """Register ``taskloom keys create|list|revoke`` on the top-level subparsers object."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys of the service")
    actions = keys.add_subparsers(required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print its token once")
    create.add_argument("--name", required=True, help="who or what will use the key")
    create.add_argument(
        "--role", required=True, choices=ROLES, help="what it may do (ascending power)"
    )
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list keys (never their tokens)")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="revoke a key: it stops working at once")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (see 'keys list')")
    revoke.set_defaults(handler=_revoke)

    for parser in (create, listing, revoke):
        parser.add_argument(
            "--db",
            "--url",
            dest="db",
            metavar="URL",
            help="database URL (default: $TASKLOOM_DATABASE_URL or sqlite:///taskloom.db)",
        )
    for parser in (create, listing):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _operator() -> str:
    """Who is running the command, recorded as the creator and in the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _create(args: argparse.Namespace) -> int:
    with Database(args.db) as db, db.transaction() as session:
        try:
            key, token = create_api_key(session, args.name, args.role, created_by=_operator())
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps({"key": key.model_dump(mode="json"), "secret": token}))
    else:
        # The token alone on stdout, so TOKEN=$(taskloom keys create ...) captures it.
        print(f"created key {key.id} '{key.name}' ({key.role})", file=sys.stderr)
        print(token)
    print(
        "This token will not be shown again: store it now. If it is lost, revoke the key "
        f"('taskloom keys revoke {key.id}') and create another.",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with Database(args.db) as db, db.session() as session:
        keys = list_api_keys(session)
    if args.json:
        print(json.dumps({"keys": [key.model_dump(mode="json") for key in keys]}))
        return 0
    if not keys:
        print("no API keys yet; create one with 'taskloom keys create --name NAME --role ROLE'")
        return 0
    rows = [("ID", "NAME", "ROLE", "CREATED BY", "CREATED", "REVOKED")]
    rows += [_row(key) for key in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _row(key: ApiKey) -> tuple[str, str, str, str, str, str]:
    return (
        key.id, key.name, key.role, key.created_by, _when(key.created_at), _when(key.revoked_at),
    )  # fmt: skip


def _revoke(args: argparse.Namespace) -> int:
    with Database(args.db) as db, db.transaction() as session:
        before = time.time()
        key = revoke_api_key(session, args.key_id, actor=_operator())
    revoked_at = key.revoked_at or before  # always set: revoke_api_key returns it revoked
    already = " (it was already revoked)" if revoked_at < before else ""
    print(f"revoked key {key.id} '{key.name}' at {_when(revoked_at)}{already}")
    return 0
