"""The decision-role policy agent: a classifier over the run state, combined with rules.

A support desk has to decide, for each ticket, whether to answer it automatically, ask a
clarifying question, or hand it to a human. Some of that is learnt (a policy model reading
the ticket and what upstream steps found), some of it is policy that must hold whatever the
model thinks ("a stolen card always goes to a human"), and some is caution ("when the
intent is uncertain, ask"). ``PolicyAgent`` does all three and records why it decided.

Guide::

    policy = PolicyAgent(
        "artifacts/policy-v3",                      # a single_label mean_pool_linear artifact
        rules=[                                     # hard business rules, first match decides
            PolicyRule(name="stolen card", signal="intent", op="in",
                       value=["lost_or_stolen_card", "compromised_card"], decision="escalate"),
        ],
        thresholds={"intent_confidence": 0.6},      # upstream confidence below -> fallback
        fallback="clarify",                         # ... which asks a clarifying question
        min_confidence=0.5,                         # the policy model unsure -> escalate
    )
    wf.step("decide", policy, inputs=lambda s: {
        "text": s.task.text,
        "signals": {"intent": s.outputs["classify"].label,
                    "intent_confidence": s.outputs["classify"].confidence},
    })
    wf.route("decide", "reply", when=state("decide").decision == "reply")

The model reads one string, ``policy_text(text, signals)``: the signals in sorted key order
(numbers rounded to 2 decimals, booleans as yes/no), then the text. A policy model must be
trained on texts built by that same function, so it is public.

Rules, thresholds and the escalation labels are plain JSON data: they are saved with the
workflow like any agent parameter. They are checked against the artifact's labels when it
loads (``warm_up``, ``swap``): a rule deciding a label the model does not have is refused,
and a swap to such an artifact keeps the old one serving.

Every answer is recorded as a ``Prediction`` (when the run has a knowledge base) whose
label is the *model's* decision with its full probability vector, so that feedback on the
decision trains the model; the recorded output carries the final decision and its reasons.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents._classifier import calibrated_probabilities
from agents._contract import Role, RunContext
from agents._errors import ModelArtifactError
from agents._model import LoadedModel, ModelAgent

__all__ = ["PolicyAgent", "PolicyInput", "PolicyOutput", "PolicyRule", "policy_text"]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# bool before int: pydantic's smart union keeps each value's exact type either way, and
# this order documents that True is a yes/no signal, not the number 1.
Signal = bool | int | FiniteFloat | str
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in"]
Decider = Literal["rule", "threshold", "min_confidence", "model"]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def policy_text(text: str, signals: Mapping[str, Signal]) -> str:
    """The one string the policy model reads: the signals, then the text.

    Signals come first, in sorted key order, so that truncation to ``max_length`` cuts the
    end of the text rather than the signals, and so that the same state always gives the
    same string. Floats are rounded to 2 decimals (the model need not see noise), booleans
    read ``yes``/``no``, integers and strings are written as they are.

    Training data for a policy model must be built with this function.

    Args:
        text: The ticket's text.
        signals: Upstream outputs and confidences, e.g. ``{"intent": "card_arrival",
            "intent_confidence": 0.93}``.

    Returns:
        E.g. ``"intent: card_arrival; intent_confidence: 0.93 | where is my card?"``, or
        the text alone when there are no signals.
    """
    if not signals:
        return text
    parts = "; ".join(f"{key}: {_signal_text(signals[key])}" for key in sorted(signals))
    return f"{parts} | {text}"


def _signal_text(value: Signal) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class PolicyInput(BaseModel):
    """What the policy reads: the ticket's text and what upstream steps found.

    Attributes:
        text: The ticket's text.
        signals: Upstream outputs and confidences by name: strings, numbers (finite) and
            booleans only, e.g. ``{"intent": "card_arrival", "intent_confidence": 0.93,
            "entities": 2, "vip": True}``. Other types fail validation.
    """

    text: str
    signals: dict[str, Signal] = Field(default_factory=dict)


class PolicyRule(BaseModel):
    """A hard business rule: when ``signals[signal] <op> value`` holds, decide ``decision``.

    A rule whose signal is missing from the input, or whose signal cannot be compared with
    ``value`` (a string against a number), does not fire; the reasons say it was skipped.

    Attributes:
        name: Names the rule in reasons and in ``PolicyOutput.rule``.
        signal: The signal it reads.
        op: ``== != < <= > >= in not_in``; ordering needs a number value, ``in`` and
            ``not_in`` a list.
        value: What the signal is compared with.
        decision: The decision when it fires; must be one of the model's labels.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    signal: Annotated[str, Field(min_length=1)]
    op: Op
    value: Signal | tuple[Signal, ...]
    decision: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _value_fits_op(self) -> PolicyRule:
        if self.op in ("in", "not_in") and not isinstance(self.value, tuple):
            raise ValueError(f"op '{self.op}' needs a list value, got {self.value!r}")
        if self.op in _ORDER and not _is_number(self.value):
            raise ValueError(f"op '{self.op}' needs a number value, got {self.value!r}")
        if self.op in ("==", "!=") and isinstance(self.value, tuple):
            raise ValueError(f"op '{self.op}' needs a single value, got {list(self.value)!r}")
        return self

    def check(self, signals: Mapping[str, Signal]) -> tuple[bool, str | None]:
        """Whether the rule fires on ``signals``, and the reason to record (None: nothing)."""
        head = f"rule '{self.name}'"
        if self.signal not in signals:
            return False, f"{head}: signal '{self.signal}' missing -> skipped"
        actual = signals[self.signal]
        if self.op in _ORDER and not _is_number(actual):
            return False, f"{head}: {self.signal} {actual!r} is not a number -> skipped"
        if not self._holds(actual):
            return False, None
        shown = list(self.value) if isinstance(self.value, tuple) else self.value
        return True, f"{head}: {self.signal} {actual!r} {self.op} {shown!r} -> {self.decision}"

    def _holds(self, actual: Signal) -> bool:
        if self.op in _ORDER:
            return _ORDER[self.op](actual, self.value)
        if self.op in ("in", "not_in"):
            return (actual in self.value) == (self.op == "in")  # type: ignore[operator]
        return (actual == self.value) == (self.op == "==")


class PolicyOutput(BaseModel):
    """A decision and why it was taken.

    Attributes:
        decision: The final decision (one of the model's labels).
        decided_by: Which check decided: ``rule``, ``threshold`` (an upstream confidence
            too low), ``min_confidence`` (the policy model unsure) or ``model``.
        rule: The name of the rule that decided; None unless ``decided_by == "rule"``.
        model_decision: The policy model's own most probable decision.
        confidence: The model's calibrated probability of ``model_decision``.
        probabilities: Every decision's probability, in the model's label order.
        reasons: Human-readable lines, in precedence order: every check that fired or was
            skipped, then the model's view, e.g. ``"model: reply (0.91)"``.
        escalated: The decision hands the ticket to a human (it is the escalation label).
        truncated: The policy text was longer than ``max_length`` tokens and was cut.
        model_sha256: The checksum of the weights that answered (the model version).
        prediction_id: The id of the knowledge base's ``Prediction`` row recording this
            answer, for feedback to point at; None when the run has no knowledge base.
    """

    decision: str
    decided_by: Decider
    rule: str | None = None
    model_decision: str
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: dict[str, float]
    reasons: list[str]
    escalated: bool
    truncated: bool = False
    model_sha256: str
    prediction_id: int | None = None


class PolicyAgent(ModelAgent[PolicyInput, PolicyOutput]):
    """A policy classifier over ``policy_text(text, signals)``, overruled by rules.

    Precedence, first match decides (later checks still add their reasons):

    1. hard ``rules``, in declared order;
    2. ``thresholds``: an upstream confidence signal below its minimum, or missing or not
       a number (unverifiable confidence counts as too low), decides ``fallback``;
    3. ``min_confidence``: the policy model's own confidence below it decides ``escalate``;
    4. the policy model's most probable decision.

    Args:
        model_dir: A ``single_label`` ``mean_pool_linear`` artifact whose labels are the
            decisions (written by ``save_artifact``).
        sha256: The checksum the artifact must have (the model version's).
        rules: ``PolicyRule`` objects or their dicts (saved as dicts).
        thresholds: The minimum of each upstream confidence signal, in [0, 1].
        min_confidence: The model's lowest acceptable confidence, in (0, 1); None: any.
        escalate: The decision that hands the ticket to a human (sets ``escalated``).
        fallback: The decision when a threshold is not met; None: ``escalate``.
        max_length: Longest policy text in tokens; None takes the artifact's.
        batch_size: Most inputs per forward pass.
        device: The torch device to run on.

    Raises:
        ValueError: A rule or setting is malformed (the message names it).
        ModelArtifactError: On loading: the artifact is not single-label, or a rule,
            ``escalate`` or ``fallback`` names a decision the model lacks (valid ones listed).
    """

    name = "policy"
    role = Role.DECISION

    def __init__(  # noqa: PLR0913 - keyword-only settings, each saved with the workflow
        self,
        model_dir: str | None = None,
        *,
        sha256: str | None = None,
        rules: Sequence[PolicyRule | Mapping[str, Any]] = (),
        thresholds: Mapping[str, float] | None = None,
        min_confidence: float | None = None,
        escalate: str = "escalate",
        fallback: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            model_dir, sha256=sha256, max_length=max_length, batch_size=batch_size, device=device
        )
        self.rules = _parse_rules(rules)
        self.thresholds = _parse_thresholds(thresholds or {})
        if min_confidence is not None and not 0.0 < min_confidence < 1.0:
            raise ValueError(f"PolicyAgent min_confidence must be in (0, 1), got {min_confidence}")
        self.min_confidence = min_confidence
        self.escalate = escalate
        self.fallback = fallback if fallback is not None else escalate
        # Saved workflows hold JSON data: rules as dicts, whatever form they were given in.
        if "rules" in self._init_params:
            self._init_params["rules"] = [r.model_dump(mode="json") for r in self.rules]
        if "thresholds" in self._init_params and thresholds is not None:
            self._init_params["thresholds"] = dict(self.thresholds)

    def _load(self, model_dir: str | None, sha256: str | None) -> LoadedModel:
        loaded = super()._load(model_dir, sha256)
        self._check_labels(loaded)
        return loaded

    def _check_labels(self, loaded: LoadedModel) -> None:
        """Refuse an artifact that cannot serve these rules (before it serves)."""
        meta = loaded.meta
        if meta.task != "single_label":
            raise ModelArtifactError(
                loaded.path,
                f"PolicyAgent needs a single_label artifact (one decision per input); "
                f"'{loaded.path}' is {meta.task}. Save the policy model with "
                "task='single_label'.",
            )
        named = [(f"rule '{r.name}'", r.decision) for r in self.rules]
        named += [("escalate", self.escalate), ("fallback", self.fallback)]
        unknown = [f"{who} decides '{label}'" for who, label in named if label not in meta.labels]
        if unknown:
            raise ModelArtifactError(
                loaded.path,
                f"PolicyAgent cannot serve '{loaded.path}': {'; '.join(unknown)}, which is not "
                f"one of the model's decisions ({', '.join(meta.labels)}). Use one of those "
                "decisions, or serve a policy model trained with that decision as a label.",
            )

    def _predict(
        self,
        loaded: LoadedModel,
        inputs: Sequence[PolicyInput],
        ctxs: Sequence[RunContext],
    ) -> list[PolicyOutput]:
        encoded = self._encode(loaded, [policy_text(i.text, i.signals) for i in inputs])
        rows = calibrated_probabilities(
            loaded, encoded.ids, batch_size=self.batch_size, device=self.device
        )
        outputs = []
        for item, probs, cut, ctx in zip(inputs, rows, encoded.truncated, ctxs, strict=True):
            if cut:
                limit = self._max_length(loaded)
                ctx.logger.warning("Policy text exceeds %d tokens; decided on its head.", limit)
            outputs.append(self._decide(loaded, item.signals, probs, truncated=cut))
        return outputs

    def _decide(
        self,
        loaded: LoadedModel,
        signals: Mapping[str, Signal],
        probs: list[float],
        *,
        truncated: bool,
    ) -> PolicyOutput:
        """Apply the precedence of the class docstring to one input's model answer."""
        labels = loaded.meta.labels
        top = max(range(len(labels)), key=probs.__getitem__)
        model_decision, confidence = labels[top], probs[top]
        candidates: list[tuple[Decider, str, str | None]] = []  # (who, decision, rule name)
        reasons: list[str] = []
        for rule in self.rules:
            fired, reason = rule.check(signals)
            reasons += [reason] if reason else []
            if fired:
                candidates.append(("rule", rule.decision, rule.name))
        for reason in self._threshold_failures(signals):
            reasons.append(reason)
            candidates.append(("threshold", self.fallback, None))
        if self.min_confidence is not None and confidence < self.min_confidence:
            reasons.append(
                f"model confidence {confidence:.2f} < {self.min_confidence:.2f} -> {self.escalate}"
            )
            candidates.append(("min_confidence", self.escalate, None))
        reasons.append(f"model: {model_decision} ({confidence:.2f})")
        decided_by, decision, rule_name = (candidates or [("model", model_decision, None)])[0]
        return PolicyOutput(
            decision=decision,
            decided_by=decided_by,
            rule=rule_name,
            model_decision=model_decision,
            confidence=confidence,
            probabilities=dict(zip(labels, probs, strict=True)),
            reasons=reasons,
            escalated=decision == self.escalate,
            truncated=truncated,
            model_sha256=loaded.sha256,
        )

    def _threshold_failures(self, signals: Mapping[str, Signal]) -> list[str]:
        """One reason per upstream confidence below its minimum, missing or not a number."""
        failures = []
        for signal, minimum in self.thresholds.items():
            value = signals.get(signal)
            if value is None:
                failures.append(f"{signal} missing (minimum {minimum:.2f}) -> {self.fallback}")
            elif not _is_number(value):
                failures.append(
                    f"{signal} {value!r} is not a number (minimum {minimum:.2f}) -> {self.fallback}"
                )
            elif value < minimum:  # type: ignore[operator]  # _is_number checked it
                failures.append(f"{signal} {value:.2f} < {minimum:.2f} -> {self.fallback}")
        return failures

    def _prediction_fields(self, loaded: LoadedModel, output: PolicyOutput) -> dict[str, Any]:
        """The model's decision and full vector, so feedback on decisions trains the model."""
        return {
            "label": output.model_decision,
            "confidence": output.confidence,
            "label_set": list(output.probabilities),
            "probabilities": list(output.probabilities.values()),
        }


def _parse_rules(rules: Sequence[PolicyRule | Mapping[str, Any]]) -> tuple[PolicyRule, ...]:
    """Validate every rule, naming the bad one; rule names must be unique."""
    if isinstance(rules, str | Mapping):
        raise ValueError(
            "PolicyAgent rules must be a list of PolicyRule objects or dicts, "
            f"got {type(rules).__name__}"
        )
    parsed = []
    for index, rule in enumerate(rules):
        try:
            parsed.append(rule if isinstance(rule, PolicyRule) else PolicyRule.model_validate(rule))
        except ValidationError as exc:
            raise ValueError(f"PolicyAgent rules[{index}] is malformed: {exc}") from exc
    names = [rule.name for rule in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"PolicyAgent rule names must be unique (reasons and outputs name the rule that "
            f"decided); repeated: {', '.join(repeated)}"
        )
    return tuple(parsed)


def _parse_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Check that every minimum is a confidence in [0, 1]."""
    bad = {
        k: v
        for k, v in thresholds.items()
        if not isinstance(k, str) or not _is_number(v) or not 0.0 <= v <= 1.0
    }
    if bad:
        raise ValueError(
            f"PolicyAgent thresholds map confidence signals to minimums in [0, 1]; bad: {bad}"
        )
    return dict(thresholds)
