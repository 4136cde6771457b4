"""The knowledge tests' ``database_url`` fixture (a new, empty SQLite file, and a new
PostgreSQL database when configured), reused by the examples' tests that run on both; and
the market monitor's knowledge base (``db``) and ``add_alert`` shared by its test modules.

Test folders have no ``__init__.py`` (see STYLE.md), so the fixtures are loaded from their
file rather than imported as a module.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "knowledge" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("_taskloom_example_db_fixtures", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
_FIXTURES = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_FIXTURES)

database_url = _FIXTURES.database_url
postgres_server = _FIXTURES.postgres_server

# --------------------------------------------------------------------- the market monitor
# Its tests are split over test_market_monitor*.py by area; these are what several share.
# (test_market_monitor_ops.py and _backends.py define a ``db`` of their own.)

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from market_monitor import tables  # noqa: E402
from market_monitor.entities import Entity, store_entities  # noqa: E402
from market_monitor.flow import DECISION_AGENT, DECISIONS  # noqa: E402
from market_monitor.tables import Alert  # noqa: E402

from knowledge import Database, PredictionIn, record_predictions  # noqa: E402

ENTITIES = [
    Entity("TSLA", "Tesla", ("Tesla",), "Consumer Discretionary"),
    Entity("GM", "General Motors", ("General Motors", "GM"), "Consumer Discretionary"),
    Entity("F", "Ford", ("Ford",), "Consumer Discretionary"),
    Entity("AAPL", "Apple", ("Apple",), "Information Technology"),
    Entity("GS", "Goldman Sachs", ("Goldman Sachs",), "Financials"),
    Entity("GLD", "Goldman Mining", ("Goldman",), "Materials"),
]


@pytest.fixture(scope="session")
def monitor_entities() -> list[Entity]:
    """The entities of ``db``'s gazetteer: two sectors with peers, and a shared word."""
    return ENTITIES


@pytest.fixture(scope="session")
def monitor_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base file with the monitor's tables and a small gazetteer, made once:
    migrating a fresh SQLite file for every test would cost most of the tests' time."""
    path = tmp_path_factory.mktemp("template") / "kb.db"
    database = Database(f"sqlite:///{path}")
    tables.create_tables(database)
    store_entities(database, ENTITIES, source="test")
    database.dispose()
    return path


@pytest.fixture
def db(monitor_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A copy of the template knowledge base of its own."""
    shutil.copyfile(monitor_template, tmp_path / "kb.db")
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    yield database
    database.dispose()


def _add_alert(
    database: Database,
    entity: str,
    at: float,
    *,
    direction: str = "bearish",
    decided_by: str = "model",
    decided: bool = True,
) -> int:
    """An alert in the outbox with (unless ``decided`` is false) its alert_policy decision."""
    with database.transaction() as session:
        prediction_id = None
        if decided:
            (record,) = record_predictions(
                session,
                [
                    PredictionIn(
                        agent=DECISION_AGENT,
                        model_version="v1",
                        input={"text": f"{entity} news"},
                        output={"decision": "alert"},
                        label="alert",
                        confidence=0.7,
                        probabilities=[0.7, 0.3],
                        label_set=DECISIONS,
                    )
                ],
            )
            prediction_id = record.id
        alert = Alert(
            dedup_key=f"{entity}:{at}",
            entity=entity,
            direction=direction,
            published_at=at,
            item_id=f"tweet-{entity}-{at}",
            run_id="run-1",
            prediction_id=prediction_id,
            decided_by=decided_by,
            mentions=6,
            surge=3.0,
            summary=f"{entity} {direction}",
            status="pending",
            attempts=0,
            last_error="",
            created_at=at,
        )
        session.add(alert)
        session.flush()
        return alert.id


@pytest.fixture(scope="session")
def add_alert() -> Callable[..., int]:
    """``add_alert(database, entity, at, *, direction, decided_by, decided)``: see
    ``_add_alert``; a fixture because test modules cannot import each other."""
    return _add_alert
