"""The root of taskloom's exception tree.

The root lives here because ``knowledge`` is the one package every other package may import.
Each branch is defined in the package it belongs to and re-exported from it::

    TaskloomError                       knowledge
    ├── KnowledgeError                  knowledge
    │   └── RunNotFoundError
    ├── AgentError                      agents
    │   ├── AgentContractError          an agent class or its output breaks the contract
    │   ├── AgentNotFoundError          an unknown agent name
    │   ├── PluginError                 a plugin failed to load or validate
    │   │   └── ImportNotAllowedError   an import path outside the allowlist
    │   └── StepCancelledError          an agent stopped because the engine cancelled it
    ├── WorkflowError                   workflow
    │   ├── WorkflowCompileError        a workflow definition has problems (all listed)
    │   ├── WorkflowFileError           a saved workflow file is malformed
    │   ├── RuleError                   a decision rule or input mapping is malformed
    │   ├── TaskValidationError         a task does not match the workflow's task type
    │   └── RunError                    a run failed
    │       ├── StepFailedError         an agent raised and retries were exhausted
    │       ├── StepTimeoutError        an attempt took longer than the step's timeout
    │       ├── NoRouteError            no route of a step matched
    │       └── LoopBoundError          a loop hit its visit bound with no way out
    └── FinetuneError                   finetune

Exceptions carry context (step, agent, run id) as attributes and are raised ``from`` their
cause, so the original traceback is never lost.
"""

from __future__ import annotations

__all__ = ["KnowledgeError", "RunNotFoundError", "TaskloomError"]


class TaskloomError(Exception):
    """Base class of every error taskloom raises on purpose."""


class KnowledgeError(TaskloomError):
    """The knowledge base could not store or find something."""


class RunNotFoundError(KnowledgeError, LookupError):
    """A run id is not in the store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run '{run_id}' is not in the run store. Check the id, or the store.")
        self.run_id = run_id
