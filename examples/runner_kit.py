"""What the example runners share: progress lines, training bars, quiet libraries."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar", "quiet_libraries", "say"]

START = time.perf_counter()


def say(text: str) -> None:
    """Print a progress line, with the seconds since the runner started."""
    print(f"{time.perf_counter() - START:5.0f}s  {text}", flush=True)


@contextmanager
def progress_bar(desc: str, total: int) -> Iterator[Any]:
    """A tqdm bar over training steps (transformers depends on tqdm)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415

    with tqdm(total=total, desc=f"  training {desc}", unit="step", leave=True) as bar:
        yield bar


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
