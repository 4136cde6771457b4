"""taskloom agents: the agent contract, the four roles, the registry, plugin loading and
model-backed agents for every role (the text classifier, entity extractor, retriever,
policy agent and action selector, with typed actions) and what they share (safetensors
artifacts, calibration, int8 quantization).

Importing this package is cheap: it never imports torch or transformers; model-backed agents
load their models in ``warm_up``.
"""

from agents._actions import (
    Action,
    ActionDefinitionError,
    ActionError,
    ActionFailedError,
    action,
)
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
from agents._policy import PolicyAgent, PolicyInput, PolicyOutput, PolicyRule, policy_text
from agents._quantize import QuantizationReport, quantize_artifact
from agents._registry import ENTRY_POINT_GROUP, AgentRegistry, default_registry, register
from agents._retriever import (
    Evidence,
    Retriever,
    RetrieverIndexError,
    RetrieverInput,
    RetrieverOutput,
)
from agents._selector import ActionInput, ActionOutput, ActionSelector
from agents._validation import validate_agent_class
from knowledge import TaskloomError

__all__ = [
    "DEFAULT_ALLOWLIST",
    "ENTRY_POINT_GROUP",
    "Action",
    "ActionDefinitionError",
    "ActionError",
    "ActionFailedError",
    "ActionInput",
    "ActionOutput",
    "ActionSelector",
    "Agent",
    "AgentContractError",
    "AgentError",
    "AgentNotFoundError",
    "AgentRegistry",
    "ClassifierInput",
    "ClassifierOutput",
    "Entity",
    "EntityExtractor",
    "Evidence",
    "ExtractorInput",
    "ExtractorOutput",
    "ImportNotAllowedError",
    "ModelAgent",
    "ModelArtifactError",
    "PluginError",
    "PolicyAgent",
    "PolicyInput",
    "PolicyOutput",
    "PolicyRule",
    "QuantizationReport",
    "Retriever",
    "RetrieverIndexError",
    "RetrieverInput",
    "RetrieverOutput",
    "Role",
    "RunContext",
    "StepCancelledError",
    "TaskloomError",
    "TextClassifier",
    "action",
    "default_registry",
    "fit_temperature",
    "import_object",
    "object_path",
    "policy_text",
    "quantize_artifact",
    "register",
    "save_artifact",
    "validate_agent_class",
]
