"""taskloom agents: the agent contract, the four roles, the registry, plugin loading and
model-backed agents (artifacts, the text classifier, calibration).

Importing this package is cheap: it never imports torch or transformers; model-backed agents
load their models in ``warm_up``.
"""

from agents._artifact import save_artifact
from agents._calibration import fit_temperature
from agents._classifier import ClassifierInput, ClassifierOutput, TextClassifier
from agents._contract import Agent, Role, RunContext
from agents._errors import (
    AgentContractError,
    AgentError,
    AgentNotFoundError,
    ImportNotAllowedError,
    ModelArtifactError,
    PluginError,
    StepCancelledError,
)
from agents._extractor import Entity, EntityExtractor, ExtractorInput, ExtractorOutput
from agents._imports import DEFAULT_ALLOWLIST, import_object, object_path
from agents._model import ModelAgent
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
    "ClassifierInput",
    "ClassifierOutput",
    "Entity",
    "EntityExtractor",
    "ExtractorInput",
    "ExtractorOutput",
    "ImportNotAllowedError",
    "ModelAgent",
    "ModelArtifactError",
    "PluginError",
    "Role",
    "RunContext",
    "StepCancelledError",
    "TaskloomError",
    "TextClassifier",
    "default_registry",
    "fit_temperature",
    "import_object",
    "object_path",
    "register",
    "save_artifact",
    "validate_agent_class",
]
