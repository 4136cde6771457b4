"""``taskloom demo``: run the support-triage demo (``examples/run_demo.py``) of a checkout.

    taskloom demo [--quick] [--out DIR] [--db URL] [--tickets N] [--rounds N] [--budget N]
                  [--seed N] [--threads N] [--base-model DIR] [--data CSV --articles JSON]

Every argument goes to the demo's own parser (``taskloom demo --help`` prints its options).
The demo lives in the repository's ``examples/`` folder, next to the packages; a wheel
install has no such folder, so the command then says where to get it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SCRIPT", "add_demo_commands"]

DEMO_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "run_demo.py"


def add_demo_commands(commands: Any) -> None:
    """Register ``taskloom demo`` on the subparsers."""
    # '+' as the only option prefix: every '--option' is left for the demo's own parser.
    demo = commands.add_parser(
        "demo", help="run the support-triage demo (a checkout)", add_help=False, prefix_chars="+"
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, script: Path = DEMO_SCRIPT) -> int:
    if not script.is_file():
        print(
            f"error: the demo script {script} is not there: 'taskloom demo' runs the examples "
            "of a source checkout, which a wheel install does not include. Clone the "
            "repository and run 'make demo' (or 'python examples/run_demo.py') in it.",
            file=sys.stderr,
        )
        return 2
    return subprocess.run([sys.executable, str(script), *args.demo_args], check=False).returncode
