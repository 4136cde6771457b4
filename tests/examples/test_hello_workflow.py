"""Smoke test of examples/hello_workflow.py: it runs end to end and routes as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "hello_workflow.py"


def test_hello_workflow_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("-> succeeded") == 6
    assert "decision: escalate ('card_lost_or_stolen' always goes to a human)" in out
    assert "decision: escalate ('compromised_card' always goes to a human)" in out
    assert "decision: clarify (confidence 0.00 too low)" in out
    assert "decision: reply (confident about 'exchange_rate')" in out
    assert "rule held: state('decide').action == 'reply'" in out
    assert "flowchart TD" in out
