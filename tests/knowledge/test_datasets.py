"""Dataset versions: a stable content hash, versions per agent, no duplicate for equal content."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from knowledge import Database, DatasetIn, dataset_hash, get_dataset, snapshot_dataset
from knowledge import _models as orm

LABELS = ["balance", "card_lost", "refund"]
EXAMPLES = [
    {"text": "where is my refund", "label": "refund"},
    {"text": "I lost my card", "label": "card_lost"},
    {"text": "how much is on my account", "label": "balance", "weight": 0.5},
]
# Pinned: the hash identifies a dataset across releases, so its definition must not drift.
PINNED = "4b86864df0330dfa8c2a5f500e0684205d1e00094ef280e0e33b9c3c16e595b8"


def dataset_in(examples: list[dict[str, object]] = EXAMPLES, agent: str = "intent") -> DatasetIn:
    return DatasetIn.model_validate(
        {"agent": agent, "examples": examples, "label_set": LABELS, "meta": {"source": "test"}}
    )


def test_the_hash_ignores_example_and_key_order_but_not_content() -> None:
    base = dataset_hash(EXAMPLES, LABELS)
    shuffled = [dict(reversed(list(e.items()))) for e in reversed(EXAMPLES)]

    assert len(base) == 64
    assert int(base, 16) >= 0
    assert dataset_hash(shuffled, LABELS) == base
    assert dataset_hash(EXAMPLES, list(reversed(LABELS))) != base
    assert dataset_hash([*EXAMPLES, EXAMPLES[0]], LABELS) != base
    assert dataset_hash([{**EXAMPLES[0], "label": "balance"}, *EXAMPLES[1:]], LABELS) != base
    assert dataset_hash([{"text": "é"}], LABELS) != dataset_hash([{"text": "e"}], LABELS)


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
EXAMPLE = st.dictionaries(st.text(max_size=5), JSON_LEAF | st.lists(JSON_LEAF, max_size=3))


@given(st.lists(EXAMPLE, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_order_of_the_same_examples_hashes_the_same(
    examples: list[dict[str, object]], rng: random.Random
) -> None:
    shuffled = [dict(rng.sample(list(e.items()), len(e))) for e in examples]
    rng.shuffle(shuffled)

    assert dataset_hash(shuffled, LABELS) == dataset_hash(examples, LABELS)


def test_the_hash_is_pinned() -> None:
    assert dataset_hash(EXAMPLES, LABELS) == PINNED


def test_nan_is_not_json_and_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        dataset_hash([{"x": float("nan")}], LABELS)


def test_snapshots_count_up_per_agent_and_reuse_equal_content(database: Database) -> None:
    with database.transaction() as session:
        first = snapshot_dataset(session, dataset_in())
        second = snapshot_dataset(session, dataset_in(EXAMPLES[:2]))
        again = snapshot_dataset(session, dataset_in(list(reversed(EXAMPLES))))
        other = snapshot_dataset(session, dataset_in(agent="sentiment"))

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert again == first
    assert (first.size, second.size) == (3, 2)
    assert first.content_hash == dataset_hash(EXAMPLES, LABELS)
    assert (first.label_set, first.meta) == (LABELS, {"source": "test"})
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(orm.Dataset)) == 3
        assert get_dataset(session, "intent") == second
        assert get_dataset(session, "intent", 1) == first
        assert get_dataset(session, "intent", 7) is None
        assert get_dataset(session, "nobody") is None
