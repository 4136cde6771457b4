"""taskloom's knowledge base: what agents saw, predicted and did, and what people said.

For now this holds the run records the engine writes and the ``RunStore`` interface with an
in-memory implementation; the SQL store builds on the same records.
"""

from knowledge._errors import KnowledgeError, RunNotFoundError, TaskloomError
from knowledge._records import (
    RouteDecision,
    RunRecord,
    RunStatus,
    StepFailure,
    StepRecord,
    StepStatus,
)
from knowledge._runstore import MemoryRunStore, RunStore

__all__ = [
    "KnowledgeError",
    "MemoryRunStore",
    "RouteDecision",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "StepFailure",
    "StepRecord",
    "StepStatus",
    "TaskloomError",
]
