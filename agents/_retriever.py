"""The reasoning retriever: top-k evidence from the knowledge base, and an answer candidate.

The model is a bi-encoder (a ``BiEncoder`` artifact: head ``mean_pool``, task ``embedding``):
queries and chunks go through the same encoder, mean-pooled and L2-normalised, so their dot
product is their cosine similarity. The base all-MiniLM-L6-v2 saved as such an artifact
serves as is; a contrastively fine-tuned version replaces it through ``swap``.

**Indexing.** Search compares a query only with chunks embedded by an embedder of the same
name (``knowledge.search``), so documents must be embedded by the served model:
``retriever.embedder`` is a ``knowledge.Embedder`` named ``bi_encoder:<sha256[:12]>`` of the
weights, to pass to ``knowledge.add_document`` / ``ingest_path``. After a swap to other
weights the stored vectors carry the old name: ``retriever.reindex(database)`` embeds the
chunks again. Until then the retriever refuses to answer (``RetrieverIndexError``) rather
than fall back to full-text search: its predictions are recorded under the serving model
version, so answers ranked without that model would be credited to it, and feedback on them
would mislead its evaluation. A partial index (some chunks not embedded yet) only warns.

**Batching.** ``run_batch`` embeds every query of the batch in one pass (length-sorted,
padded per sub-batch), then searches each query with its precomputed vector.

**Answer candidate.** From the top evidence only (other chunks may come from other
articles and contradict it): the chunk itself when it fits in ``answer_chars``; otherwise
its sentences most similar to the query, greedily while they fit (the best one always),
put back in their order in the chunk. The pieces are embedded in one pass per batch; a short
top chunk is not embedded again (its cosine is its ``vector_score``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from agents._artifact import load_bi_encoder, read_artifact
from agents._contract import Role, RunContext
from agents._errors import AgentError
from agents._model import LoadedModel, ModelAgent, length_sorted_batches, pad_batch
from knowledge import Database, Embedder, SearchHit, chunk_embedders, reembed_chunks, search

__all__ = ["Evidence", "Retriever", "RetrieverIndexError", "RetrieverInput", "RetrieverOutput"]

FilterValue = str | int | float | bool
Vectors = npt.NDArray[np.float32]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class RetrieverIndexError(AgentError):
    """The knowledge base's chunks are not embedded by the model the retriever serves."""


class RetrieverInput(BaseModel):
    """A question to find evidence for.

    Attributes:
        query: Free text (an empty query is answered with no evidence, and flagged).
        filters: Equality on document meta keys (``source`` matches the document's source),
            on top of the retriever's own filters; these win on a shared key.
    """

    query: str
    filters: dict[str, FilterValue] | None = None


class Evidence(BaseModel):
    """One chunk found, with its document and scores.

    Attributes:
        document_id: The document's id in the knowledge base.
        chunk_id: The chunk's id.
        title: The document's title.
        source: The document's source (path, URL or system).
        text: The chunk's text.
        score: The fused rank score (see ``knowledge.search``): 1.0 is first in every list.
        vector_score: Cosine similarity of query and chunk; None if found by full text only.
        fts_score: Full-text rank score; None if the full-text search did not match it.
    """

    document_id: int
    chunk_id: int
    title: str
    source: str
    text: str
    score: float
    vector_score: float | None
    fts_score: float | None


class RetrieverOutput(BaseModel):
    """The evidence for a query, best first, and an answer candidate.

    Attributes:
        evidence: Up to ``k`` chunks (fewer after ``min_score``; none for an empty query).
        answer: The answer candidate, taken from the top evidence (see the module
            docstring); "" without evidence.
        answer_score: Cosine similarity of the query and the answer's best piece (0.0
            without evidence).
        top_score: Cosine similarity of the query and the top evidence (0.0 without
            evidence or when it was found by full text only): a threshold for "no answer".
        truncated: The query was longer than ``max_length`` tokens and was cut.
        empty: The query had no content.
        model_sha256: The checksum of the weights that answered (the model version).
        prediction_id: The id of the ``Prediction`` row recording this answer.
    """

    evidence: list[Evidence]
    answer: str
    answer_score: float
    top_score: float
    truncated: bool = False
    empty: bool = False
    model_sha256: str
    prediction_id: int | None = None


class _ServedEmbedder:
    """A ``knowledge.Embedder`` over one loaded bi-encoder.

    It keeps the ``LoadedModel`` it was made from, so vectors and the name stored with them
    always come from the same weights, even if the retriever swaps meanwhile.
    """

    def __init__(self, retriever: Retriever, loaded: LoadedModel) -> None:
        self._retriever = retriever
        self._loaded = loaded
        self.name = f"bi_encoder:{loaded.sha256[:12]}"
        self.dim = int(loaded.model.config.hidden_size)

    def __repr__(self) -> str:
        return f"<embedder {self.name} of {self._loaded.path}>"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` (truncated to the retriever's ``max_length``)."""
        if not texts:  # e.g. ingesting a document already stored adds no chunks
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self._retriever._encode(self._loaded, texts)
        return self._retriever._vectors(self._loaded, encoded.ids)


class Retriever(ModelAgent[RetrieverInput, RetrieverOutput]):
    """Finds evidence for a query in ``ctx.knowledge`` with a bi-encoder; see the module.

    Args:
        model_dir: The artifact directory (``save_artifact(BiEncoder(...), tokenizer, path,
            labels=[], task="embedding")``).
        sha256: The checksum the artifact must have (the model version's).
        k: Most evidence per query.
        alpha: Weight of vector similarity against full text in the fused ranking, from 0
            (full text only) to 1 (vector only). Default 1.0: on validation Banking77 queries
            against one help article per intent (``tests/agents/test_retriever_minilm.py``),
            full-text weight never helped: recall@1 0.95 at alpha 1.0 and 0.7, 0.93 at 0.5
            (customers rarely use the article's words). Lower it for corpora of exact
            names and codes, where full text finds what embeddings blur.
        filters: Document meta filters applied to every query (see ``knowledge.search``).
        min_score: Drop evidence whose cosine similarity is below this (and evidence found
            by full text only); None keeps all ``k``.
        answer_chars: Longest answer candidate in characters (the best sentence is kept
            whole even if longer).
        max_length: Longest query or chunk in tokens; None takes the artifact's.
        batch_size: Most texts per forward pass.
        device: The torch device to run on.
    """

    name = "retriever"
    role = Role.REASONING

    def __init__(  # noqa: PLR0913 - keyword-only parameters, documented above
        self,
        model_dir: str | None = None,
        *,
        sha256: str | None = None,
        k: int = 3,
        alpha: float = 1.0,
        filters: dict[str, FilterValue] | None = None,
        min_score: float | None = None,
        answer_chars: int = 300,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if k < 1 or not 0.0 <= alpha <= 1.0 or answer_chars < 1:
            raise ValueError(
                f"Retriever needs k >= 1, 0 <= alpha <= 1 and answer_chars >= 1, got k={k}, "
                f"alpha={alpha}, answer_chars={answer_chars}"
            )
        if min_score is not None and not -1.0 <= min_score <= 1.0:
            raise ValueError(f"Retriever min_score is a cosine in [-1, 1], got {min_score}")
        super().__init__(
            model_dir, sha256=sha256, max_length=max_length, batch_size=batch_size, device=device
        )
        self.k, self.alpha, self.min_score = k, alpha, min_score
        self.filters = dict(filters or {})
        self.answer_chars = answer_chars

    @property
    def embedder(self) -> Embedder:
        """The served model as a ``knowledge.Embedder``: index documents with it."""
        return _ServedEmbedder(self, self.loaded)

    def reindex(
        self, database: Database, *, replace: Collection[str] | None = None, batch_size: int = 256
    ) -> int:
        """Embed, with the served model, every chunk not embedded by it yet (one transaction).

        Call it after ``swap`` to new weights, or after documents were ingested with another
        embedder. A chunk holds one vector, so this replaces the other embedders' vectors;
        name the ones to replace if the knowledge base also serves another embedder.

        Args:
            database: The knowledge base.
            replace: Embedder names whose chunks are re-embedded; None: every other name.
            batch_size: Chunks per forward pass and write.

        Returns:
            How many chunks were embedded.
        """
        with database.transaction() as session:
            return reembed_chunks(session, self.embedder, replace=replace, batch_size=batch_size)

    def _load(self, model_dir: str | None, sha256: str | None) -> LoadedModel:
        if model_dir is None:
            return super()._load(model_dir, sha256)  # raises the "no model_dir" error
        meta, weights = read_artifact(model_dir, sha256)
        model, tokenizer = load_bi_encoder(model_dir, meta, weights)
        return LoadedModel(model.to(self.device), tokenizer, meta, str(model_dir))

    def _predict(
        self,
        loaded: LoadedModel,
        inputs: Sequence[RetrieverInput],
        ctxs: Sequence[RunContext],
    ) -> list[RetrieverOutput]:
        databases = [_database(ctx) for ctx in ctxs]
        embedder = _ServedEmbedder(self, loaded)
        queries = [item.query for item in inputs]
        encoded = self._encode(loaded, queries)
        vectors = self._vectors(loaded, encoded.ids)
        hits: list[list[SearchHit]] = [[] for _ in inputs]
        for database in {id(db): db for db in databases}.values():
            rows = [i for i, db in enumerate(databases) if db is database]
            with database.session() as session:
                self._check_index(session, embedder.name, database, ctxs[rows[0]])
                for i in rows:
                    hits[i] = self._search(session, inputs[i], embedder, vectors[i])
        answers = self._answers(loaded, vectors, [found[:1] for found in hits])
        outputs = []
        for i, ctx in enumerate(ctxs):
            empty = not queries[i].strip()
            if empty or encoded.truncated[i]:
                why = "is empty" if empty else f"exceeds {self._max_length(loaded)} tokens"
                ctx.logger.warning("Retriever query %s; answered anyway.", why)
            evidence = [_evidence(hit) for hit in hits[i]]
            outputs.append(
                RetrieverOutput(
                    evidence=evidence,
                    answer=answers[i][0],
                    answer_score=answers[i][1],
                    top_score=(evidence[0].vector_score or 0.0) if evidence else 0.0,
                    truncated=encoded.truncated[i],
                    empty=empty,
                    model_sha256=loaded.sha256,
                )
            )
        return outputs

    def _check_index(self, session: Any, name: str, database: Database, ctx: RunContext) -> None:
        """Refuse to search vectors no chunk has; warn when only some chunks have them."""
        if self.alpha == 0.0:
            return  # full text only: no vectors needed
        counts = chunk_embedders(session)
        indexed, total = counts.get(name, 0), sum(counts.values())
        if total and not indexed:
            stored = ", ".join(f"{n or '(none)'} ({c})" for n, c in sorted(counts.items()))
            raise RetrieverIndexError(
                f"Retriever '{self.name}' serves model {name} but none of the {total} chunks "
                f"in the {database.dialect} knowledge base is embedded by it (stored: "
                f"{stored}). Run retriever.reindex(database) after a swap, or ingest with "
                "knowledge.add_document(..., embedder=retriever.embedder)."
            )
        if indexed < total:
            ctx.logger.warning(
                "Only %d of %d chunks are embedded by %s; the others are found by full text "
                "only. Run retriever.reindex(database).",
                indexed,
                total,
                name,
            )

    def _search(
        self, session: Any, item: RetrieverInput, embedder: Embedder, vector: Vectors
    ) -> list[SearchHit]:
        filters: Mapping[str, Any] = {**self.filters, **(item.filters or {})}
        found = search(
            session,
            item.query,
            embedder,
            k=self.k,
            filters=filters,
            alpha=self.alpha,
            query_vector=vector,
        )
        if self.min_score is None:
            return found
        floor = self.min_score
        return [hit for hit in found if hit.vector_score is not None and hit.vector_score >= floor]

    def _vectors(self, loaded: LoadedModel, ids: list[list[int]]) -> Vectors:
        """Unit vectors of tokenized texts, computed in length-sorted batches."""
        import torch  # noqa: PLC0415 - heavy, lazy

        dim = int(loaded.model.config.hidden_size)
        out = np.zeros((len(ids), dim), dtype=np.float32)
        pad_id = loaded.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for batch in length_sorted_batches([len(row) for row in ids], self.batch_size):
                input_ids, mask = pad_batch([ids[i] for i in batch], pad_id, self.device)
                out[batch] = loaded.model(input_ids, mask).float().cpu().numpy()
        return out

    def _answers(
        self, loaded: LoadedModel, queries: Vectors, tops: list[list[SearchHit]]
    ) -> list[tuple[str, float]]:
        """Each query's answer candidate and its score; pieces embedded in one pass.

        A short top chunk with a vector score is its own answer: its cosine is known, so
        it is not embedded again.
        """
        pieces = [_pieces(top[0].text, self.answer_chars) if top else [] for top in tops]
        known = [
            len(row) == 1 and top[0].vector_score is not None
            for row, top in zip(pieces, tops, strict=True)
        ]
        flat = [piece for row, done in zip(pieces, known, strict=True) if not done for piece in row]
        vectors = self._vectors(loaded, self._encode(loaded, flat).ids) if flat else queries[:0]
        answers, start = [], 0
        for query, row, top, done in zip(queries, pieces, tops, known, strict=True):
            if done:
                answers.append((row[0], float(top[0].vector_score or 0.0)))
                continue
            scores = vectors[start : start + len(row)] @ query
            start += len(row)
            answers.append(_answer(row, scores.tolist(), self.answer_chars))
        return answers


def _database(ctx: RunContext) -> Database:
    if isinstance(ctx.knowledge, Database):
        return ctx.knowledge
    got = "no knowledge base" if ctx.knowledge is None else type(ctx.knowledge).__name__
    raise AgentError(
        f"Retriever needs a knowledge base to search, but step '{ctx.step}' of run "
        f"'{ctx.run_id}' has {got} in ctx.knowledge. Give the engine one: "
        "Engine(knowledge=knowledge.Database(url)) (or RunContext(..., knowledge=database) "
        "when calling the agent directly)."
    )


def _evidence(hit: SearchHit) -> Evidence:
    return Evidence(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        text=hit.text,
        score=hit.score,
        vector_score=hit.vector_score,
        fts_score=hit.fts_score,
    )


def _pieces(text: str, limit: int) -> list[str]:
    """The chunk itself if it fits in ``limit`` characters, else its sentences."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()] or [text]


def _answer(pieces: list[str], scores: list[float], limit: int) -> tuple[str, float]:
    """The most similar pieces that fit in ``limit`` (the best always), in text order."""
    if not pieces:
        return "", 0.0
    ranked = sorted(range(len(pieces)), key=lambda i: -scores[i])
    chosen, used = [ranked[0]], len(pieces[ranked[0]])
    for i in ranked[1:]:
        if used + 1 + len(pieces[i]) <= limit:
            chosen.append(i)
            used += 1 + len(pieces[i])
    return " ".join(pieces[i] for i in sorted(chosen)), scores[ranked[0]]
