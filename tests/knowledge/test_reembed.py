"""Re-embedding stored chunks with another embedder, and search with a precomputed vector."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge import (
    Database,
    HashEmbedder,
    SearchError,
    add_document,
    chunk_embedders,
    reembed_chunks,
    search,
)

OLD, NEW, OTHER = HashEmbedder(64), HashEmbedder(64, ngram=0), HashEmbedder(32)
TEXTS = ["Freeze a lost card in the app.", "Exchange rates follow the market.", "Close account."]


def fill(database: Database) -> None:
    with database.transaction() as session:
        for i, text in enumerate(TEXTS):
            add_document(session, text, source=f"s{i}", title=f"t{i}", embedder=OLD)
        add_document(session, "Top up by bank transfer.", source="x", title="x", embedder=OTHER)


def test_reembedding_replaces_other_vectors_and_is_idempotent(database: Database) -> None:
    fill(database)

    with database.transaction() as session:
        assert reembed_chunks(session, NEW, replace=[OLD.name], batch_size=2) == len(TEXTS)
        assert chunk_embedders(session) == {NEW.name: len(TEXTS), OTHER.name: 1}
        assert reembed_chunks(session, NEW, replace=[OLD.name]) == 0
        assert reembed_chunks(session, NEW) == 1  # None: every other embedder's chunks
        assert chunk_embedders(session) == {NEW.name: len(TEXTS) + 1}

    with database.session() as session:
        hits = search(session, "lost card", NEW, k=1, alpha=1.0)
    assert hits[0].title == "t0"
    assert hits[0].vector_score == pytest.approx(
        float(NEW.embed([TEXTS[0]])[0] @ NEW.embed(["lost card"])[0]), abs=1e-6
    )


def test_search_takes_a_precomputed_query_vector(database: Database) -> None:
    fill(database)
    query = "exchange rates"
    vector = OLD.embed([query])[0]

    with database.session() as session:
        given = search(session, query, OLD, k=3, query_vector=vector)
        embedded = search(session, query, OLD, k=3)
        opposite = search(session, query, OLD, k=3, alpha=1.0, query_vector=-vector)
        with pytest.raises(SearchError, match=r"shape \(32,\).*\(64,\)"):
            search(session, query, OLD, query_vector=np.zeros(32, dtype=np.float32))

    assert given == embedded
    assert opposite[0].title != embedded[0].title  # the given vector, not the text, is used
