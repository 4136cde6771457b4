"""The promotion gate: every rule, and promotion that moves ``serving`` atomically or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from finetune import (
    FinetuneError,
    GateConfig,
    GateDecision,
    GateError,
    evaluate_and_gate,
    gate,
    promote_if_better,
)
from knowledge import (
    Database,
    ModelVersionIn,
    UnknownModelVersionError,
    alias_history,
    audit_log,
    get_model_version,
    register_model_version,
    rollback,
    serving_version,
    set_alias,
)

SHA = "0123456789abcdef" * 4
CONFIG = GateConfig(metric="macro_f1", floor=0.7, margin_points=0.5)


def report(score: float, **per_label: float) -> dict[str, Any]:
    return {"macro_f1": score, "accuracy": score, "per_label": per_label}


def failed(decision: GateDecision) -> list[str]:
    return [check.name for check in decision.checks if not check.passed]


def test_the_default_margin_is_half_a_point() -> None:
    assert GateConfig().margin_points == 0.5


def test_a_first_model_is_promoted_if_it_clears_the_floor() -> None:
    assert gate(report(0.7), None, CONFIG).promote  # exactly the floor passes
    below = gate(report(0.69), None, CONFIG)

    assert not below.promote
    assert failed(below) == ["floor"]
    assert below.reasons == ["macro_f1 0.6900 < floor 0.7"]


def test_a_candidate_below_the_floor_is_refused_even_if_better() -> None:
    decision = gate(report(0.6), report(0.5), CONFIG)

    assert not decision.promote
    assert failed(decision) == ["floor"]


@pytest.mark.parametrize(
    ("candidate", "serving", "promote"),
    [(0.805, 0.8, True), (0.8049, 0.8, False), (0.9, 0.8, True), (0.8, 0.8, False)],
)
def test_the_margin_is_inclusive_at_its_boundary(
    candidate: float, serving: float, promote: bool
) -> None:
    decision = gate(report(candidate), report(serving), CONFIG)

    assert decision.promote is promote
    margin = next(check for check in decision.checks if check.name == "margin")
    assert margin.value == pytest.approx((candidate - serving) * 100)
    assert margin.threshold == 0.5


def test_the_margin_and_metric_are_configurable() -> None:
    config = GateConfig(metric="accuracy", floor=0.0, margin_points=2.0)

    assert not gate(report(0.81), report(0.8), config).promote
    assert gate(report(0.82), report(0.8), config).promote


def test_a_guarded_label_may_not_regress_beyond_its_tolerance() -> None:
    config = GateConfig(floor=0.5, guarded_labels=("fraud",), tolerance_points=1.0)
    serving = report(0.80, fraud=0.90, refund=0.7)

    within = gate(report(0.85, fraud=0.89, refund=0.1), serving, config)
    beyond = gate(report(0.85, fraud=0.889, refund=0.9), serving, config)
    missing = gate(report(0.85, refund=0.9), serving, config)

    assert within.promote  # a 1-point drop is within the tolerance; refund is not guarded
    assert not beyond.promote
    assert failed(beyond) == ["guarded:fraud"]
    assert "drop 1.10 points, beyond tolerance 1" in beyond.reasons[0]
    assert not missing.promote
    assert missing.reasons == ["'fraud' was not evaluated"]


def test_a_guarded_label_the_serving_model_lacks_cannot_regress() -> None:
    config = GateConfig(guarded_labels=("fraud",))

    assert gate(report(0.9, fraud=0.1), report(0.8), config).promote


def test_every_failed_rule_is_a_reason() -> None:
    config = GateConfig(floor=0.9, guarded_labels=("fraud",))
    decision = gate(report(0.8, fraud=0.1), report(0.85, fraud=0.9), config)

    assert failed(decision) == ["floor", "margin", "guarded:fraud"]
    assert len(decision.reasons) == 3
    assert decision.summary().startswith("gate refused: macro_f1 0.8000 < floor 0.9; ")


@pytest.mark.parametrize(
    ("candidate", "serving", "match"),
    [
        ({"f1": 0.9}, None, "no metric 'macro_f1'. Available metrics: f1"),
        (report(85.0), None, "not a fraction in \\[0, 1\\]"),
        (report(0.9), {"per_label": {}}, "serving report has no metric 'macro_f1'"),
        ({**report(0.9), "holdout_hash": "a"}, {**report(0.8), "holdout_hash": "b"}, "a, b"),
    ],
)
def test_unusable_reports_are_clear_errors(
    candidate: dict[str, Any], serving: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(GateError, match=match) as caught:
        gate(candidate, serving, CONFIG)
    assert isinstance(caught.value, FinetuneError)


@pytest.mark.parametrize(
    "kwargs", [{"floor": 80.0}, {"margin_points": -1.0}, {"tolerance_points": -0.1}]
)
def test_an_invalid_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(GateError):
        GateConfig(**kwargs)


def test_both_models_are_evaluated_on_the_same_holdout() -> None:
    seen: list[tuple[str, object]] = []
    holdout = object()
    scores = {"new": report(0.9), "old": report(0.8)}

    def evaluate(model: str, data: object) -> dict[str, Any]:
        seen.append((model, data))
        return scores[model]

    decision = evaluate_and_gate(evaluate, "new", "old", holdout, CONFIG)

    assert decision.promote
    assert sorted(seen, key=str) == [("new", holdout), ("old", holdout)]
    assert decision.serving == scores["old"]


def register(database: Database, *versions: str) -> None:
    with database.transaction() as session:
        for version in versions:
            register_model_version(
                session,
                ModelVersionIn(
                    agent="intent", version=version, artifact_path=f"/m/{version}", sha256=SHA
                ),
            )


def test_promotion_moves_serving_with_history_and_audit(database: Database) -> None:
    register(database, "v1", "v2")
    with database.transaction() as session:
        set_alias(session, "intent", "serving", "v1", "ops", "first model")
        decision = gate(report(0.9), report(0.8), CONFIG)
        done = promote_if_better(session, "intent", "v2", decision, actor="trainer")

    with database.transaction() as session:
        history = alias_history(session, "intent", "serving")
        entries = audit_log(session, action="promotion.decide")
        version = get_model_version(session, "intent", "v2")
        assert serving_version(session, "intent") == version
    assert done.promoted
    assert done.serving == "v2"
    assert done.move == history[0]
    assert (history[0].version, history[0].previous_version) == ("v2", "v1")
    assert history[0].actor == "trainer"
    assert history[0].reason.startswith("gate promoted: macro_f1 0.9000 >= floor 0.7")
    assert [entry.entity_id for entry in entries] == [str(version.id)]
    assert entries[0].details["promote"] is True
    assert entries[0].details["candidate"]["macro_f1"] == 0.9
    assert entries[0].details["serving"]["macro_f1"] == 0.8


def test_a_refused_candidate_leaves_serving_untouched(database: Database) -> None:
    register(database, "v1", "v2")
    with database.transaction() as session:
        set_alias(session, "intent", "serving", "v1", "ops", "first model")
        decision = gate(report(0.801), report(0.8), CONFIG)
        done = promote_if_better(session, "intent", "v2", decision, actor="trainer")

    with database.transaction() as session:
        assert len(alias_history(session, "intent", "serving")) == 1
        assert serving_version(session, "intent") == get_model_version(session, "intent", "v1")
        (entry,) = audit_log(session, action="promotion.decide")
        assert get_model_version(session, "intent", "v2").status == "candidate"
    assert (done.promoted, done.serving, done.move) == (False, "v1", None)
    assert entry.details["promote"] is False
    assert entry.details["reasons"] == decision.reasons


def test_a_first_model_becomes_serving_and_rollback_is_one_call(database: Database) -> None:
    register(database, "v1", "v2")
    with database.transaction() as session:
        first = promote_if_better(
            session, "intent", "v1", gate(report(0.8), None, CONFIG), actor="t"
        )
        second = promote_if_better(
            session, "intent", "v2", gate(report(0.9), report(0.8), CONFIG), actor="t"
        )
    with database.transaction() as session:
        back = rollback(session, "intent", "serving", "ops")
        now = serving_version(session, "intent")

    assert first.move is not None
    assert first.move.previous_version is None
    assert second.serving == "v2"
    assert (back.version, back.previous_version) == ("v1", "v2")
    assert now is not None
    assert now.version == "v1"


def test_a_failure_while_recording_undoes_the_alias_move(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(database, "v1")

    def broken_audit(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr("finetune._gate.audit", broken_audit)
    with database.transaction() as session:
        with pytest.raises(RuntimeError, match="audit log unavailable"):
            promote_if_better(session, "intent", "v1", gate(report(0.8), None, CONFIG), actor="t")
        assert serving_version(session, "intent") is None
        assert alias_history(session, "intent", "serving") == []


def test_promoting_an_unknown_version_is_refused(database: Database) -> None:
    register(database, "v1")
    with database.transaction() as session, pytest.raises(UnknownModelVersionError, match="v1"):
        promote_if_better(session, "intent", "v9", gate(report(0.8), None, CONFIG), actor="t")


class LabelF1(BaseModel):
    f1: float
    support: int


class Report(BaseModel):
    macro_f1: float
    per_label: dict[str, LabelF1]


def test_pydantic_reports_with_per_label_score_objects_are_gated() -> None:
    config = GateConfig(guarded_labels=("fraud",), tolerance_points=1.0)
    serving = Report(macro_f1=0.8, per_label={"fraud": LabelF1(f1=0.9, support=10)})

    kept = gate(
        Report(macro_f1=0.9, per_label={"fraud": LabelF1(f1=0.9, support=10)}), serving, config
    )
    lost = gate(
        Report(macro_f1=0.9, per_label={"fraud": LabelF1(f1=0.5, support=10)}), serving, config
    )

    assert kept.promote
    assert failed(lost) == ["guarded:fraud"]
    assert lost.candidate["per_label"]["fraud"] == {"f1": 0.5, "support": 10}
