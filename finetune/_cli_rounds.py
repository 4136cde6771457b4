"""``taskloom finetune run|jobs|watch``: feedback-loop rounds from the command line.

    taskloom finetune run --agent NAME [--db URL] [--out DIR] [training and gate options]
    taskloom finetune run --resume JOB [--db URL]
    taskloom finetune jobs --agent NAME [--db URL] [--json]
    taskloom finetune watch --agent NAME [--db URL] [--min-labels N] [--interval S] [--once]

``run`` records one round as a job (see ``finetune._rounds``); ``watch`` starts one whenever
``--min-labels`` new labels have arrived since the agent's last job, checking every
``--interval`` seconds. ``--db`` defaults to ``TASKLOOM_DATABASE_URL`` (else the local SQLite file).
Exit status: 0 when the round ran (promoted or rejected), 1 when it failed or diverged, 2 on
bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from finetune._cli import Handler, _bad_input_exits_2
from finetune._config import TIERS, TrainConfig
from finetune._gate import GateConfig
from finetune._rounds import JobResult, resume_round, run_round, watch
from knowledge import Database, KnowledgeError, list_jobs

__all__ = ["add_round_commands"]

TRAIN_OPTIONS = (
    ("epochs", int),
    ("batch_size", int),
    ("lr", float),
    ("head_lr", float),
    ("max_length", int),
    ("seed", int),
)


def add_round_commands(sub: Any) -> None:
    """Register ``run``, ``jobs`` and ``watch`` on the ``finetune`` subparsers."""
    once = sub.add_parser("run", help="run one recorded fine-tuning round of an agent")
    _round_options(once)
    once.add_argument("--resume", type=int, metavar="JOB", help="resume a failed job instead")
    once.set_defaults(handler=_handled(_run))

    jobs = sub.add_parser("jobs", help="list an agent's fine-tuning jobs, newest first")
    jobs.add_argument("--agent", required=True, help="the agent")
    jobs.add_argument("--db", default=None, metavar="URL", help="knowledge base URL")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")
    jobs.set_defaults(handler=_handled(_jobs))

    loop = sub.add_parser("watch", help="run a round whenever enough new labels arrived")
    _round_options(loop)
    loop.add_argument("--min-labels", type=int, default=100, metavar="N", help="(100)")
    loop.add_argument("--interval", type=float, default=3600.0, metavar="S", help="(3600)")
    loop.add_argument("--once", action="store_true", help="check once, then exit")
    loop.set_defaults(handler=_handled(_watch))


def _round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", help="the agent to fine-tune (required unless --resume)")
    parser.add_argument("--db", default=None, metavar="URL", help="knowledge base URL")
    parser.add_argument("--out", default="finetune-runs", metavar="DIR", help="job folders")
    parser.add_argument("--tier", choices=TIERS, default="full", help="(full)")
    parser.add_argument("--base-model", default="", metavar="DIR", help="first model's base")
    defaults = TrainConfig(out_dir="-")
    for option, kind in TRAIN_OPTIONS:
        default = getattr(defaults, option)
        parser.add_argument(
            f"--{option.replace('_', '-')}", type=kind, default=default, help=f"({default})"
        )
    gate = GateConfig()
    parser.add_argument("--metric", default=gate.metric, help=f"gate metric ({gate.metric})")
    parser.add_argument("--margin", type=float, default=gate.margin_points, help="points")
    parser.add_argument("--floor", type=float, default=gate.floor, help="fraction (0)")
    parser.add_argument("--guard", action="append", default=[], metavar="LABEL")
    parser.add_argument("--tolerance", type=float, default=gate.tolerance_points, help="points")
    parser.add_argument("--min-per-class", type=int, default=5, metavar="N", help="(5)")


def _handled(handler: Handler) -> Handler:
    """Bad input (finetune, artifact or knowledge errors) exits 2 with the message."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KnowledgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return _bad_input_exits_2(run)


def _settings(args: argparse.Namespace) -> tuple[TrainConfig, GateConfig]:
    config = TrainConfig(
        out_dir=str(Path(args.out)),
        tier=args.tier,
        base_model=args.base_model,
        metric="macro_f1" if args.metric == "macro_f1" else "accuracy",
        **{option: getattr(args, option) for option, _ in TRAIN_OPTIONS},
    )
    gate = GateConfig(
        metric=args.metric,
        floor=args.floor,
        margin_points=args.margin,
        guarded_labels=tuple(args.guard),
        tolerance_points=args.tolerance,
    )
    return config, gate


def _report(result: JobResult) -> int:
    job = result.job
    print(f"job {job.id} ({job.agent}): {job.status}")
    if result.decision is not None:
        print(f"  candidate {job.candidate_version}: {result.decision.summary()}")
    if job.error:
        print(f"  error: {job.error}")
        print(f"  resume: taskloom finetune run --resume {job.id}")
    return 0 if job.status in ("succeeded", "rejected") else 1


def _run(args: argparse.Namespace) -> int:
    with Database(args.db) as database:
        if args.resume is not None:
            return _report(resume_round(database, args.resume))
        if not args.agent:
            print("error: give --agent NAME (or --resume JOB).", file=sys.stderr)
            return 2
        config, gate = _settings(args)
        result = run_round(
            database,
            args.agent,
            config=config,
            gate_config=gate,
            min_per_class=args.min_per_class,
        )
        return _report(result)


def _jobs(args: argparse.Namespace) -> int:
    with Database(args.db) as database, database.session() as session:
        jobs = list_jobs(session, args.agent)
    if args.json:
        print(json.dumps([job.model_dump() for job in jobs], indent=2))
        return 0
    print(f"{'job':>5}  {'status':9}  {'trigger':8}  {'data':4}  candidate or error")
    print(f"{'job':>5}  {'status':9}  {'trigger':8}  {'data':4}  candidate or error")
    for job in jobs:
        detail = job.error or job.candidate_version or ""
        dataset = "-" if job.dataset_version is None else str(job.dataset_version)
        print(f"{job.id:5}  {job.status:9}  {job.trigger:8}  {dataset:4}  {detail}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    if not args.agent:
        print("error: give --agent NAME.", file=sys.stderr)
        return 2
    config, gate = _settings(args)
    with Database(args.db) as database:
        results = watch(
            database,
            args.agent,
            config=config,
            gate_config=gate,
            min_labels=args.min_labels,
            interval_s=args.interval,
            once=args.once,
        )
    if not results:
        print(f"fewer than {args.min_labels} new labels for '{args.agent}': no round run")
    return max([_report(result) for result in results], default=0)
