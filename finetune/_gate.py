"""The promotion gate: a candidate replaces the serving model only when it is better.

``gate`` is a pure function over two evaluation reports of the same holdout (mappings
``{"metric_name": value, ..., "per_label": {label: f1}}``, scores as fractions in [0, 1]).
The candidate is promoted only if every check passes:

- ``floor``: its main metric is at least ``GateConfig.floor``;
- ``margin``: it beats the serving model's main metric by at least ``margin_points``
  percentage points (exactly the margin passes);
- ``guarded:<label>``: no guarded label's F1 drops by more than ``tolerance_points``.

The agent's first model (no serving model) only has to clear the floor.

``promote_if_better`` acts on a decision: it moves the ``serving`` alias with
``knowledge.set_alias`` (history row, version statuses and audit entry in one transaction,
together with an audit entry holding the whole decision) or, when refused, records only the
decision. Rollback is one command: ``knowledge.rollback(session, agent, "serving", actor)``
points ``serving`` back at the version it came from, as another move in the history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from finetune._errors import GateError
from knowledge import AliasMove, audit, get_model_version, serving_version, set_alias

__all__ = [
    "SERVING_ALIAS",
    "GateCheck",
    "GateConfig",
    "GateDecision",
    "GateError",
    "Promotion",
    "evaluate_and_gate",
    "gate",
    "promote_if_better",
]

SERVING_ALIAS = "serving"
POINTS = 100.0  # a score of 1.0 is 100 percentage points
# Scores are floats computed from counts; a difference that is the margin on paper may come
# out a hair below it (0.805 - 0.8 = 0.00499999...), which must not flip the decision.
EPSILON_POINTS = 1e-9
PER_LABEL = "per_label"
HOLDOUT_HASH = "holdout_hash"  # optional report key: the holdout's content hash

Model = TypeVar("Model")
Scores = Mapping[str, Any]
# A report: a mapping, or a pydantic model of the same shape (``finetune.EvalReport``).
Report = Scores | BaseModel


@dataclass(frozen=True)
class GateConfig:
    """What a candidate must achieve to be promoted.

    Attributes:
        metric: The agent's main metric, a key of the evaluation reports (``macro_f1``...).
        floor: The lowest acceptable main metric, as a fraction in [0, 1].
        margin_points: How many percentage points the candidate must beat serving by.
        guarded_labels: Labels whose F1 must not regress (a rare but costly class...).
        tolerance_points: How many points a guarded label's F1 may drop at most.
    """

    metric: str = "macro_f1"
    floor: float = 0.0
    margin_points: float = 0.5
    guarded_labels: tuple[str, ...] = ()
    tolerance_points: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise GateError(
                f"GateConfig.floor={self.floor} is not a fraction in [0, 1]; write 80% as 0.8."
            )
        if self.margin_points < 0 or self.tolerance_points < 0:
            raise GateError(
                f"GateConfig margin_points={self.margin_points} and tolerance_points="
                f"{self.tolerance_points} must be >= 0 (they are percentage points)."
            )


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate.

    Attributes:
        name: ``floor``, ``margin`` or ``guarded:<label>``.
        passed: Whether it passed.
        value: What was measured (the candidate's score, or a difference in points).
        threshold: What it was compared with.
        reason: One sentence saying what was compared and how it went.
    """

    name: str
    passed: bool
    value: float
    threshold: float
    reason: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict, with every check and both reports, for the record.

    Attributes:
        promote: Every check passed.
        checks: The checks, in order (floor, margin, then guarded labels).
        candidate: The candidate's report.
        serving: The serving model's report, None for a first model.
        config: The configuration decided under.
    """

    promote: bool
    checks: tuple[GateCheck, ...]
    candidate: Scores
    serving: Scores | None
    config: GateConfig

    @property
    def reasons(self) -> list[str]:
        """Why: the failed checks' reasons when refused, every check's when promoted."""
        failed = [check.reason for check in self.checks if not check.passed]
        return failed or [check.reason for check in self.checks]

    def summary(self) -> str:
        """One line for the alias history: the verdict and its reasons."""
        verdict = "promoted" if self.promote else "refused"
        return f"gate {verdict}: " + "; ".join(self.reasons)

    def to_json(self) -> dict[str, Any]:
        """The decision as JSON, for the audit log."""
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "checks": [vars(check) for check in self.checks],
            "candidate": dict(self.candidate),
            "serving": None if self.serving is None else dict(self.serving),
            "config": {**vars(self.config), "guarded_labels": list(self.config.guarded_labels)},
        }


def _score(report: Scores, key: str, role: str) -> float:
    """A score of a report, checked to be a fraction (points here would skew every margin)."""
    if key not in report:
        available = ", ".join(sorted(k for k in report if k != PER_LABEL)) or "none"
        raise GateError(
            f"The {role} report has no metric '{key}'. Available metrics: {available}. "
            "Set GateConfig.metric to one of them."
        )
    value = report[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise GateError(
            f"The {role} report's '{key}' is {value!r}, not a fraction in [0, 1]; pass scores "
            "as fractions (0.85), not percentages."
        )
    return float(value)


def _as_scores(report: Report) -> Scores:
    """A report as a mapping: pydantic reports become their JSON dump (also for the audit)."""
    return report.model_dump(mode="json") if isinstance(report, BaseModel) else report


def _per_label(report: Scores, role: str) -> dict[str, Any]:
    """Each label's F1: values are F1 scores, or mappings holding one under ``f1``."""
    per_label = report.get(PER_LABEL, {})
    if not isinstance(per_label, Mapping):
        raise GateError(f"The {role} report's '{PER_LABEL}' must map labels to F1 scores.")
    return {
        label: value.get("f1") if isinstance(value, Mapping) else value
        for label, value in per_label.items()
    }


def _guarded(label: str, candidate: Scores, serving: Scores, tolerance: float) -> GateCheck:
    name = f"guarded:{label}"
    if label not in _per_label(serving, "serving"):
        return GateCheck(name, True, 0.0, tolerance, f"'{label}' is new: nothing to regress")
    before = _score(_per_label(serving, "serving"), label, "serving per-label")
    if label not in _per_label(candidate, "candidate"):
        drop = before * POINTS  # an unevaluated label counts as F1 0: it cannot pass silently
        return GateCheck(name, False, drop, tolerance, f"'{label}' was not evaluated")
    after = _score(_per_label(candidate, "candidate"), label, "candidate per-label")
    drop = (before - after) * POINTS
    passed = drop <= tolerance + EPSILON_POINTS
    return GateCheck(
        name,
        passed,
        drop,
        tolerance,
        f"'{label}' F1 {before:.4f} -> {after:.4f} (drop {drop:.2f} points, "
        f"{'within' if passed else 'beyond'} tolerance {tolerance:g})",
    )


def _floor(score: float, config: GateConfig) -> GateCheck:
    passed = score >= config.floor
    return GateCheck(
        "floor",
        passed,
        score,
        config.floor,
        f"{config.metric} {score:.4f} {'>=' if passed else '<'} floor {config.floor:g}",
    )


def _margin(score: float, base: float, config: GateConfig) -> GateCheck:
    gain = (score - base) * POINTS
    passed = gain >= config.margin_points - EPSILON_POINTS
    return GateCheck(
        "margin",
        passed,
        gain,
        config.margin_points,
        f"{config.metric} {score:.4f} vs serving {base:.4f}: {gain:+.2f} points "
        f"({'meets' if passed else 'below'} margin {config.margin_points:g})",
    )


def gate(candidate: Report, serving: Report | None, config: GateConfig) -> GateDecision:
    """Decide whether ``candidate`` may replace ``serving``; a pure function.

    Args:
        candidate: The candidate's evaluation report on the holdout (a mapping, or a
            pydantic report such as ``EvalReport``).
        serving: The serving model's report on the same holdout, or None for a first model.
        config: The floor, margin and guarded labels.

    Returns:
        The decision, with every check.

    Raises:
        GateError: A report lacks the metric, holds a score outside [0, 1], or the two were
            computed on different holdouts (both give a ``holdout_hash`` and they differ).
    """
    candidate = _as_scores(candidate)
    serving = None if serving is None else _as_scores(serving)
    hashes = {report.get(HOLDOUT_HASH) for report in (candidate, serving or {})} - {None}
    if len(hashes) > 1:
        raise GateError(
            f"The reports are from different holdouts ({', '.join(sorted(map(str, hashes)))}): "
            "evaluate both models on the same holdout."
        )
    score = _score(candidate, config.metric, "candidate")
    checks = [_floor(score, config)]
    if serving is not None:
        checks.append(_margin(score, _score(serving, config.metric, "serving"), config))
        checks.extend(
            _guarded(label, candidate, serving, config.tolerance_points)
            for label in config.guarded_labels
        )
    return GateDecision(
        promote=all(check.passed for check in checks),
        checks=tuple(checks),
        candidate=candidate,
        serving=serving,
        config=config,
    )


def evaluate_and_gate(
    evaluate: Callable[[Model, Any], Report],
    candidate: Model,
    serving: Model | None,
    holdout: Any,
    config: GateConfig,
) -> GateDecision:
    """Evaluate both models on the one holdout, then gate: the comparison is fair by design.

    Args:
        evaluate: Scores one model on the holdout (a report as ``gate`` takes).
        candidate: The candidate model.
        serving: The serving model, or None for a first model.
        holdout: The holdout, passed to ``evaluate`` unchanged for both.
        config: The gate configuration.

    Returns:
        The decision.
    """
    serving_scores = None if serving is None else evaluate(serving, holdout)
    return gate(evaluate(candidate, holdout), serving_scores, config)


@dataclass(frozen=True)
class Promotion:
    """What ``promote_if_better`` did.

    Attributes:
        promoted: The ``serving`` alias now points at the candidate.
        serving: The version serving now (None if the agent has none).
        move: The alias move, when promoted.
        decision: The decision acted on.
    """

    promoted: bool
    serving: str | None
    move: AliasMove | None
    decision: GateDecision


def promote_if_better(
    session: Session, agent: str, candidate_version: str, decision: GateDecision, *, actor: str
) -> Promotion:
    """Move ``serving`` to the candidate if the gate said so, and record the decision.

    The alias move (history row, statuses, its audit entry) and a ``promotion.decide`` audit
    entry holding the whole decision are written in one savepoint of the caller's
    transaction, so they land together or not at all; the caller commits. A refused
    candidate leaves ``serving`` untouched and only the decision is recorded. To undo a
    promotion: ``knowledge.rollback(session, agent, "serving", actor)``.

    Args:
        session: The session to write in.
        agent: The agent.
        candidate_version: The registered version that was gated.
        decision: The gate's decision for it.
        actor: Who promotes (kept in the history and the audit log).

    Returns:
        What happened.

    Raises:
        UnknownModelVersionError: The agent has no such version.
    """
    candidate = get_model_version(session, agent, candidate_version)
    with session.begin_nested():
        move = None
        if decision.promote:
            move = set_alias(
                session, agent, SERVING_ALIAS, candidate_version, actor, decision.summary()
            )
        audit(
            session,
            actor,
            "promotion.decide",
            "model_versions",
            candidate.id,
            {"agent": agent, "version": candidate_version, **decision.to_json()},
        )
    current = serving_version(session, agent)
    return Promotion(
        promoted=move is not None,
        serving=None if current is None else current.version,
        move=move,
        decision=decision,
    )
