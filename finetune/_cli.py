"""``taskloom finetune``: train and evaluate a classifier or tagger on your own labelled files.

    taskloom finetune train --data FILE --out DIR [--task text-classification]
                            [--text-column text] [--label-column label] [--val FILE]
                            [--val-fraction 0.1] [--tier head|lora|full] [--epochs N] ...
    taskloom finetune eval --model DIR --data FILE [--text-column C] [--label-column C] [--json]
    taskloom finetune run|jobs|watch --agent NAME ...   (feedback-loop rounds: _cli_rounds)

Files are ``.csv`` or ``.jsonl`` (token classification: ``.jsonl`` with entity spans;
formats in ``finetune._files``). ``train`` holds out a stratified, seeded validation split
unless ``--val`` names a file, shows a progress bar over optimizer steps, and writes
``DIR/model`` (the artifact), ``DIR/metrics.json`` and ``DIR/curves.png``. Exit status: 0
on success, 2 on bad input (the message on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents import ModelArtifactError
from agents._bio import Span
from finetune._config import Task, TrainConfig
from finetune._curves import plot_curves
from finetune._data import Example, SpanExample
from finetune._errors import FinetuneError, TrainConfigError, TrainingDataError
from finetune._files import label_names, read_labelled, read_spans, split_examples
from finetune._loop import TrainResult, train
from finetune._metrics import EvalReport, evaluate
from finetune._tasks import span_report

__all__ = ["add_finetune_commands"]

# Command-line task names (Hugging Face's) -> TrainConfig tasks.
CLI_TASKS: dict[str, Task] = {
    "text-classification": "single_label",
    "multi-label-classification": "multi_label",
    "token-classification": "token_classification",
}
CLI_TIERS = ("head", "lora", "full")
# The TrainConfig fields that ``train`` takes as --options: (field, type, help).
KNOBS: tuple[tuple[str, type, str], ...] = (
    ("epochs", int, "most passes over the training data"),
    ("batch_size", int, "examples per forward pass"),
    ("grad_accum", int, "forward passes per optimizer step"),
    ("lr", float, "encoder learning rate"),
    ("head_lr", float, "head learning rate"),
    ("weight_decay", float, "AdamW decay on weight matrices"),
    ("warmup_ratio", float, "share of the steps warming the rate up, in [0, 1)"),
    ("max_length", int, "longest input in tokens"),
    ("seed", int, "seeds the weights, dropout, batch order and validation split"),
    ("patience", int, "epochs without a better validation metric before stopping"),
    ("checkpoint_every_steps", int, "also checkpoint every N steps; 0: at epoch ends only"),
    (
        "label_smoothing",
        float,
        "text-classification: share of each target spread over the other labels, in [0, 1)",
    ),
    (
        "contrastive_epochs",
        int,
        "text-classification: first warm the encoder up N epochs on same-label pairs "
        "(helps with few examples per label); 0: no warm-up",
    ),
    ("lora_r", int, "--tier lora: adapter rank"),
    ("lora_alpha", int, "--tier lora: adapter scale numerator (updates scaled by alpha/r)"),
    ("lora_dropout", float, "--tier lora: dropout on the adapters' input, in [0, 1)"),
)

Handler = Callable[[argparse.Namespace], int]


def add_finetune_commands(commands: Any) -> None:
    """Register ``taskloom finetune train|eval|run|jobs|watch`` on the subparsers."""
    group = commands.add_parser("finetune", help="train and evaluate on labelled files")
    sub = group.add_subparsers(required=True, metavar="COMMAND")

    fit = sub.add_parser("train", help="fine-tune a classifier or tagger from the base model")
    _data_options(fit)
    fit.add_argument(
        "--task", choices=tuple(CLI_TASKS), default="text-classification", help="what to train"
    )
    fit.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    fit.add_argument("--val", type=Path, metavar="FILE", help="validation file (else a split)")
    fit.add_argument("--val-fraction", type=float, default=0.1, help="share held out (0.1)")
    fit.add_argument("--tier", choices=CLI_TIERS, default="full", help="weights trained (full)")
    fit.add_argument("--base-model", default="", metavar="DIR", help="HF model (MiniLM)")
    defaults = TrainConfig(out_dir="-")
    for name, kind, text in KNOBS:
        fit.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            metavar="N" if kind is int else "X",
            help=f"{text} ({getattr(defaults, name)})",
        )
    fit.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(handler=_bad_input_exits_2(_train))

    score = sub.add_parser("eval", help="score a trained model on a labelled file")
    score.add_argument("--model", required=True, type=Path, metavar="DIR", help="artifact")
    _data_options(score)
    score.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    score.add_argument("--json", action="store_true", help="print the report as JSON only")
    score.set_defaults(handler=_bad_input_exits_2(_eval))

    from finetune._cli_rounds import add_round_commands  # noqa: PLC0415 - it imports this module

    add_round_commands(sub)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, type=Path, metavar="FILE", help="labelled .csv or .jsonl"
    )
    parser.add_argument("--text-column", default="text", metavar="C", help="texts (text)")
    parser.add_argument("--label-column", default="label", metavar="C", help="labels (label)")


def _bad_input_exits_2(handler: Handler) -> Handler:
    """Report bad data, options or artifacts on stderr with exit status 2, no traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (FinetuneError, ModelArtifactError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def _config(args: argparse.Namespace) -> TrainConfig:
    task = CLI_TASKS[args.task]
    given = {name: getattr(args, name) for name, _, _ in KNOBS if getattr(args, name) is not None}
    _check_knobs_apply(given, task, args.tier)
    return TrainConfig(
        out_dir=str(args.out),
        task=task,
        tier=args.tier,
        base_model=args.base_model,
        metric="accuracy" if task == "single_label" else "micro_f1",  # spans: exact ones
        **given,
    )


def _check_knobs_apply(given: dict[str, Any], task: Task, tier: str) -> None:
    """Refuse options that the run would ignore, rather than ignore them silently."""
    problems = []
    lora = [f"--{name.replace('_', '-')}" for name in given if name.startswith("lora_")]
    if lora and tier != "lora":
        problems.append(f"--tier lora is needed by {', '.join(lora)} (got --tier {tier})")
    for name in ("label_smoothing", "contrastive_epochs"):
        if name in given and task != "single_label":
            flag = f"--{name.replace('_', '-')}"
            problems.append(f"{flag} applies to --task text-classification only")
    if problems:
        raise TrainConfigError(f"{'; '.join(problems)}.")


def _train(args: argparse.Namespace) -> int:
    config = _config(args)
    examples = _read(args.data, config.task, args)
    if args.val is not None:
        train_set, val_set = examples, _read(args.val, config.task, args)
    else:
        train_set, val_set = split_examples(examples, args.val_fraction, seed=config.seed)
    batches = math.ceil(len(train_set) / config.batch_size)
    steps = config.epochs * math.ceil(batches / config.grad_accum)
    bar = _progress_bar(steps, quiet=args.quiet)
    try:
        result = train(
            config,
            train_set,
            val_set,
            resume=args.resume,
            on_step=lambda step: bar.update(step - bar.n),
        )
    finally:
        bar.close()
    curves = plot_curves(result.metrics_path)
    _print_summary(result, config, len(train_set), len(val_set), curves)
    return 0


def _read(path: Path, task: str, args: argparse.Namespace) -> list[Example | SpanExample]:
    """The labelled examples of a file, read as ``task`` (a ``TrainConfig`` task) needs."""
    columns = {"text_column": args.text_column, "label_column": args.label_column}
    if task == "token_classification":
        return list(read_spans(path, **columns))
    return list(read_labelled(path, multi_label=task == "multi_label", **columns))


def _progress_bar(total: int, *, quiet: bool) -> Any:
    """A tqdm bar on stderr, shown only on a terminal (logs and pipes stay clean)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415 - lazy

    return tqdm(total=total, desc="training", unit="step", disable=quiet or not sys.stderr.isatty())


def _print_summary(
    result: TrainResult, config: TrainConfig, n_train: int, n_val: int, curves: Path
) -> None:
    metrics = json.loads(result.metrics_path.read_text("utf-8"))
    epochs = metrics["epochs"]
    speed = sum(e["examples_per_s"] for e in epochs) / max(len(epochs), 1)
    stopped = " (stopped early)" if result.stopped_early else ""
    rows = [
        ("examples", f"{n_train} train, {n_val} validation"),
        ("best epoch", f"{result.best_epoch} of {result.epochs_run}{stopped}"),
        (f"val {config.metric}", f"{result.best_metric:.4f}"),
        ("examples/s", f"{speed:.1f}"),
        ("artifact", str(result.model_dir)),
        ("sha256", result.sha256),
        ("metrics", str(result.metrics_path)),
        ("curves", str(curves)),
    ]
    for name, value in rows:
        print(f"{name:16} {value}")
    print("\nvalidation report of the saved model:")
    _print_report(result.report)


def _print_report(report: EvalReport) -> None:
    print(f"examples {report.examples}  accuracy {report.accuracy:.4f}  ", end="")
    print(f"macro-F1 {report.macro_f1:.4f}  micro-F1 {report.micro_f1:.4f}")
    width = max([5, *(len(name) for name in report.per_label)])
    print(f"{'label':{width}}  precision  recall      f1  support")
    for name, s in report.per_label.items():
        print(f"{name:{width}}  {s.precision:9.4f}  {s.recall:6.4f}  {s.f1:6.4f}  {s.support:7d}")


def _eval(args: argparse.Namespace) -> int:
    from agents._artifact import read_artifact  # noqa: PLC0415 - the task decides the format

    meta, _ = read_artifact(args.model)
    examples = _read(args.data, meta.task, args)
    spans = meta.task == "token_classification"
    names = [tag[2:] for tag in meta.labels if tag.startswith("B-")] if spans else meta.labels
    unknown = sorted({name for e in examples for name in label_names(e)} - set(names))
    if unknown:
        raise TrainingDataError(
            f"'{args.data}' has label(s) {', '.join(unknown)} that the model in "
            f"'{args.model}' cannot predict. Its labels: {', '.join(names)}."
        )
    if spans:
        report = _evaluate_spans(args.model, examples, names, args.batch_size)
    else:
        report = evaluate(
            args.model,
            [e.text for e in examples],
            [sorted(label_names(e)) for e in examples],
            batch_size=args.batch_size,
        )
    if args.json:
        payload = {"model": str(args.model), "sha256": meta.sha256, **report.model_dump()}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"model    {args.model} (sha256 {meta.sha256[:12]})")
    _print_report(report)
    return 0


def _evaluate_spans(
    model_dir: Path, examples: Sequence[Example | SpanExample], types: list[str], batch_size: int
) -> EvalReport:
    """Exact-span scores of a token-classification artifact, served as in production."""
    from agents import EntityExtractor, ExtractorInput, RunContext  # noqa: PLC0415 - lazy

    rows = [e for e in examples if isinstance(e, SpanExample)]
    agent = EntityExtractor(str(model_dir), batch_size=batch_size)
    contexts = [RunContext("evaluate", "evaluate", visit=i + 1) for i in range(len(rows))]
    outputs = agent.run_batch([ExtractorInput(text=e.text) for e in rows], contexts)
    predicted = [[Span(x.type, x.start, x.end) for x in out.entities] for out in outputs]
    return span_report([e.spans for e in rows], predicted, types)
