"""``taskloom serve``: the HTTP service and dashboard over saved workflows.

    taskloom serve --workflow FILE [--workflow FILE ...] [--allow MOD] [--db URL]
                   [--host 127.0.0.1] [--port 8000] [--max-body BYTES] [--cors-origin URL ...]
                   [--no-resume] [--no-dashboard] [--jobs-dir DIR] [--log-level info]

Every ``/api`` route needs an API key (``taskloom keys create``). ``TASKLOOM_EXECUTOR=ray``
(and ``TASKLOOM_RAY_*``) runs the agents on a Ray cluster instead of in this process. The
service listens on loopback unless ``--host`` says otherwise; put TLS in front of it (a
reverse proxy) before exposing it, since keys travel in a header.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from knowledge import Database
from workflow._ray import executor_from_env
from workflow._serialize import load
from workflow._serve import ServiceConfig, create_app

__all__ = ["add_serve_commands"]


def add_serve_commands(commands: Any) -> None:
    """Register ``taskloom serve`` on the top-level subparsers object."""
    serve = commands.add_parser("serve", help="run the HTTP service and dashboard")
    serve.add_argument(
        "--workflow",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="a saved workflow to serve (repeatable)",
    )
    serve.add_argument(
        "--allow", action="append", default=[], metavar="MODULE", help="importable module prefix"
    )
    serve.add_argument(
        "--db", metavar="URL", help="knowledge base (default: $TASKLOOM_DATABASE_URL)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    defaults = ServiceConfig()
    serve.add_argument(
        "--max-body", type=int, default=defaults.max_body_bytes, metavar="BYTES", help="(1 MiB)"
    )
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="URL", help="allow this origin"
    )
    serve.add_argument("--no-resume", action="store_true", help="do not resume unfinished runs")
    serve.add_argument("--no-dashboard", action="store_true", help="serve the API only")
    serve.add_argument(
        "--jobs-dir", default=defaults.jobs_dir, metavar="DIR", help="(finetune-runs)"
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: PLC0415 - the service extra, only for this command
    except ImportError:
        print("error: 'taskloom serve' needs: pip install 'taskloom[service]'", file=sys.stderr)
        return 2
    if args.max_body < 1:
        print("error: --max-body must be at least 1 byte", file=sys.stderr)
        return 2
    workflows = [load(path, allow_imports=args.allow) for path in args.workflow]
    config = ServiceConfig(
        max_body_bytes=args.max_body,
        cors_origins=tuple(args.cors_origin),
        resume_on_start=not args.no_resume,
        jobs_dir=args.jobs_dir,
        dashboard=not args.no_dashboard,
    )
    database = Database(args.db)
    try:
        app = create_app(workflows, database=database, config=config, executor=executor_from_env())
    except ValueError as exc:  # two workflows with one name, a bad TASKLOOM_EXECUTOR...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"taskloom: serving {', '.join(w.name for w in workflows)} on {database.display_url}")
    print(f"taskloom: dashboard at http://{args.host}:{args.port}/ui/")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
