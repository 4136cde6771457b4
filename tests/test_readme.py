"""The README's code runs as written: the first workflow, and the guide to writing a model
agent (the examples a new user copies)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_first_workflow_example_runs(tmp_path: Path) -> None:
    example = next(b for b in python_blocks() if "wf.compile()" in b)
    (tmp_path / "first.py").write_text(example)
    done = subprocess.run(
        [sys.executable, "first.py"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("succeeded text='Auto-reply: hi [")
    assert "reply -> () terminal step" in done.stdout
    assert any(line.startswith("succeeded text='Human queue: card stolen [") for line in lines)
    assert "flowchart TD" in done.stdout


def test_writing_your_own_model_agent_example_runs(tmp_path: Path) -> None:
    example = next(b for b in python_blocks() if "class UrgencyScorer" in b)
    (tmp_path / "urgency.py").write_text(example)
    done = subprocess.run(
        [sys.executable, "-W", "error", "urgency.py"], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "urgency-v1" / "model.safetensors").is_file()
    # The answer was recorded in the knowledge base, so it carries its prediction's id.
    assert re.fullmatch(
        r"urgent=(True|False) probability=[\d.e-]+ truncated=False prediction_id=1\n", done.stdout
    ), done.stdout
