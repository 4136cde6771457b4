"""Embedders: the hashed fake's properties and the real MiniLM model on a few sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge import Embedder, EmbedderError, HashEmbedder, MiniLMEmbedder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# ---------------------------------------------------------------------------- HashEmbedder


def test_hash_embedder_gives_unit_float32_rows_of_its_dimension() -> None:
    embedder = HashEmbedder(dim=64)
    vectors = embedder.embed(["reset my password", "card arrived damaged", "x"])

    assert isinstance(embedder, Embedder)
    assert vectors.shape == (3, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_hash_embedder_is_deterministic_across_instances() -> None:
    texts = ["Where is my refund?", "Top up with Apple Pay"]

    first = HashEmbedder().embed(texts)
    second = HashEmbedder().embed(texts)

    np.testing.assert_array_equal(first, second)
    assert HashEmbedder().name == "hash-256-3"
    assert HashEmbedder(dim=128).name != HashEmbedder().name  # different spaces


def test_hash_embedder_places_lexically_similar_texts_closer() -> None:
    query, near, far = HashEmbedder().embed(
        ["refund for a card payment", "card payment refunds", "exchange rate on weekends"]
    )

    assert cosine(query, near) > 0.5
    assert cosine(query, near) > cosine(query, far) + 0.3


def test_hash_embedder_gives_a_zero_row_for_text_without_words() -> None:
    vectors = HashEmbedder(dim=16).embed(["", "  ?! ", "ok"])

    assert not vectors[:2].any()
    assert np.linalg.norm(vectors[2]) == pytest.approx(1.0)
    assert HashEmbedder().embed([]).shape == (0, 256)


def test_hash_embedder_rejects_a_bad_dimension() -> None:
    with pytest.raises(ValueError, match="dim >= 1"):
        HashEmbedder(dim=0)


# ---------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder(batch_size=2)  # several batches even for a few sentences
    embedder.warm_up()
    return embedder


def test_minilm_construction_loads_nothing() -> None:
    embedder = MiniLMEmbedder()

    assert embedder._model is None
    assert (embedder.name, embedder.dim) == ("all-MiniLM-L6-v2", 384)
    assert MiniLMEmbedder("/models/support-v3").name == "minilm:support-v3"


def test_minilm_embeds_normalised_384_dimension_vectors(minilm: MiniLMEmbedder) -> None:
    texts = ["How do I reset my password?", "My card was stolen", "What is the fee?"]

    vectors = minilm.embed(texts)

    assert isinstance(minilm, Embedder)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_batching_and_padding_do_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence about exchange rates and weekend fees", "mid one"]

    together = minilm.embed(texts)  # batches of 2: padding differs from embedding one by one
    alone = np.concatenate([minilm.embed([t]) for t in texts])

    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_minilm_places_paraphrases_closer_than_unrelated_sentences(
    minilm: MiniLMEmbedder,
) -> None:
    lost, stolen, rate, address = minilm.embed(
        [
            "I lost my bank card yesterday",
            "Somebody stole my debit card",
            "What exchange rate do you use for euros?",
            "How do I update my home address?",
        ]
    )

    assert cosine(lost, stolen) > cosine(lost, rate) + 0.2
    assert cosine(lost, stolen) > cosine(lost, address) + 0.2


def test_minilm_from_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    embedder = MiniLMEmbedder(tmp_path / "nothing-here")

    with pytest.raises(EmbedderError, match="Could not load the embedding model from"):
        embedder.embed(["hello"])
