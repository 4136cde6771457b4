"""The execution agent: choose an action with a text classifier, fill its arguments, run it.

The model is a single-label ``mean_pool_linear`` artifact whose labels are the registered
action names, plus optionally ``"none"`` (do nothing). It reads the input text only:
entities fill arguments but do not sway the choice, so the classifier can be trained on
plain texts (e.g. intents) mapped to actions. ``input.action`` forces an action (a business
rule decided), bypassing the model's choice and ``min_confidence``.

Per input, in this order: the action (forced or the model's top label); ``"none"`` ->
``no_action``; below ``min_confidence`` -> ``below_confidence``; arguments (see
``agents._actions.fill_arguments``) missing or invalid -> ``missing_arguments`` /
``invalid_arguments``; dry run -> ``dry_run`` (the planned call, nothing run); else the
action runs: ``executed``, or ``replayed`` when this step visit ran it before.

Exactly once per step visit: when ``ctx.knowledge`` is a ``knowledge.Database``, the
action's idempotency key (``ctx.idempotency_key`` + ``:action``: one key per visit, not per
action, so a retry whose model answer changed, e.g. after a hot-swap, cannot run a second
action) is claimed in a session *before* anything is decided. A claim already committed
means an earlier attempt (an engine retry, a resumed run) ran an action: its stored action,
arguments and result come back as ``replayed`` and nothing runs. Otherwise the action runs
in that transaction (it may take the session, see ``agents._actions``) and the key, its
result and the action's own rows commit together; if the action raises, everything rolls
back (the claim too, so a retry runs it) and an ``ActionFailedError`` names the action and
its arguments. The guarantee is the knowledge base's (``knowledge._idempotency``): exactly
once for rows written through the session, at least once for external effects (pass the
key downstream to make those exactly once too).

Without a knowledge base there is no key, so a retry would run the action again; the agent
refuses to execute unless built with ``require_idempotency=False`` (dry runs always work).

Predictions are recorded (``ModelAgent``) after the actions ran, in their own transaction:
the row holds the model's own top label and vector (what feedback can correct), while the
output recorded with it says what was done. If recording fails the step fails, and its
retry replays the action instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from agents._actions import (
    NO_ACTION,
    Action,
    ActionDefinitionError,
    ActionError,
    ActionFailedError,
    Filled,
    fill_arguments,
    jsonable_result,
    resolve_action,
)
from agents._classifier import calibrated_probabilities
from agents._contract import Role, RunContext
from agents._errors import ModelArtifactError
from agents._extractor import Entity
from agents._imports import DEFAULT_ALLOWLIST, is_allowed
from agents._model import LoadedModel, ModelAgent
from knowledge import Database, claim_key, remember_result

__all__ = ["ActionInput", "ActionOutput", "ActionSelector"]

Status = Literal[
    "executed",
    "replayed",
    "dry_run",
    "missing_arguments",
    "invalid_arguments",
    "below_confidence",
    "no_action",
]


class ActionInput(BaseModel):
    """What to act on.

    Attributes:
        text: The text the model reads to choose the action.
        entities: Extracted entities; they fill arguments by type (see ``slots``).
        values: Explicit argument values by parameter name (win over entities).
        action: Force this action (or ``"none"``), bypassing the model's choice.
        dry_run: Override the agent's ``dry_run`` for this call.
    """

    text: str
    entities: list[Entity] = Field(default_factory=list)
    values: dict[str, JsonValue] = Field(default_factory=dict)
    action: str | None = None
    dry_run: bool | None = None


class ActionOutput(BaseModel):
    """What was chosen and what happened.

    Attributes:
        action: The action chosen (forced, the model's, or the one replayed), or ``"none"``.
        confidence: The model's probability of ``action``.
        probabilities: Every label's calibrated probability, in the model's label order.
        arguments: The arguments (validated; as found when missing or invalid).
        status: What happened (see the module docstring).
        result: The action's result (JSON; as stored when replayed), else None.
        problems: Why it did not run (missing or invalid arguments, low confidence).
        forced: ``input.action`` chose the action.
        model_sha256: The checksum of the weights that answered.
        prediction_id: The knowledge base's ``Prediction`` row, when the run has one.
    """

    action: str
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: dict[str, float]
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    status: Status
    result: JsonValue = None
    problems: list[str] = Field(default_factory=list)
    forced: bool = False
    model_sha256: str
    prediction_id: int | None = None


ActionSpec = str | Callable[..., Any]


class ActionSelector(ModelAgent[ActionInput, ActionOutput]):
    """Chooses among registered actions, fills their arguments and runs them idempotently.

    Args:
        model_dir: The artifact directory (single-label; labels: action names [+ "none"]).
        actions: Import paths (``package.module:function``, marked with ``@action``) or,
            in process, functions; a marked function with an import path is saved as
            its path (and its module added to ``allow``), others cannot be saved.
        allow: Module prefixes trusted for action paths beyond ``DEFAULT_ALLOWLIST``.
        dry_run: Plan only: fill arguments, run nothing.
        min_confidence: Below this model probability nothing runs (``below_confidence``).
        slots: Parameter name -> entity type, where they differ (default: the same name).
        require_idempotency: Refuse to execute without a knowledge base (a retry would
            repeat the action); False runs actions directly, at least once per try.
        sha256: The checksum the artifact must have (the model version's).
        max_length: Longest input in tokens; None takes the artifact's.
        batch_size: Most texts per forward pass.
        device: The torch device to run on.
    """

    name = "action_selector"
    role = Role.EXECUTION

    def __init__(  # noqa: PLR0913 - the contract wants keyword parameters, not a config object
        self,
        model_dir: str | None = None,
        *,
        actions: Sequence[ActionSpec] = (),
        allow: Sequence[str] = (),
        dry_run: bool = False,
        min_confidence: float | None = None,
        slots: Mapping[str, str] | None = None,
        require_idempotency: bool = True,
        sha256: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            model_dir, sha256=sha256, max_length=max_length, batch_size=batch_size, device=device
        )
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise ValueError(
                f"ActionSelector min_confidence must be in [0, 1], got {min_confidence}"
            )
        self.allow = list(allow)
        self.actions = _registered(actions, (*DEFAULT_ALLOWLIST, *self.allow))
        self.dry_run = dry_run
        self.min_confidence = min_confidence
        self.slots = dict(slots or {})
        self.require_idempotency = require_idempotency
        _check_slots(self.actions, self.slots)
        self._init_params.update(_saved_form(actions, self.allow))

    def _load(self, model_dir: str | None, sha256: str | None) -> LoadedModel:
        """Load the artifact and check its labels are exactly the actions (+ "none")."""
        loaded = super()._load(model_dir, sha256)
        labels, names = set(loaded.meta.labels), set(self.actions)
        problems = []
        if loaded.meta.task != "single_label":
            problems.append(f"its task is '{loaded.meta.task}', not 'single_label'")
        if labels - names - {NO_ACTION}:
            problems.append(f"labels without an action: {sorted(labels - names - {NO_ACTION})}")
        if names - labels:
            problems.append(f"actions without a label: {sorted(names - labels)}")
        if problems:
            raise ModelArtifactError(
                loaded.path,
                f"The model at {loaded.path} does not fit ActionSelector: {'; '.join(problems)}. "
                f"Its labels: {sorted(labels)}; registered actions: {sorted(names)} (plus "
                f"'{NO_ACTION}', optional). Train the model on these actions or register them.",
            )
        return loaded

    def _predict(
        self, loaded: LoadedModel, inputs: Sequence[ActionInput], ctxs: Sequence[RunContext]
    ) -> list[ActionOutput]:
        for item in inputs:  # a bad forced action fails the batch before anything runs
            if item.action is not None and item.action not in {*self.actions, NO_ACTION}:
                raise ActionError(
                    f"Unknown forced action '{item.action}'. Registered actions: "
                    f"{', '.join(sorted(self.actions))} (or '{NO_ACTION}' to do nothing)."
                )
        ids = self._encode(loaded, [item.text for item in inputs]).ids
        rows = calibrated_probabilities(loaded, ids, batch_size=self.batch_size, device=self.device)
        outputs = []
        for item, probs, ctx in zip(inputs, rows, ctxs, strict=True):
            probabilities = dict(zip(loaded.meta.labels, probs, strict=True))
            base = self._choice(item, probabilities, loaded.sha256)
            outputs.append(self._act(item, base, ctx))
        return outputs

    def _choice(
        self, item: ActionInput, probabilities: dict[str, float], sha256: str
    ) -> ActionOutput:
        """The chosen action, before arguments: status ``no_action`` or ``below_confidence``
        when that settles it, else provisionally ``executed``."""
        chosen = item.action or max(probabilities, key=probabilities.__getitem__)
        confidence = probabilities.get(chosen, 0.0)
        status: Status = "executed"
        problems = []
        if chosen == NO_ACTION:
            status = "no_action"
        elif (
            item.action is None
            and self.min_confidence is not None
            and confidence < self.min_confidence
        ):
            status = "below_confidence"
            problems.append(
                f"'{chosen}' has probability {confidence:.3f} < min_confidence "
                f"{self.min_confidence}"
            )
        return ActionOutput(
            action=chosen,
            confidence=confidence,
            probabilities=probabilities,
            status=status,
            problems=problems,
            forced=item.action is not None,
            model_sha256=sha256,
        )

    def _act(self, item: ActionInput, base: ActionOutput, ctx: RunContext) -> ActionOutput:
        """Fill the arguments and run the action (keyed when the run has a knowledge base)."""
        dry_run = self.dry_run if item.dry_run is None else item.dry_run
        database = ctx.knowledge if isinstance(ctx.knowledge, Database) else None
        if dry_run or database is None:
            filled = self._filled(item, base)
            if base.status != "executed" or filled.model is None:
                return _settled(base, filled)
            if dry_run:
                return _settled(base.model_copy(update={"status": "dry_run"}), filled)
            if self.require_idempotency:
                raise ActionError(
                    f"ActionSelector will not run '{base.action}' in step '{ctx.step}' of run "
                    f"'{ctx.run_id}' without a knowledge base: without an idempotency key a "
                    "retry would run it again. Give the engine one (Engine(knowledge="
                    "Database(url))), use dry_run=True, or build the agent with "
                    "require_idempotency=False to accept repeats."
                )
            result = self._call(self.actions[base.action], filled, None)
            return _settled(base, filled, result)
        return self._keyed(database, item, base, ctx)

    def _keyed(
        self, database: Database, item: ActionInput, base: ActionOutput, ctx: RunContext
    ) -> ActionOutput:
        """Claim the visit's key, then replay or decide and run; commit only what ran."""
        key = f"{ctx.idempotency_key}:action"
        with database.session() as session:  # closing uncommitted rolls back (the claim too)
            claim = claim_key(session, key, run_id=ctx.run_id, step=ctx.step)
            if not claim:
                stored = claim.result if isinstance(claim.result, dict) else {}
                ctx.logger.info("Action of %s ran before; replaying its stored result.", key)
                done = str(stored.get("action", base.action))
                return base.model_copy(
                    update={
                        "action": done,
                        "confidence": base.probabilities.get(done, 0.0),
                        "arguments": stored.get("arguments", {}),
                        "result": stored.get("result"),
                        "status": "replayed",
                        "problems": [],
                    }
                )
            filled = self._filled(item, base)
            if base.status != "executed" or filled.model is None:
                return _settled(base, filled)
            chosen = self.actions[base.action]
            result = self._call(chosen, filled, session)
            record = {"action": chosen.name, "arguments": filled.arguments, "result": result}
            remember_result(session, key, record)
            session.commit()
        return _settled(base, filled, result)

    def _filled(self, item: ActionInput, base: ActionOutput) -> Filled:
        if base.status != "executed":
            return Filled("ok", {})
        return fill_arguments(
            self.actions[base.action], values=item.values, entities=item.entities, slots=self.slots
        )

    @staticmethod
    def _call(chosen: Action, filled: Filled, session: Any) -> Any:
        """Run the action; its errors become ``ActionFailedError`` naming it and its args."""
        assert filled.model is not None  # only validated arguments are run
        try:
            result = chosen.call(filled.model, session)
        except ActionError:
            raise
        except Exception as exc:
            raise ActionFailedError(
                chosen.name,
                filled.arguments,
                f"Action '{chosen.name}' failed with arguments {filled.arguments}: "
                f"{type(exc).__name__}: {exc}. Nothing it wrote through the session was kept "
                "and its idempotency key was released, so a retry runs it again.",
            ) from exc
        return jsonable_result(chosen, result)

    def _prediction_fields(self, loaded: LoadedModel, output: ActionOutput) -> dict[str, Any]:
        """The model's own top label and vector (a forced action is in the output only)."""
        top = max(output.probabilities, key=output.probabilities.__getitem__)
        return {
            "label": top,
            "confidence": output.probabilities[top],
            "label_set": list(output.probabilities),
            "probabilities": list(output.probabilities.values()),
        }


def _settled(base: ActionOutput, filled: Filled, result: Any = None) -> ActionOutput:
    status = base.status if base.status != "executed" or filled.status == "ok" else filled.status
    return base.model_copy(
        update={
            "arguments": filled.arguments,
            "status": status,
            "result": result,
            "problems": [*base.problems, *filled.problems],
        }
    )


def _registered(specs: Sequence[ActionSpec], allow: Sequence[str]) -> dict[str, Action]:
    """Resolve every action; refuse none at all and two with one name."""
    if isinstance(specs, str):
        raise ActionDefinitionError(
            f"ActionSelector actions must be a list of import paths, got the string {specs!r}"
        )
    registered: dict[str, Action] = {}
    for spec in specs:
        found = resolve_action(spec, allow)
        if found.name in registered:
            raise ActionDefinitionError(
                f"Two actions are named '{found.name}' ({spec!r} and an earlier one): give one "
                "another name with @action(name=...)."
            )
        registered[found.name] = found
    if not registered:
        raise ActionDefinitionError(
            "ActionSelector needs at least one action: actions=['package.module:function']."
        )
    return registered


def _check_slots(actions: Mapping[str, Action], slots: Mapping[str, str]) -> None:
    known = sorted({p for a in actions.values() for p in a.parameters})
    unknown = sorted(set(slots) - set(known))
    if unknown:
        raise ActionDefinitionError(
            f"ActionSelector slots name parameters no action has: {unknown}. "
            f"Action parameters: {', '.join(known) or '(none)'}."
        )


def _saved_form(specs: Sequence[ActionSpec], allow: list[str]) -> dict[str, Any]:
    """Init params that save: marked functions by their path, their modules allowlisted."""
    saved: list[Any] = []
    trusted = list(allow)
    for spec in specs:
        path = spec if isinstance(spec, str) else resolve_action(spec).path
        saved.append(spec if path is None else path)
        module = (path or "").partition(":")[0]
        if path and not is_allowed(module, (*DEFAULT_ALLOWLIST, *trusted)):
            trusted.append(module)
    return {"actions": saved, "allow": trusted}
