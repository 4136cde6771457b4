"""The analysts' command line: ``python -m market_monitor`` (from ``examples/``).

::

    python -m market_monitor [--db URL] alerts [--since ISO] [--until ISO] [--limit N]
    python -m market_monitor [--db URL] mark ALERT_ID useful|noise [--author NAME]
    python -m market_monitor [--db URL] watch TICKER | unwatch TICKER
    python -m market_monitor [--db URL] deliver --webhook URL   (secret: $MM_WEBHOOK_SECRET)
    python -m market_monitor [--db URL] digest --since ISO --until ISO [--out FILE]

``--db`` defaults to ``$TASKLOOM_DATABASE_URL``. Times are ISO 8601 (``2024-05-01`` or
``2024-05-01T09:30``), UTC unless they carry an offset. The author of a verdict or a
watchlist change defaults to ``$USER``. Errors are one line on stderr with exit status 1
(2 for a malformed command line); ``deliver`` exits 1 too when alerts stay undelivered.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; never try

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from knowledge import Database, TaskloomError
from market_monitor.entities import set_watchlist, watchlist
from market_monitor.outcomes import (
    VERDICTS,
    AlertNotFoundError,
    AlertView,
    list_alerts,
    mark_alert,
)
from market_monitor.tables import Alert
from market_monitor.webhook import deliver

SECRET_ENV = "MM_WEBHOOK_SECRET"
URL_ENV = "TASKLOOM_DATABASE_URL"
Handler = Callable[[Database, argparse.Namespace], int]


class CommandError(Exception):
    """A command could not do what was asked; the message says why and what to do."""


def iso_time(text: str) -> float:
    """``--since``/``--until``: ISO 8601 as epoch seconds (UTC unless an offset is given)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO 8601 time (e.g. 2024-05-01 or 2024-05-01T09:30)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")


def table(views: Sequence[AlertView]) -> str:
    """Alerts as an aligned text table, one row each."""
    header = ["id", "time UTC", "entity", "direction", "mentions", "surge"]
    header += ["decided by", "status", "verdict"]
    rows = [header] + [
        [
            str(v.id),
            _utc(v.published_at),
            v.entity,
            v.direction,
            str(v.mentions),
            f"{v.surge:.1f}x",
            v.decided_by,
            v.status,
            v.verdict or "-",
        ]
        for v in views
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _require_tables(database: Database) -> None:
    if not inspect(database.engine).has_table(Alert.__tablename__):
        raise CommandError(
            f"{database.display_url} has no market-monitor tables: point --db at the "
            "knowledge base examples/run_market_monitor.py wrote."
        )


def cmd_alerts(database: Database, args: argparse.Namespace) -> int:
    """Print the alerts of the period."""
    _require_tables(database)
    views = list_alerts(database, since=args.since, until=args.until, limit=args.limit)
    print(table(views) if views else "No alerts in that period.")
    return 0


def cmd_mark(database: Database, args: argparse.Namespace) -> int:
    """Record a verdict on an alert."""
    _require_tables(database)
    try:
        feedback = mark_alert(database, args.alert_id, args.verdict, author=args.author)
    except AlertNotFoundError as exc:
        raise CommandError(f"{exc} List them with: python -m market_monitor alerts") from exc
    print(
        f"Recorded '{args.verdict}' by {feedback.author} on alert {args.alert_id}: label "
        f"'{VERDICTS[args.verdict]}' on decision {feedback.prediction_id} "
        f"(feedback {feedback.id}); the next alert_policy round trains on it."
    )
    return 0


def cmd_watch(database: Database, args: argparse.Namespace) -> int:
    """Put a ticker on the watchlist, or take it off."""
    ticker = args.ticker.upper()
    set_watchlist(database, ticker, on=args.on, author=args.author)
    tickers = sorted(watchlist(database))
    print(f"{ticker} is {'on' if args.on else 'off'} the watchlist. Watched: ", end="")
    print(", ".join(tickers) or "none")
    return 0


def cmd_deliver(database: Database, args: argparse.Namespace) -> int:
    """Send the pending alerts to the webhook."""
    _require_tables(database)
    result = deliver(
        database,
        args.webhook,
        secret=os.environ.get(SECRET_ENV) or None,
        max_attempts=args.max_attempts,
        limit=args.limit,
    )
    print(f"delivered {result.delivered}, failed {result.failed}, pending {result.pending}")
    if result.failed or result.pending:
        raise CommandError(
            f"{result.failed + result.pending} alerts were not delivered: their last_error "
            "says why; run deliver again once the webhook answers."
        )
    return 0


def cmd_digest(database: Database, args: argparse.Namespace) -> int:
    """Write the period's Markdown digest."""
    from market_monitor.digest import write_digest  # noqa: PLC0415 - written separately

    _require_tables(database)
    markdown = write_digest(database, args.since, args.until)
    if args.out is None:
        print(markdown)
    else:
        args.out.write_text(markdown, "utf-8")
        print(f"Wrote {args.out}")
    return 0


def _add_author(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--author",
        default=os.environ.get("USER") or "analyst",
        help="who decided it (default: $USER)",
    )


def _reading_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = commands.add_parser("alerts", help="list the alerts of a period")
    alerts.add_argument("--since", type=iso_time, metavar="ISO", help="published at or after")
    alerts.add_argument("--until", type=iso_time, metavar="ISO", help="published before")
    alerts.add_argument("--limit", type=int, default=100, metavar="N", help="at most N")
    alerts.set_defaults(handler=cmd_alerts)
    digest = commands.add_parser("digest", help="write the Markdown digest of a period")
    digest.add_argument("--since", type=iso_time, required=True, metavar="ISO")
    digest.add_argument("--until", type=iso_time, required=True, metavar="ISO")
    digest.add_argument("--out", type=Path, metavar="FILE", help="default: stdout")
    digest.set_defaults(handler=cmd_digest)


def _writing_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mark = commands.add_parser("mark", help="record a verdict on an alert")
    mark.add_argument("alert_id", type=int, metavar="ALERT_ID")
    mark.add_argument("verdict", choices=list(VERDICTS))
    _add_author(mark)
    mark.set_defaults(handler=cmd_mark)
    for name, on, what in (
        ("watch", True, "put an entity on the watchlist (it alerts whenever its cooldown allows)"),
        ("unwatch", False, "take an entity off the watchlist"),
    ):
        watch = commands.add_parser(name, help=what)
        watch.add_argument("ticker", metavar="TICKER")
        _add_author(watch)
        watch.set_defaults(handler=cmd_watch, on=on)
    send = commands.add_parser(
        "deliver", help=f"POST the pending alerts to a webhook (signed with ${SECRET_ENV})"
    )
    send.add_argument("--webhook", required=True, metavar="URL", help="http(s) URL")
    send.add_argument("--max-attempts", type=int, default=5, metavar="N")
    send.add_argument("--limit", type=int, default=500, metavar="N")
    send.set_defaults(handler=cmd_deliver)


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    cli = argparse.ArgumentParser(
        prog="python -m market_monitor", description="The market monitor's alerts and digest."
    )
    cli.add_argument("--db", metavar="URL", help=f"knowledge base (default: ${URL_ENV})")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _reading_commands(commands)
    _writing_commands(commands)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    cli = parser()
    args = cli.parse_args(argv)
    url = args.db or os.environ.get(URL_ENV)
    if not url:
        cli.error(f"no knowledge base: pass --db URL or set {URL_ENV}")
    handler: Handler = args.handler
    try:
        database = Database(url)
    except TaskloomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return handler(database, args)
    except (CommandError, TaskloomError, ValueError, SQLAlchemyError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        database.dispose()


if __name__ == "__main__":
    sys.exit(main())
