"""``run_demo.py --serve``: the demo's workflow and knowledge base behind the service."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from runner_kit import serve  # noqa: E402

from agents.testing import FakeAgent, FakeInput  # noqa: E402
from knowledge import Database  # noqa: E402
from workflow import Workflow  # noqa: E402


def test_serve_prints_working_keys_and_serves_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn  # noqa: PLC0415

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    wf = Workflow("triage", task=FakeInput)
    wf.step("only", FakeAgent(echo=True))
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    assert serve(db, wf.compile(), 8765, name="demo") == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    printed = capsys.readouterr().out
    assert "http://127.0.0.1:8765/ui/" in printed
    tokens = dict(re.findall(r"(admin|labeler)\s+key: (tlk_\S+)", printed))
    with TestClient(served["app"]) as client:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        assert client.get("/api/me", headers=admin).json()["role"] == "admin"
        labeler = {"Authorization": f"Bearer {tokens['labeler']}"}
        assert client.get("/api/me", headers=labeler).json()["role"] == "labeler"
        run = client.post("/api/workflows/triage/runs", json={"text": "hi"}, headers=admin)
        assert run.json()["status"] == "succeeded"
    db.dispose()
