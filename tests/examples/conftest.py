"""The knowledge tests' ``database_url`` fixture (a new, empty SQLite file, and a new
PostgreSQL database when configured), reused by the examples' tests that run on both.

Test folders have no ``__init__.py`` (see STYLE.md), so the fixtures are loaded from their
file rather than imported as a module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).parents[1] / "knowledge" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("_taskloom_example_db_fixtures", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
_FIXTURES = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_FIXTURES)

database_url = _FIXTURES.database_url
postgres_server = _FIXTURES.postgres_server
