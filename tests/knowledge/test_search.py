"""Hybrid search on both backends, over help articles embedded with the real MiniLM model."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from knowledge import (
    Database,
    HashEmbedder,
    MiniLMEmbedder,
    SearchError,
    SearchHit,
    add_document,
    search,
)
from knowledge._search import RRF_K, fuse

# (source, title, category, views, popular, text). No text uses the words "moved", "house" or
# "recently" (nor their stems): a query made of them can only be found by meaning.
ARTICLES = [
    ("help/password", "Reset your password", "security", 900, True,
     "To reset your password, open Settings, choose Security and tap Forgot password. "
     "We email you a link that expires in 30 minutes."),
    ("help/lost-card", "Lost or stolen card", "cards", 1200, True,
     "If your card is lost or stolen, freeze it in the app straight away and order a "
     "replacement. The new card arrives in 3 to 5 working days."),
    ("help/fx", "Exchange rates", "payments", 300, False,
     "We convert foreign currency payments at the Visa rate plus a 0.5% fee on weekends."),
    ("help/top-up", "Top up by bank transfer", "payments", 450, False,
     "Add money to your account by bank transfer using the IBAN shown under Account details. "
     "Transfers usually arrive within one working day."),
    ("help/declined", "Declined payments", "cards", 800, True,
     "A payment can be declined when the merchant is blocked, the balance is too low or the "
     "card is frozen."),
    ("help/refunds", "Refunds", "payments", 700, True,
     "Refunds from merchants take up to 10 days to appear. If it has been longer, contact "
     "the merchant first."),
    ("help/atm", "Cash withdrawal fees", "fees", 650, False,
     "ATM withdrawals are free up to 200 EUR per month; after that a 2% fee applies."),
    ("help/address", "Change your address", "profile", 120, False,
     "Update your home address under Profile, Personal details. We may ask for proof such as "
     "a utility bill."),
    ("help/close", "Close your account", "profile", 90, False,
     "To close your account, withdraw your remaining balance and then choose Close account "
     "in Settings."),
    ("help/verify", "Verify your identity", "security", 400, False,
     "We need a photo of your passport or ID card and a selfie to verify your identity."),
    ("help/contactless", "Contactless limits", "cards", 220, False,
     "Contactless payments are limited to 50 EUR each; use chip and PIN above that."),
    ("help/virtual", "Virtual cards", "cards", 310, False,
     "Create a disposable virtual card for online shopping; its number changes after every "
     "purchase."),
    ("help/direct-debit", "Direct debits", "payments", 150, False,
     "Set up a direct debit by giving the company your account number and sort code."),
    ("help/pending", "Pending transactions", "payments", 500, False,
     "Card payments show as pending until the merchant completes them, usually within 7 days."),
    ("help/2fa", "Two-factor authentication", "security", 260, False,
     "Turn on two-factor authentication to get a code by text message each time you sign in."),
    ("help/wallets", "Apple Pay and Google Pay", "cards", 340, False,
     "Add your card to Apple Pay or Google Pay from the card screen in the app."),
    ("help/statements", "Account statements", "profile", 80, False,
     "Download monthly statements as PDF from the Statements section."),
    ("help/savings", "Savings interest", "savings", 60, False,
     "Savings vaults earn 2.1% interest per year, paid monthly."),
    ("help/fraud", "Fraud alerts", "security", 720, True,
     "If you see a transaction you don't recognise, report it as fraud and we will block "
     "the card."),
    ("help/chip-error", "Card reader error E4031", "cards", 40, False,
     "Error E4031 means the terminal could not read the chip. Try again or pay contactless."),
]  # fmt: skip


class CachedEmbedder:
    """The real model, remembering vectors so each test does not embed the corpus again."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.cache: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])


@pytest.fixture(scope="module")
def minilm() -> CachedEmbedder:
    embedder = CachedEmbedder(MiniLMEmbedder())
    embedder.embed([article[-1] for article in ARTICLES])
    return embedder


@pytest.fixture
def kb(database: Database, minilm: CachedEmbedder) -> Database:
    with database.transaction() as session:
        for source, title, category, views, popular, text in ARTICLES:
            meta = {"category": category, "views": views, "popular": popular}
            add_document(session, text, source=source, title=title, meta=meta, embedder=minilm)
    return database


def find(database: Database, query: str, embedder: object, **options: object) -> list[SearchHit]:
    with database.session() as session:
        return search(session, query, embedder, **options)  # type: ignore[arg-type]


def titles(hits: list[SearchHit]) -> list[str]:
    return [hit.title for hit in hits]


# ---------------------------------------------------------------------------- retrieval


def test_an_exact_token_is_found_by_full_text(kb: Database, minilm: CachedEmbedder) -> None:
    hybrid = find(kb, "E4031", minilm, k=3)
    keyword = find(kb, "E4031", minilm, k=3, alpha=0.0)

    assert hybrid[0].title == "Card reader error E4031"
    assert hybrid[0].fts_score is not None
    assert hybrid[0].fts_score > 0
    assert [h.title for h in keyword] == ["Card reader error E4031"]  # only FTS matches
    assert keyword[0].vector_score is None


def test_a_paraphrase_with_no_shared_word_is_found_by_meaning(
    kb: Database, minilm: CachedEmbedder
) -> None:
    hits = find(kb, "I moved house recently", minilm, k=3)

    assert hits[0].title == "Change your address"
    assert all(hit.fts_score is None for hit in hits)  # nothing matched the words
    assert hits[0].vector_score is not None
    assert hits[0].vector_score > 0.3
    assert find(kb, "I moved house recently", minilm, alpha=0.0) == []


def test_hybrid_ranks_a_chunk_found_both_ways_first(kb: Database, minilm: CachedEmbedder) -> None:
    hits = find(kb, "freeze a stolen card", minilm, k=5)

    top = hits[0]
    assert top.title == "Lost or stolen card"
    assert top.fts_score is not None
    assert top.vector_score is not None
    assert top.score == pytest.approx(1.0)  # first in both lists
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_hits_carry_their_provenance(kb: Database, minilm: CachedEmbedder) -> None:
    (hit,) = find(kb, "Savings vaults interest", minilm, k=1)

    assert hit.source == "help/savings"
    assert hit.meta == {"category": "savings", "views": 60, "popular": False}
    assert hit.text.startswith("Savings vaults earn 2.1% interest")
    assert (hit.ordinal, hit.chunk_meta) == (0, {})
    assert hit.document_id > 0
    assert hit.chunk_id > 0


def test_alpha_one_is_pure_vector_search(kb: Database, minilm: CachedEmbedder) -> None:
    hits = find(kb, "refund from a merchant", minilm, k=4, alpha=1.0)

    assert hits[0].title == "Refunds"
    assert all(hit.fts_score is None for hit in hits)
    vectors = [hit.vector_score for hit in hits]
    assert vectors == sorted(vectors, reverse=True)  # type: ignore[type-var]


# ---------------------------------------------------------------------------- filters and k


def test_filters_restrict_both_lists_to_matching_documents(
    kb: Database, minilm: CachedEmbedder
) -> None:
    hits = find(kb, "card payment declined", minilm, k=20, filters={"category": "cards"})

    cards = {a[1] for a in ARTICLES if a[2] == "cards"}
    assert set(titles(hits)) == cards  # every cards article, nothing else
    assert hits[0].title == "Declined payments"


def test_filters_compare_typed_values_and_source(kb: Database, minilm: CachedEmbedder) -> None:
    popular_cards = find(kb, "card", minilm, k=20, filters={"category": "cards", "popular": True})
    by_views = find(kb, "card", minilm, k=20, filters={"views": 120})
    views_as_text = find(kb, "card", minilm, k=20, filters={"views": "120"})
    by_source = find(kb, "card", minilm, k=20, filters={"source": "help/fx"})

    assert set(titles(popular_cards)) == {"Lost or stolen card", "Declined payments"}
    assert titles(by_views) == ["Change your address"]
    assert views_as_text == []  # 120 is stored as a number, not the string "120"
    assert titles(by_source) == ["Exchange rates"]
    assert find(kb, "card", minilm, filters={"category": "mortgages"}) == []


@pytest.mark.parametrize(
    ("filters", "message"),
    [({"tags": ["a"]}, "has a list value"), ({"x": None}, "has a NoneType value")],
)
def test_malformed_filters_are_clear_errors(
    kb: Database, minilm: CachedEmbedder, filters: dict[str, object], message: str
) -> None:
    with pytest.raises(SearchError, match=message):
        find(kb, "card", minilm, filters=filters)


def test_k_limits_the_hits(kb: Database, minilm: CachedEmbedder) -> None:
    assert len(find(kb, "card", minilm, k=3)) == 3
    assert len(find(kb, "card", minilm, k=100)) == len(ARTICLES)  # every chunk, once
    with pytest.raises(SearchError, match="k must be at least 1"):
        find(kb, "card", minilm, k=0)
    with pytest.raises(SearchError, match="alpha must be between 0"):
        find(kb, "card", minilm, alpha=1.5)


# ---------------------------------------------------------------------------- edge cases


def test_an_empty_knowledge_base_finds_nothing(database: Database) -> None:
    assert find(database, "anything at all", HashEmbedder()) == []


def test_a_blank_query_finds_nothing(kb: Database, minilm: CachedEmbedder) -> None:
    assert find(kb, "   ", minilm) == []


@pytest.mark.parametrize(
    "query",
    [
        '"lost card',
        "card*",
        "NEAR(lost card, 2)",
        "lost AND OR NOT card",
        "-card ^lost",
        "category:cards",
        "'; DROP TABLE chunks; --",
        "(((",
        "*",
        "a the of",
    ],
)
def test_query_syntax_in_user_input_is_plain_text(
    kb: Database, minilm: CachedEmbedder, query: str
) -> None:
    hits = find(kb, query, minilm, k=3)

    assert len(hits) == 3  # the vector list always answers; nothing raised
    if "lost" in query:
        assert hits[0].title == "Lost or stolen card"


def test_chunks_from_another_embedder_are_not_compared(
    kb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="knowledge._search"):
        hits = find(kb, "stolen card", HashEmbedder(), k=3)

    assert hits[0].title == "Lost or stolen card"  # full text still answers
    assert all(hit.vector_score is None for hit in hits)
    assert "No chunks are embedded with 'hash-256-3' (stored: all-MiniLM-L6-v2 (20))" in (
        caplog.text
    )


# ---------------------------------------------------------------------------- fusion


def test_fusion_puts_an_id_found_by_both_lists_above_single_list_leaders() -> None:
    fts = [(1, 9.0), (2, 5.0), (3, 1.0)]
    vector = [(4, 0.9), (3, 0.8), (5, 0.1)]

    fused = dict(fuse(fts, vector, alpha=0.5))

    assert max(fused, key=fused.__getitem__) == 3
    assert fused[1] == pytest.approx(0.5)  # first in one list at weight 0.5
    # Third in full text, second in vector: the sum of both reciprocal ranks.
    assert fused[3] == pytest.approx(0.5 * (RRF_K + 1) * (1 / (RRF_K + 3) + 1 / (RRF_K + 2)))


def test_fusion_weights_follow_alpha_and_ties_break_by_id() -> None:
    fts = [(1, 3.0)]
    vector = [(2, 0.9)]

    assert fuse(fts, vector, alpha=0.5) == [(1, 0.5), (2, 0.5)]
    assert [cid for cid, _ in fuse(fts, vector, alpha=0.8)] == [2, 1]
    assert [cid for cid, _ in fuse(fts, vector, alpha=0.2)] == [1, 2]
    assert fuse(fts, vector, alpha=1.0) == [(2, 1.0)]  # a list weighted 0 adds nothing
    assert fuse([], [], alpha=0.5) == []
