"""Dataset versions: numbered, content-hashed snapshots of an agent's labelled examples.

The hash identifies the content, so snapshotting the same examples twice returns the version
that exists instead of making a second one; a fine-tuning job can therefore snapshot on every
round and only get a new version when the labels changed. The examples themselves live where
the caller keeps them (``meta`` can say where): the table records their identity and size.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._dto import Dataset, DatasetIn
from knowledge._errors import KnowledgeError
from knowledge._redact import redactor_for

__all__ = ["dataset_hash", "get_dataset", "snapshot_dataset"]

# Concurrent snapshots of one agent can pick the same next version; the loser retries.
ATTEMPTS = 3


def _canonical(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, UTF-8, no NaN (it is not JSON)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def dataset_hash(examples: Iterable[dict[str, Any]], label_set: Sequence[str]) -> str:
    """The content hash of a dataset: hex sha256, independent of example and key order.

    The hashed text is the canonical JSON of ``label_set`` (its order matters: it maps labels
    to a model's outputs) and then the canonical JSON of each example, sorted, one per line.

    Args:
        examples: The examples.
        label_set: The labels, in model order.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256(_canonical(list(label_set)).encode())
    for line in sorted(_canonical(example) for example in examples):
        digest.update(b"\n")
        digest.update(line.encode())
    return digest.hexdigest()


def _by_hash(session: Session, agent: str, content_hash: str) -> orm.Dataset | None:
    return session.scalar(
        select(orm.Dataset).where(
            orm.Dataset.agent == agent, orm.Dataset.content_hash == content_hash
        )
    )


def snapshot_dataset(session: Session, dataset: DatasetIn) -> Dataset:
    """Record a dataset version for these examples, or return the one that has them.

    Versions count up from 1 per agent. The caller commits.

    Args:
        session: The session to write in.
        dataset: The examples, label set and metadata.

    Returns:
        The new version, or the existing one with the same content hash.
    """
    content_hash = dataset_hash(dataset.examples, dataset.label_set)
    meta = redactor_for(session).json(dataset.meta)
    for _ in range(ATTEMPTS):
        existing = _by_hash(session, dataset.agent, content_hash)
        if existing is not None:
            return Dataset.model_validate(existing)
        latest = session.scalar(
            select(func.max(orm.Dataset.version)).where(orm.Dataset.agent == dataset.agent)
        )
        row = orm.Dataset(
            agent=dataset.agent,
            version=(latest or 0) + 1,
            content_hash=content_hash,
            size=len(dataset.examples),
            label_set=dataset.label_set,
            meta=meta,
            created_at=time.time(),
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue  # another process took this version (or this content) first
        return Dataset.model_validate(row)
    raise KnowledgeError(
        f"Could not record a dataset version for agent '{dataset.agent}': {ATTEMPTS} "
        "concurrent snapshots took each version first. Retry the snapshot."
    )


def get_dataset(session: Session, agent: str, version: int | None = None) -> Dataset | None:
    """Return a dataset version of ``agent`` (the latest when ``version`` is None), or None.

    Args:
        session: A session.
        agent: The agent.
        version: The version number.

    Returns:
        The dataset version, or None if there is no such version.
    """
    query = select(orm.Dataset).where(orm.Dataset.agent == agent)
    if version is not None:
        query = query.where(orm.Dataset.version == version)
    row = session.scalar(query.order_by(orm.Dataset.version.desc()).limit(1))
    return None if row is None else Dataset.model_validate(row)
