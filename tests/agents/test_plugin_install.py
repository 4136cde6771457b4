"""Plugins for real: pip-install the example plugin and two broken ones, then use them.

Everything is installed with ``pip install --target`` into a temporary folder (never into
the dev environment) and exercised in a subprocess whose ``PYTHONPATH`` includes it: a
``*.dist-info`` folder on ``sys.path`` is all ``importlib.metadata`` needs to see the entry
points.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples" / "plugin_agent"

# Output is not a pydantic model: the class breaks the contract.
BAD_OUTPUT = """
from pydantic import BaseModel
from agents import Agent, Role

class Text(BaseModel):
    text: str

class BadOutputAgent(Agent[Text, dict]):
    name = "bad_output"
    role = Role.DECISION

    def run(self, input, ctx):
        return {"text": input.text}
"""

# A valid agent, but its entry point is named "urgency" and the agent "urgency_v2".
MISNAMED = """
from pydantic import BaseModel
from agents import Agent, Role

class Text(BaseModel):
    text: str

class UrgencyV2(Agent[Text, Text]):
    name = "urgency_v2"
    role = Role.PERCEPTION

    def run(self, input, ctx):
        return input
"""

HAPPY_SCRIPT = """
import json, sys
import agents, workflow

def imported():
    plugins = ("taskloom_plugin_example", "bad_output_plugin", "misnamed_plugin")
    return [m for m in plugins if m in sys.modules]

before = imported()
cls = agents.default_registry.get("keyword_urgency")
after = imported()

from pydantic import BaseModel
from agents.testing import FakeAgent, check_agent
from workflow import Engine, Workflow, state

check_agent(cls(keywords=["down"]), [{"text": "site down"}, {"text": "hello"}])

class Ticket(BaseModel):
    text: str

params = {"keywords": ["outage", "down", "asap"], "threshold": 0.5}
wf = Workflow("support", task=Ticket)
wf.step("urgency", "keyword_urgency", params=params)
wf.step("page", FakeAgent(label="paged")).step("queue", FakeAgent(label="queued"))
wf.route("urgency", "page", when=state("urgency").urgent)
wf.route("urgency", "queue")
compiled = wf.compile()

runs = []
for text in ("Checkout is DOWN, fix it asap!", "Where can I download my invoice?"):
    result = Engine().run_sync(compiled, {"text": text})
    runs.append({
        "ok": result.ok,
        "steps": sorted(result.outputs),
        "urgency": result.outputs["urgency"].model_dump(),
        "label": result.output.label,
    })
print(json.dumps({
    "before": before,
    "after": after,
    "module": cls.__module__,
    "origin": agents.default_registry.origin("keyword_urgency"),
    "init_params": compiled.steps["urgency"].agent.init_params,
    "runs": runs,
}))
"""

BROKEN_SCRIPT = """
import json, sys
import agents

registry = agents.default_registry

def error(name):
    try:
        registry.get(name)
    except agents.AgentError as exc:
        return {"type": type(exc).__name__, "plugin": isinstance(exc, agents.PluginError),
                "message": str(exc)}
    return None

errors = {name: error(name) for name in ("bad_output", "urgency")}
names = registry.names()
print(json.dumps({
    "errors": errors,
    "names": names,
    "broken": {k: type(v).__name__ for k, v in registry.broken.items()},
    "again": error("bad_output"),
    "imported": sorted(m for m in ("bad_output_plugin", "misnamed_plugin") if m in sys.modules),
}))
"""


def _write_package(root: Path, dist: str, module: str, source: str, entry_point: str) -> Path:
    """A one-module setuptools project declaring one ``taskloom.agents`` entry point."""
    root.mkdir()
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    (root / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.0.1"

            [project.entry-points."taskloom.agents"]
            {entry_point}

            [tool.setuptools]
            py-modules = ["{module}"]
        """)
    )
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the example plugin and the two broken plugins installed into it."""
    root = tmp_path_factory.mktemp("plugins")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    example = shutil.copytree(
        PLUGIN, root / "example", ignore=shutil.ignore_patterns("build", "*.egg-info", ".*cache*")
    )
    bad = _write_package(
        root / "bad",
        "taskloom-bad-output",
        "bad_output_plugin",
        BAD_OUTPUT,
        'bad_output = "bad_output_plugin:BadOutputAgent"',
    )
    misnamed = _write_package(
        root / "misnamed",
        "taskloom-misnamed",
        "misnamed_plugin",
        MISNAMED,
        'urgency = "misnamed_plugin:UrgencyV2"',
    )
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    pip += ["--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet"]
    done = subprocess.run(
        [*pip, "--target", str(target), str(example), str(bad), str(misnamed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


def _run(site: Path, script: str) -> dict[str, Any]:
    """Run ``script`` with the plugins on the path; return the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_installed_plugin_is_found_lazily_and_runs_in_a_workflow(site: Path) -> None:
    out = _run(site, HAPPY_SCRIPT)

    assert out["before"] == []  # `import agents, workflow` imports no plugin
    assert out["after"] == ["taskloom_plugin_example"]  # only the one looked up
    assert out["module"] == "taskloom_plugin_example._urgency"
    assert out["origin"] == (
        "plugin 'taskloom-plugin-example' (entry point "
        "'keyword_urgency = taskloom_plugin_example:KeywordUrgencyAgent')"
    )
    assert out["init_params"] == {"keywords": ["outage", "down", "asap"], "threshold": 0.5}
    urgent, calm = out["runs"]
    assert urgent == {
        "ok": True,
        "steps": ["page", "urgency"],
        "urgency": {"urgent": True, "score": 1.0, "matched": ["down", "asap"]},
        "label": "paged",
    }
    # "download" contains "down" but is not the word "down".
    assert calm == {
        "ok": True,
        "steps": ["queue", "urgency"],
        "urgency": {"urgent": False, "score": 0.0, "matched": []},
        "label": "queued",
    }


def test_broken_plugins_fail_with_errors_naming_distribution_and_entry_point(site: Path) -> None:
    out = _run(site, BROKEN_SCRIPT)

    bad = out["errors"]["bad_output"]
    assert (bad["type"], bad["plugin"]) == ("AgentContractError", False)
    assert bad["message"].startswith(
        "Agent 'bad_output' from plugin 'taskloom-bad-output' (entry point "
        "'bad_output = bad_output_plugin:BadOutputAgent') breaks the agent contract:\n"
        "  - Output must be a pydantic model class"
    )
    assert "got <class 'dict'>" in bad["message"]

    misnamed = out["errors"]["urgency"]
    assert (misnamed["type"], misnamed["plugin"]) == ("PluginError", True)
    assert misnamed["message"] == (
        "plugin 'taskloom-misnamed' (entry point 'urgency = misnamed_plugin:UrgencyV2') "
        "provides an agent named 'urgency_v2'; the entry point name must equal the "
        "agent's name"
    )

    # Listing skips the broken plugins but keeps them, and their errors, in `broken`.
    assert "keyword_urgency" in out["names"]
    assert not {"bad_output", "urgency", "urgency_v2"} & set(out["names"])
    assert out["broken"] == {"bad_output": "AgentContractError", "urgency": "PluginError"}
    assert out["again"] == bad  # a later lookup reports the same error again
    assert out["imported"] == ["bad_output_plugin", "misnamed_plugin"]
