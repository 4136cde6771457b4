"""Decision rules: building, evaluating, printing and serializing; never eval."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agents.testing import FakeOutput
from workflow import AllOf, AnyOf, Compare, Not, RuleError, RunState, Truthy, failure, state, task
from workflow._rules import as_rule, rule_from_dict
from workflow._state import parse_ref


class Task(BaseModel):
    text: str
    tags: list[str] = []
    scores: dict[str, float] = {}


def run_state(**outputs: FakeOutput) -> RunState:
    s = RunState(Task(text="Lost card", tags=["vip"], scores={"lost": 0.9}))
    s._outputs.update(outputs)
    return s


S = run_state(a=FakeOutput(label="reply", score=0.7, n=3, text="x"))

CASES = [
    (state("a").label == "reply", True),
    (state("a").label != "reply", False),
    (state("a").score < 0.5, False),
    (state("a").score <= 0.7, True),
    (state("a").n > 2, True),
    (state("a").n >= 4, False),
    (state("a").label.is_in(["reply", "ask"]), True),
    (task.tags.contains("vip"), True),
    (task.text.contains("card"), True),
    (task.scores["lost"] > 0.5, True),
    ((state("a").n > 2) & (state("a").label == "ask"), False),
    ((state("a").n > 2) | (state("a").label == "ask"), True),
    (~(state("a").label == "reply"), False),
    (~state("a").text, False),
    (state("a").text & (state("a").n == 3), True),
    (state("a").score > state("a").n, False),
]


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[str(r) for r, _ in CASES])
def test_rules_evaluate(rule: object, expected: bool) -> None:
    assert rule.compile()(S) is expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[str(r) for r, _ in CASES])
def test_rules_round_trip_through_dicts(rule: object, expected: bool) -> None:
    data = rule.to_dict()  # type: ignore[attr-defined]
    rebuilt = rule_from_dict(data, allow=())
    assert rebuilt.to_dict() == data
    assert str(rebuilt) == str(rule)
    assert rebuilt.compile()(S) is expected


def test_rules_print_as_the_python_that_builds_them() -> None:
    rule = (state("a").label.is_in(["x"]) & ~(task.scores["lost"] < 0.5)) | failure("b").message
    assert str(rule) == (
        "((state('a').label.is_in(['x'])) & (~(task.scores[\"lost\"] < 0.5))) | "
        "(failure('b').message)"
    )


def test_reference_operands_print_as_references() -> None:
    assert str(state("a").score > task.scores["lost"]) == (
        "state('a').score > task.scores[\"lost\"]"
    )


def test_groups_flatten() -> None:
    a, b, c = (state("a").n == i for i in range(3))
    assert len((a & b & c).rules) == 3  # type: ignore[attr-defined]
    assert isinstance(a | b, AnyOf)
    assert isinstance(a & b, AllOf)
    assert isinstance(~a, Not)


def test_refs_and_rules_are_not_bools() -> None:
    with pytest.raises(RuleError, match="compare it"):
        bool(state("a").label)
    rule = state("a").label == "x"
    with pytest.raises(RuleError, match="has no truth value"):
        bool(rule)
    with pytest.raises(RuleError, match="instead of and, or, not"):
        _ = state("a").n > 1 and state("a").n < 3


def test_missing_step_output_is_a_clear_error() -> None:
    with pytest.raises(RuleError, match="state\\('zz'\\) is not available: step 'zz' has not run"):
        (state("zz").label == "x").compile()(S)


def test_refs_parse_from_text() -> None:
    for ref in (
        task.text,
        state("a").label,
        failure("b").message,
        task.scores["lost"],
        state("a").items[0],
        task.scores['we"ird'],
    ):
        assert parse_ref(ref.to_text()).to_text() == ref.to_text()
    for bad in ("tasks.x", "state", "state.a..b", "state.a[", "failure.1x"):
        with pytest.raises(RuleError, match="Bad reference"):
            parse_ref(bad)


def test_bad_rule_dicts() -> None:
    for data, message in (
        ([], "must be a mapping"),
        ({"op": "==", "value": 1}, "needs 'ref'"),
        ({"op": "==", "ref": "task.text"}, "needs 'value' or 'other'"),
        ({"op": "~=", "ref": "task.text", "value": 1}, "Unknown operator '~='"),
        ({"all": [{"op": "true", "ref": "task.text"}]}, "needs at least two rules"),
    ):
        with pytest.raises(RuleError, match=message):
            rule_from_dict(data, allow=())


def test_callables_coerce_and_are_checked() -> None:
    assert isinstance(as_rule(state("a").ok), Truthy)
    assert as_rule(None) is None
    with pytest.raises(RuleError, match="must take exactly one argument"):
        as_rule(lambda: True)
    with pytest.raises(RuleError, match="evaluated to a plain bool"):
        as_rule(True)
    with pytest.raises(RuleError, match="only module-level functions can be saved"):
        as_rule(lambda s: True).to_dict()  # type: ignore[union-attr]


def test_is_in_needs_a_collection() -> None:
    with pytest.raises(RuleError, match="is_in\\(\\) takes a list of constants"):
        state("a").label.is_in("abc")
    assert isinstance(state("a").label.is_in(("a", "b")), Compare)


def test_refs_are_immutable_and_unhashable() -> None:
    ref = state("a").label
    with pytest.raises(AttributeError, match="immutable"):
        ref.x = 1
    with pytest.raises(TypeError):
        hash(ref)
    assert ref.field("step").to_text() == "state.a.label.step"
