"""The ``taskloom`` command line.

    taskloom agents                          list registered agents (plugins included)
    taskloom validate FILE [--allow MOD]     compile a saved workflow, report every problem
    taskloom mermaid FILE [--allow MOD]      print the workflow graph as Mermaid text
    taskloom run FILE --task JSON [--allow MOD] [--json]
                                             run one task and print the step trace
    taskloom db upgrade|downgrade|current|prune
                                             migrate the knowledge base, prune checkpoints
    taskloom kb ingest PATH... | search QUERY
                                             add documents to the knowledge base, search them
    taskloom keys create --name NAME --role ROLE | list | revoke KEY_ID
                                             manage the HTTP service's API keys
    taskloom serve --workflow FILE [--db URL] [--host H] [--port P] ...
                                             run the HTTP service and dashboard
    taskloom finetune train --data FILE --out DIR ... | eval --model DIR --data FILE ...
                                             fine-tune a classifier on labelled files, score it

Exit status: 0 on success, 1 when the workflow or the run failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents import default_registry
from knowledge import TaskloomError
from workflow._cli_db import add_db_commands
from workflow._cli_demo import add_demo_commands
from workflow._cli_kb import add_kb_commands
from workflow._cli_keys import add_keys_commands
from workflow._cli_serve import add_serve_commands
from workflow._compiled import CompiledWorkflow
from workflow._engine import Engine, RunResult
from workflow._ray import executor_from_env
from workflow._serialize import load

__all__ = ["COMMAND_GROUPS", "main"]

# Modules adding a group of subcommands (``taskloom db ...``): each is a function taking the
# subparsers object and registering parsers whose ``handler`` returns an exit status.
COMMAND_GROUPS: list[Callable[[Any], None]] = [
    add_db_commands,
    add_kb_commands,
    add_keys_commands,
    add_serve_commands,
    add_demo_commands,
]


def _add_finetune_commands(commands: Any) -> None:
    """``taskloom finetune``; imported when the parser is built, so ``import workflow``
    does not load the finetune package."""
    from finetune._cli import add_finetune_commands  # noqa: PLC0415 - lazy, see above

    add_finetune_commands(commands)


COMMAND_GROUPS.append(_add_finetune_commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskloom`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub: never download at run time
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except TaskloomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskloom", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    agents = commands.add_parser("agents", help="list registered agents")
    agents.set_defaults(handler=_agents)
    for name, handler, text in (
        ("validate", _validate, "compile a saved workflow and report problems"),
        ("mermaid", _mermaid, "print the workflow graph as Mermaid text"),
        ("run", _run, "run one task through a saved workflow"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("file", type=Path, help="workflow file (.yaml, .yml or .json)")
        sub.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="MODULE",
            help="module prefix the file may import from (repeatable)",
        )
        sub.set_defaults(handler=handler)
        if name == "run":
            sub.add_argument(
                "--task", required=True, help="the task as JSON, or @PATH to a JSON file"
            )
            sub.add_argument("--json", action="store_true", help="print the result as JSON")
    for add_commands in COMMAND_GROUPS:
        add_commands(commands)
    return parser


def _load(args: argparse.Namespace) -> CompiledWorkflow:
    return load(args.file, allow_imports=args.allow)


def _agents(args: argparse.Namespace) -> int:
    for name in default_registry.names():
        cls = default_registry.get(name)
        print(f"{name:24} {cls.role.value:11} {default_registry.origin(name)}")
    for name, error in default_registry.broken.items():
        print(f"{name:24} BROKEN      {error}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    wf = _load(args)
    print(f"ok: workflow '{wf.name}' with {len(wf.steps)} steps, entry '{wf.entry}'")
    return 0


def _mermaid(args: argparse.Namespace) -> int:
    print(_load(args).to_mermaid())
    return 0


def _run(args: argparse.Namespace) -> int:
    wf = _load(args)
    text = Path(args.task[1:]).read_text() if args.task.startswith("@") else args.task
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"error: --task is not valid JSON: {exc}", file=sys.stderr)
        return 2
    try:
        engine = Engine(executor=executor_from_env())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = engine.run_sync(wf, payload)
    report = _report(engine, result)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for step in report["steps"]:
            print(
                f"{step['step']:16} {step['status']:6} -> {', '.join(step['next']) or '(end)'}"
                f"  [{step['reason']}]"
            )
        print(f"run {result.run_id}: {result.status.value}")
        if result.error is not None:
            print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.ok else 1


def _report(engine: Engine, result: RunResult) -> dict[str, Any]:
    steps = [
        {
            "step": r.step,
            "agent": r.agent,
            "status": r.status.value,
            "attempts": r.attempts,
            "next": list(r.decision.targets),
            "reason": r.decision.reason,
            "output": r.output.model_dump(mode="json") if r.output is not None else None,
            "duration_ms": round(r.duration_s * 1000, 3),
        }
        for r in engine.store.steps(result.run_id)
    ]
    output = result.output.model_dump(mode="json") if result.output is not None else None
    return {
        "run_id": result.run_id,
        "status": result.status.value,
        "output": output,
        "error": None if result.error is None else str(result.error),
        "steps": steps,
    }
