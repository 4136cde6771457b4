"""The taskloom command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WORKFLOW = """\
taskloom: 1
name: cli_demo
task: cli_models:Ticket
entry: classify
steps:
  - name: classify
    agent: fake
    params: {echo: true}
  - name: reply
    agent: fake
    params: {label: replied}
  - name: escalate
    agent: fake
    params: {label: escalated}
routes:
  - from: classify
    to: [reply]
    when: {op: "==", ref: state.classify.label, value: reply}
  - from: classify
    to: [escalate]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cli_models.py").write_text(
        textwrap.dedent("""
            from pydantic import BaseModel

            from agents import default_registry
            from agents.testing import FakeAgent

            default_registry.register(FakeAgent)


            class Ticket(BaseModel):
                text: str
        """)
    )
    (tmp_path / "flow.yaml").write_text(WORKFLOW)
    return tmp_path


def taskloom(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process (its plugins register in that process's registry)."""
    code = "import sys; from workflow._cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", **env},
        check=False,
    )


def test_validate(project: Path) -> None:
    done = taskloom(project, "validate", "flow.yaml", "--allow", "cli_models")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: workflow 'cli_demo' with 3 steps, entry 'classify'"


def test_import_outside_allowlist_is_refused(project: Path) -> None:
    done = taskloom(project, "validate", "flow.yaml")
    assert done.returncode == 1
    assert "Refusing to import 'cli_models:Ticket'" in done.stderr


def test_run_prints_the_trace_and_json(project: Path) -> None:
    done = taskloom(
        project, "run", "flow.yaml", "--allow", "cli_models", "--task", '{"text": "reply"}'
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["classify", "ok", "->", "reply"]
    assert "rule held: state('classify').label == 'reply'" in lines[0]
    assert lines[-1].endswith("succeeded")

    (project / "task.json").write_text('{"text": "other"}')
    done = taskloom(
        project, "run", "flow.yaml", "--allow", "cli_models", "--task", "@task.json", "--json"
    )
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert [s["step"] for s in report["steps"]] == ["classify", "escalate"]
    assert report["output"]["label"] == "escalated"


def test_bad_task_and_bad_json(project: Path) -> None:
    done = taskloom(project, "run", "flow.yaml", "--allow", "cli_models", "--task", "{nope")
    assert done.returncode == 2
    assert "--task is not valid JSON" in done.stderr
    done = taskloom(project, "run", "flow.yaml", "--allow", "cli_models", "--task", '{"x": 1}')
    assert done.returncode == 1
    assert "does not match Ticket" in done.stderr


def test_mermaid(project: Path) -> None:
    done = taskloom(project, "mermaid", "flow.yaml", "--allow", "cli_models")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart TD")
    assert "classify" in done.stdout


def test_malformed_file_is_a_clear_error(project: Path) -> None:
    (project / "bad.yaml").write_text("taskloom: 1\nname: [unclosed\n")
    done = taskloom(project, "validate", "bad.yaml")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_agents_lists_registered_agents(project: Path) -> None:
    code = "import cli_models, sys; from workflow._cli import main; sys.exit(main(['agents']))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
        env={"PYTHONPATH": str(project)}, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["fake", "reasoning"]


def test_an_unknown_executor_in_the_environment_is_bad_usage(project: Path) -> None:
    done = taskloom(
        project,
        *("run", "flow.yaml", "--allow", "cli_models", "--task", '{"text": "reply"}'),
        TASKLOOM_EXECUTOR="dask",
    )
    assert done.returncode == 2
    assert "TASKLOOM_EXECUTOR='dask' is not an executor. Executors: local, ray." in done.stderr
