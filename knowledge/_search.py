"""Hybrid document search: full-text and vector similarity, fused by rank.

Two candidate lists are built for a query, both restricted by the metadata filters first:

- **full text**: SQLite FTS5 (``chunks_fts MATCH``, ranked by ``bm25``) or PostgreSQL
  (``to_tsvector('english', text) @@ websearch_to_tsquery(...)``, ranked by ``ts_rank_cd``;
  the expression matches the ``ix_chunks_tsv`` GIN index). The query is reduced to its words,
  each quoted (SQLite) or plain (PostgreSQL), joined by OR, so quotes, ``*``, ``NEAR``,
  parentheses or a dangling ``-`` in user input are text, never query syntax; common English
  words are dropped on SQLite as PostgreSQL's ``english`` configuration does.
- **vector**: cosine similarity in numpy between the query embedding and every stored chunk
  embedding made by an embedder of the same name. pgvector is not used: the servers this was
  built for do not have it, so both backends take the numpy path (a full scan per query).

**Fusion: weighted reciprocal-rank fusion** (Cormack et al., 2009)::

    score = alpha / (60 + vector_rank) + (1 - alpha) / (60 + fts_rank)

scaled so that first place in both lists scores 1.0. It was chosen over a normalised weighted
sum of raw scores because bm25, ts_rank_cd and cosine live on unrelated scales that change with
the query and the corpus (bm25 is unbounded and negative, ts_rank_cd depends on document
length normalisation), so min-max normalising them per query makes a lone weak full-text match
look perfect, and the two backends would rank differently. Ranks are comparable across
backends and need no tuning. A list weighted 0 (``alpha`` 0 or 1) contributes nothing, so
``alpha=1`` is pure vector search and ``alpha=0`` pure full-text search. The raw scores stay
on each hit (``fts_score``: higher is better on both backends; ``vector_score``: cosine).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Integer,
    column,
    func,
    literal_column,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from knowledge._embed import Embedder
from knowledge._errors import SearchError
from knowledge._ingest import chunk_embedders
from knowledge._models import Chunk, Document

__all__ = ["SearchHit", "fuse", "search"]

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant from Cormack et al.; dampens the weight of the very top ranks
MIN_CANDIDATES = 50  # per list; fusion needs more than k candidates to reorder anything
MAX_TERMS = 32
_WORD = re.compile(r"\w+")
# PostgreSQL's english configuration drops these; dropping them on SQLite too keeps the two
# backends' full-text candidates alike (an OR over "how" and "my" matches nearly everything).
_STOPWORDS = frozenset(
    """
    a an and are as at be but by can could do does did for from had has have how i if in into
    is it its me my no not of on or our so such than that the their them then there these they
    this to was we were what when where which who why will with would you your
    """.split()  # noqa: SIM905 - a word list reads better as words
)
_FILTER_TYPES = (str, int, float, bool)


class SearchHit(BaseModel):
    """One chunk found by ``search``, with its scores and where it came from."""

    chunk_id: int
    document_id: int
    text: str
    score: float = Field(description="Fused score; 1.0 means first in both lists.")
    fts_score: float | None = Field(description="Full-text rank score; None if not matched.")
    vector_score: float | None = Field(description="Cosine similarity; None if not compared.")
    source: str
    title: str
    meta: dict[str, Any] = Field(description="The document's meta.")
    chunk_meta: dict[str, Any] = Field(description="The chunk's meta (section, line).")
    ordinal: int = Field(description="Position of the chunk in its document.")


def search(
    session: Session,
    query: str,
    embedder: Embedder,
    *,
    k: int = 5,
    filters: Mapping[str, Any] | None = None,
    alpha: float = 0.5,
    query_vector: npt.NDArray[np.float32] | None = None,
) -> list[SearchHit]:
    """Find the ``k`` chunks that best match ``query``.

    Args:
        session: The database session (read only).
        query: Free text; no query syntax is interpreted.
        embedder: Embeds the query; only chunks embedded by the same name are compared.
        k: How many hits to return at most.
        filters: Equality on document meta keys (str, int, float or bool values; the types
            must match: ``120`` does not match ``"120"``; on SQLite ``True`` also matches
            ``1``). The key ``source`` matches the document's source instead. All must hold.
        alpha: Weight of vector similarity against full text, from 0 (full text only) to 1
            (vector only).
        query_vector: The query's embedding by ``embedder``, when the caller computed it
            already (e.g. for a batch of queries in one forward pass); else it is embedded
            here.

    Returns:
        Hits, best first (ties by chunk id); fewer than ``k`` if fewer chunks match.

    Raises:
        SearchError: ``k`` < 1, ``alpha`` outside [0, 1], a malformed filter, or a
            ``query_vector`` whose shape is not ``(embedder.dim,)``.
    """
    if k < 1:
        raise SearchError(f"k must be at least 1, got {k}.")
    if not 0.0 <= alpha <= 1.0:
        raise SearchError(f"alpha must be between 0 (full text) and 1 (vector), got {alpha}.")
    if query_vector is not None and query_vector.shape != (embedder.dim,):
        raise SearchError(
            f"query_vector has shape {query_vector.shape}; embedder '{embedder.name}' makes "
            f"vectors of shape ({embedder.dim},). Pass one row of embedder.embed([query])."
        )
    clauses = _filter_clauses(session, filters or {})
    if not query.strip():
        return []
    pool = max(MIN_CANDIDATES, 4 * k)
    fts = _fts_candidates(session, query, clauses, pool) if alpha < 1 else []
    vec = (
        _vector_candidates(session, query, embedder, clauses, pool, query_vector)
        if alpha > 0
        else []
    )
    fused = fuse(fts, vec, alpha=alpha)[:k]
    return _hits(session, fused, dict(fts), dict(vec))


def fuse(
    fts: list[tuple[int, float]], vector: list[tuple[int, float]], *, alpha: float
) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of two ranked ``(chunk id, score)`` lists.

    Returns:
        ``(chunk id, fused score)`` pairs, best first, ties broken by chunk id; the fused
        score is 1.0 for an id ranked first in both lists. Lists weighted 0 are ignored.
    """
    fused: dict[int, float] = {}
    for weight, ranked in ((1.0 - alpha, fts), (alpha, vector)):
        if weight <= 0:
            continue
        for rank, (chunk_id, _score) in enumerate(ranked, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * (RRF_K + 1) / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _filter_clauses(session: Session, filters: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    postgres = session.get_bind().dialect.name == "postgresql"
    clauses: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        if not isinstance(value, _FILTER_TYPES):
            raise SearchError(
                f"Filter '{key}' has a {type(value).__name__} value; filters compare one "
                "str, int, float or bool value for equality."
            )
        if key == "source":
            clauses.append(Document.source == str(value))
        elif postgres:
            # jsonb containment: exact JSON equality, types included (a GIN index on
            # documents.meta would serve it; the table is small enough to scan for now).
            clauses.append(type_coerce(Document.meta, JSONB).contains({key: value}))
        elif not key or '"' in key or "\\" in key:
            raise SearchError(f"Filter key {key!r} is empty or contains a quote or backslash.")
        else:
            clauses.append(func.json_extract(Document.meta, f'$."{key}"') == value)
    return clauses


def _terms(query: str) -> list[str]:
    """The query's distinct words, lower-cased, stopwords dropped unless nothing is left."""
    words = list(dict.fromkeys(_WORD.findall(query.lower())))
    return ([w for w in words if w not in _STOPWORDS] or words)[:MAX_TERMS]


def _fts_candidates(
    session: Session, query: str, clauses: list[ColumnElement[bool]], limit: int
) -> list[tuple[int, float]]:
    terms = _terms(query)
    if not terms:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # A literal, not a bound parameter: the planner uses ix_chunks_tsv only when the
        # expression is exactly the index's to_tsvector('english', text).
        english: ColumnElement[Any] = literal_column("'english'::regconfig")
        vector = func.to_tsvector(english, Chunk.text)
        ts_query = func.websearch_to_tsquery(english, " or ".join(terms))
        score: ColumnElement[float] = func.ts_rank_cd(vector, ts_query)
        stmt = select(Chunk.id, score).where(vector.op("@@")(ts_query))
    else:
        fts = table("chunks_fts", column("rowid", Integer))
        # bm25 is lower-is-better; negate it so fts_score is higher-is-better everywhere.
        score = -func.bm25(literal_column("chunks_fts"))
        match = " OR ".join(f'"{term}"' for term in terms)  # \w+ terms hold no quotes
        stmt = (
            select(Chunk.id, score)
            .select_from(fts)
            .join(Chunk, Chunk.id == fts.c.rowid)
            .where(literal_column("chunks_fts").op("MATCH")(match))
        )
    stmt = stmt.join(Document, Document.id == Chunk.document_id).where(*clauses)
    rows = session.execute(stmt.order_by(score.desc(), Chunk.id).limit(limit))
    return [(int(chunk_id), float(value)) for chunk_id, value in rows]


def _vector_candidates(
    session: Session,
    query: str,
    embedder: Embedder,
    clauses: list[ColumnElement[bool]],
    limit: int,
    query_vector: npt.NDArray[np.float32] | None,
) -> list[tuple[int, float]]:
    # NullType: the driver's bytes as they come; LargeBinary's per-row result processing
    # costs about as much as reading the rows (measured: 10k chunks, ~90 ms -> ~55 ms).
    stmt = select(Chunk.id, type_coerce(Chunk.embedding, NullType)).where(
        Chunk.embedder == embedder.name, Chunk.embedding.is_not(None)
    )
    if clauses:
        stmt = stmt.join(Document, Document.id == Chunk.document_id).where(*clauses)
    size = embedder.dim * 4
    result: Any = session.connection().execute(stmt).all()
    rows: list[tuple[int, bytes]] = [(cid, blob) for cid, blob in result if len(blob) == size]
    if not rows:
        _explain_no_vectors(session, embedder)
        return []
    ids = np.array([cid for cid, _ in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join([blob for _, blob in rows]), dtype="<f4")
    if query_vector is None:
        query_vector = embedder.embed([query])[0]
    scores = matrix.reshape(len(rows), embedder.dim) @ query_vector
    top = np.argpartition(-scores, limit - 1)[:limit] if len(rows) > limit else np.arange(len(rows))
    order = sorted(top.tolist(), key=lambda i: (-scores[i], ids[i]))
    return [(int(ids[i]), float(scores[i])) for i in order]


def _explain_no_vectors(session: Session, embedder: Embedder) -> None:
    """Log why vector search found nothing when chunks from other embedders exist."""
    others = {name: n for name, n in chunk_embedders(session).items() if name != embedder.name}
    if others:
        logger.warning(
            "No chunks are embedded with '%s' (stored: %s); vector search skipped. Search "
            "with the embedder the documents were ingested with, or re-ingest them.",
            embedder.name,
            ", ".join(f"{name} ({n})" for name, n in sorted(others.items(), key=str)),
        )


def _hits(
    session: Session,
    fused: list[tuple[int, float]],
    fts: dict[int, float],
    vec: dict[int, float],
) -> list[SearchHit]:
    if not fused:
        return []
    stmt = (
        select(
            Chunk.id,
            Chunk.document_id,
            Chunk.text,
            Chunk.meta,
            Chunk.ordinal,
            Document.source,
            Document.title,
            Document.meta,
        )
        .join(Document, Document.id == Chunk.document_id)
        .where(Chunk.id.in_([chunk_id for chunk_id, _ in fused]))
    )
    rows = {row[0]: row for row in session.execute(stmt)}
    hits = []
    for chunk_id, score in fused:
        _, document_id, text, chunk_meta, ordinal, source, title, meta = rows[chunk_id]
        hits.append(
            SearchHit(
                chunk_id=chunk_id,
                document_id=document_id,
                text=text,
                score=score,
                fts_score=fts.get(chunk_id),
                vector_score=vec.get(chunk_id),
                source=source,
                title=title,
                meta=meta,
                chunk_meta=chunk_meta,
                ordinal=ordinal,
            )
        )
    return hits
