"""taskloom workflows: build, compile, save and run multi-agent workflows.

Importing this package never imports torch or transformers.
"""

from agents import TaskloomError
from workflow._builder import Batch, Retry, Route, Step, Workflow
from workflow._compiled import CompiledRoute, CompiledStep, CompiledWorkflow
from workflow._engine import Engine, RunResult
from workflow._errors import (
    CompileProblem,
    LoopBoundError,
    NoRouteError,
    RuleError,
    RunError,
    StepFailedError,
    StepTimeoutError,
    TaskValidationError,
    WorkflowCompileError,
    WorkflowError,
    WorkflowFileError,
)
from workflow._executor import Executor, LocalExecutor
from workflow._ray import RayExecutor, executor_from_env
from workflow._rules import AllOf, AnyOf, Call, Compare, Not, Rule, Truthy
from workflow._serialize import load, loads
from workflow._serve import ServiceConfig, create_app, require_role
from workflow._state import Ref, RunState, failure, state, task

__all__ = [
    "AllOf",
    "AnyOf",
    "Batch",
    "Call",
    "Compare",
    "CompileProblem",
    "CompiledRoute",
    "CompiledStep",
    "CompiledWorkflow",
    "Engine",
    "Executor",
    "LocalExecutor",
    "LoopBoundError",
    "NoRouteError",
    "Not",
    "RayExecutor",
    "Ref",
    "Retry",
    "Route",
    "Rule",
    "RuleError",
    "RunError",
    "RunResult",
    "RunState",
    "ServiceConfig",
    "Step",
    "StepFailedError",
    "StepTimeoutError",
    "TaskValidationError",
    "TaskloomError",
    "Truthy",
    "Workflow",
    "WorkflowCompileError",
    "WorkflowError",
    "WorkflowFileError",
    "create_app",
    "executor_from_env",
    "failure",
    "load",
    "loads",
    "require_role",
    "state",
    "task",
]
