"""What every benchmark writes next to its table: the machine it ran on, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["write_json"]


def write_json(path: Path, meta: dict[str, Any], results: dict[str, Any], started: float) -> None:
    """Write ``{"meta": ..., **results}`` to ``path``, with the machine and the run's duration.

    Args:
        path: Where to write (parent folders are created).
        meta: The benchmark's own settings (name, quick, rounds, versions...).
        results: The measured numbers, ratios and targets.
        started: ``time.perf_counter()`` when the benchmark started.
    """
    machine = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),  # set: torch's threads capped
        "seconds": round(time.perf_counter() - started, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {**meta, **machine}, **results}, indent=2) + "\n")
