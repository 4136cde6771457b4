"""taskloom agents: the agent contract, the four roles, the registry and plugin loading.

Importing this package is cheap: it never imports torch or transformers; model-backed agents
load their models in ``warm_up``.
"""

from agents._contract import Agent, Role, RunContext
from agents._errors import (
    AgentContractError,
    AgentError,
    AgentNotFoundError,
    ImportNotAllowedError,
    PluginError,
    StepCancelledError,
)
from agents._imports import DEFAULT_ALLOWLIST, import_object, object_path
from agents._registry import ENTRY_POINT_GROUP, AgentRegistry, default_registry, register
from agents._validation import validate_agent_class
from knowledge import TaskloomError

__all__ = [
    "DEFAULT_ALLOWLIST",
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentContractError",
    "AgentError",
    "AgentNotFoundError",
    "AgentRegistry",
    "ImportNotAllowedError",
    "PluginError",
    "Role",
    "RunContext",
    "StepCancelledError",
    "TaskloomError",
    "default_registry",
    "import_object",
    "object_path",
    "register",
    "validate_agent_class",
]
