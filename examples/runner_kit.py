"""What the example runners share: progress lines, training bars, quiet libraries, and
``--serve`` (the run's workflow and knowledge base behind the service)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from knowledge import Database, create_api_key
from workflow import CompiledWorkflow, ServiceConfig

__all__ = [
    "add_run_args",
    "label_outcomes",
    "progress_bar",
    "quiet_libraries",
    "say",
    "serve",
    "two_panels",
]

START = time.perf_counter()


def add_run_args(parser: argparse.ArgumentParser, *, out: str, serves: str) -> None:
    """The options every runner has: --out, --db, --seed, --base-model, --serve, --threads.

    Args:
        parser: The runner's parser.
        out: The default output folder.
        serves: What ``--serve`` serves, for its help.
    """
    parser.add_argument("--out", type=Path, default=Path(out), help="output folder")
    parser.add_argument("--db", help="knowledge base URL (default: SQLite file in --out)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the splits, data and training")
    parser.add_argument(
        "--base-model", default="", help="a Hugging Face model folder (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help=f"then serve {serves} on this port (the service extra)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 is faster when other jobs share the CPU)"
    )


def say(text: str) -> None:
    """Print a progress line, with the seconds since the runner started."""
    print(f"{time.perf_counter() - START:5.0f}s  {text}", flush=True)


@contextmanager
def progress_bar(desc: str, total: int) -> Iterator[Any]:
    """A tqdm bar over training steps (transformers depends on tqdm)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415

    with tqdm(total=total, desc=f"  training {desc}", unit="step", leave=True) as bar:
        yield bar


@contextmanager
def two_panels(path: Path, xs: Sequence[int]) -> Iterator[tuple[Any, Any]]:
    """A figure of two side-by-side axes over rounds ``xs``, saved as a PNG at ``path``."""
    import matplotlib  # noqa: PLC0415 - only when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        yield left, right
        for axis in (left, right):
            axis.set_xticks(list(xs))
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def label_outcomes(
    axis: Any, xs: Sequence[int], ys: Sequence[float], outcomes: Sequence[str]
) -> None:
    """Write each round's fine-tuning outcome (``promoted``...) above its point."""
    for x, y, outcome in zip(xs, ys, outcomes, strict=True):
        if outcome:
            axis.annotate(
                outcome,
                (x, y),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )


def quiet_libraries(threads: int | None) -> None:
    """Keep the output to the runner's own lines and bars.

    Texts longer than a model's ``max_length`` are cut (each cut is logged as a warning by
    the agent: hidden here), and transformers' weight-loading bars are switched off.
    """
    import torch  # noqa: PLC0415 - heavy; the runners need it anyway
    import transformers  # noqa: PLC0415

    logging.getLogger("taskloom").setLevel(logging.ERROR)
    transformers.utils.logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)


def serve(
    database: Database,
    workflow: CompiledWorkflow,
    port: int,
    *,
    name: str,
    routers: Sequence[Any] = (),
) -> int:
    """Serve ``workflow`` (and ``routers``) over ``database`` on 127.0.0.1:``port``.

    After a run, the dashboard shows what it did: its runs with their traces, the review
    items left open, the models' versions with their metrics. Two keys are created for it
    (``<name>-admin`` and ``<name>-labeler``) and printed once; it runs until interrupted.

    Returns:
        The exit status: 0, or 2 without the ``service`` extra.
    """
    try:
        import uvicorn  # noqa: PLC0415 - the service extra, only for --serve

        from workflow import create_app  # noqa: PLC0415
    except ImportError:
        print("error: --serve needs the service extra: pip install -e '.[service]'")
        return 2
    with database.transaction() as session:
        tokens = {
            role: create_api_key(session, f"{name}-{role}", role, created_by=name)[1]
            for role in ("admin", "labeler")
        }
    print(f"\nDashboard: http://127.0.0.1:{port}/ui/  (Ctrl-C stops it)")
    for role, token in tokens.items():
        print(f"  {role:8} key: {token}")
    config = ServiceConfig(resume_on_start=False)
    app = create_app([workflow], database=database, config=config, routers=routers)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return 0
