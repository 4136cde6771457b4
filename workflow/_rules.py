"""Decision rules: data, not strings to ``eval``.

Build them from references (``workflow._state``)::

    state("decide").action == "reply"
    (state("perceive").confidence < 0.6) | state("perceive").intent.is_in(["lost_card"])
    ~state("check").ok

or pass a typed callable ``f(state: RunState) -> bool``. A rule compiles to a plain Python
closure once, when the workflow is compiled; it is type-checked against the step output
types, prints as the Python that builds it, and serializes to a small dict.
"""

from __future__ import annotations

import inspect
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from typing import Any, NoReturn

from agents import import_object, object_path
from workflow._errors import RuleError
from workflow._state import Ref, RunState, parse_ref
from workflow._typecheck import RefTypeError, describe, value_fits

__all__ = [
    "AllOf",
    "AnyOf",
    "Call",
    "Compare",
    "Not",
    "Rule",
    "Truthy",
    "as_rule",
    "rule_from_dict",
]

Resolver = Callable[[Ref], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda left, right: left in right,
    "contains": operator.contains,
}


class Rule(ABC):
    """A condition over run state. Combine with ``&``, ``|``, ``~``."""

    def __and__(self, other: Rule | Ref) -> Rule:
        return AllOf(self, _require_rule(other))

    def __or__(self, other: Rule | Ref) -> Rule:
        return AnyOf(self, _require_rule(other))

    def __invert__(self) -> Rule:
        return Not(self)

    def __bool__(self) -> NoReturn:
        raise RuleError(
            f"Rule {self} has no truth value: combine rules with &, | and ~ instead of and, "
            "or, not."
        )

    @abstractmethod
    def compile(self) -> Callable[[RunState], bool]:
        """A closure evaluating this rule on a run state."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The serialized form (see ``rule_from_dict``)."""

    @abstractmethod
    def refs(self) -> Iterator[Ref]:
        """Every reference this rule reads."""

    @abstractmethod
    def check(self, resolve: Resolver) -> list[str]:
        """Problems found type-checking this rule; ``resolve`` maps a ref to its type."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class Compare(Rule):
    """``ref <op> value``, where value is a constant or another reference."""

    def __init__(self, left: Ref, op: str, right: Any) -> None:
        if op not in _OPS:
            raise RuleError(f"Unknown operator {op!r}; valid: {', '.join(_OPS)}")
        if isinstance(right, Rule):
            raise RuleError(f"Cannot compare {left} with the rule {right}")
        self.left, self.op, self.right = left, op, right

    def compile(self) -> Callable[[RunState], bool]:
        get, fn = self.left.getter(), _OPS[self.op]
        if isinstance(self.right, Ref):
            get_right = self.right.getter()
            return lambda s: bool(fn(get(s), get_right(s)))
        right = self.right
        return lambda s: bool(fn(get(s), right))

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.right, Ref):
            return {"op": self.op, "ref": self.left.to_text(), "other": self.right.to_text()}
        return {"op": self.op, "ref": self.left.to_text(), "value": self.right}

    def refs(self) -> Iterator[Ref]:
        yield self.left
        if isinstance(self.right, Ref):
            yield self.right

    def check(self, resolve: Resolver) -> list[str]:
        try:
            left = resolve(self.left)
            for ref in self.refs():
                resolve(ref)
        except RefTypeError as exc:
            return [str(exc)]
        if isinstance(self.right, Ref) or self.op == "contains":
            return []
        values = self.right if self.op == "in" else [self.right]
        bad = [v for v in values if not value_fits(left, v)]
        if not bad:
            return []
        shown = ", ".join(repr(v) for v in bad)
        return [
            f"rule {self} compares {self.left} ({describe(left)}) with {shown}, "
            "which it can never equal"
        ]

    def __str__(self) -> str:
        if self.op == "in":
            return f"{self.left}.is_in({self.right!r})"
        if self.op == "contains":
            return f"{self.left}.contains({self.right!r})"
        right = str(self.right) if isinstance(self.right, Ref) else repr(self.right)
        return f"{self.left} {self.op} {right}"


class Truthy(Rule):
    """The referenced value is truthy (a bool field, a non-empty list...)."""

    def __init__(self, ref: Ref) -> None:
        self.ref = ref

    def compile(self) -> Callable[[RunState], bool]:
        get = self.ref.getter()
        return lambda s: bool(get(s))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "true", "ref": self.ref.to_text()}

    def refs(self) -> Iterator[Ref]:
        yield self.ref

    def check(self, resolve: Resolver) -> list[str]:
        try:
            resolve(self.ref)
        except RefTypeError as exc:
            return [str(exc)]
        return []

    def __str__(self) -> str:
        return str(self.ref)


class _Group(Rule):
    joiner = ""
    key = ""
    rules: tuple[Rule, ...]

    def __init__(self, *rules: Rule) -> None:
        flat: list[Rule] = []
        for rule in rules:
            flat.extend(
                rule.rules if isinstance(rule, _Group) and type(rule) is type(self) else [rule]
            )
        if len(flat) < 2:  # noqa: PLR2004 - a group of one is not a group
            raise RuleError(f"{type(self).__name__} needs at least two rules")
        self.rules = tuple(flat)

    def to_dict(self) -> dict[str, Any]:
        return {self.key: [rule.to_dict() for rule in self.rules]}

    def refs(self) -> Iterator[Ref]:
        for rule in self.rules:
            yield from rule.refs()

    def check(self, resolve: Resolver) -> list[str]:
        return [problem for rule in self.rules for problem in rule.check(resolve)]

    def __str__(self) -> str:
        return f" {self.joiner} ".join(f"({rule})" for rule in self.rules)


class AllOf(_Group):
    """Every rule holds (``a & b``); stops at the first that does not."""

    joiner, key = "&", "all"

    def compile(self) -> Callable[[RunState], bool]:
        tests = tuple(rule.compile() for rule in self.rules)
        return lambda s: all(test(s) for test in tests)


class AnyOf(_Group):
    """Some rule holds (``a | b``); stops at the first that does."""

    joiner, key = "|", "any"

    def compile(self) -> Callable[[RunState], bool]:
        tests = tuple(rule.compile() for rule in self.rules)
        return lambda s: any(test(s) for test in tests)


class Not(Rule):
    """The rule does not hold (``~a``)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def compile(self) -> Callable[[RunState], bool]:
        test = self.rule.compile()
        return lambda s: not test(s)

    def to_dict(self) -> dict[str, Any]:
        return {"not": self.rule.to_dict()}

    def refs(self) -> Iterator[Ref]:
        return self.rule.refs()

    def check(self, resolve: Resolver) -> list[str]:
        return self.rule.check(resolve)

    def __str__(self) -> str:
        return f"~({self.rule})"


class Call(Rule):
    """A typed Python callable ``f(state: RunState) -> bool`` used as a rule."""

    def __init__(self, function: Callable[[RunState], bool]) -> None:
        _check_callable(function, "rule")
        self.function = function

    def compile(self) -> Callable[[RunState], bool]:
        function = self.function
        return lambda s: bool(function(s))

    def to_dict(self) -> dict[str, Any]:
        return {"call": callable_path(self.function, "rule")}

    def refs(self) -> Iterator[Ref]:
        return iter(())

    def check(self, resolve: Resolver) -> list[str]:
        return []

    def __str__(self) -> str:
        return f"{getattr(self.function, '__qualname__', repr(self.function))}(state)"


def _check_callable(function: Any, what: str) -> None:
    if not callable(function):
        raise RuleError(f"A {what} must be a Rule or a callable, not {function!r}")
    try:
        inspect.signature(function).bind(None)
    except TypeError as exc:
        raise RuleError(
            f"The {what} callable {function!r} must take exactly one argument (the run state)"
        ) from exc
    except ValueError:  # builtins without signatures: accept
        return


def callable_path(function: Any, what: str) -> str:
    """The import path of a callable, or a ``RuleError`` explaining why it has none."""
    path = object_path(function)
    if path is None:
        raise RuleError(
            f"Cannot save the {what} {function!r}: only module-level functions can be saved "
            "(not lambdas, closures or functions in __main__); use one, or a rule expression."
        )
    return path


def _require_rule(value: Rule | Ref) -> Rule:
    rule = as_rule(value)
    if rule is None:
        raise RuleError("Cannot combine a rule with None")
    return rule


def as_rule(when: Any) -> Rule | None:
    """Coerce what a route's ``when=`` accepts into a rule (None means: default route)."""
    if when is None or isinstance(when, Rule):
        return when
    if isinstance(when, Ref):
        return Truthy(when)
    if isinstance(when, bool):
        raise RuleError(
            "A route condition evaluated to a plain bool: compare references (state(...), "
            "task) rather than values, or pass a callable."
        )
    return Call(when)


def rule_from_dict(data: Any, *, allow: Collection[str]) -> Rule:
    """Rebuild a rule from ``Rule.to_dict()`` output; callables load under ``allow``."""
    if not isinstance(data, dict) or not data:
        raise RuleError(f"A rule must be a mapping, got {data!r}")
    if "all" in data or "any" in data:
        group = AllOf if "all" in data else AnyOf
        items = data["all" if group is AllOf else "any"]
        return group(*(rule_from_dict(d, allow=allow) for d in items))
    if "not" in data:
        return Not(rule_from_dict(data["not"], allow=allow))
    if "call" in data:
        return Call(import_object(data["call"], allow))
    op, ref = data.get("op"), data.get("ref")
    if not isinstance(ref, str):
        raise RuleError(f"Rule {data!r} needs 'ref' (a reference such as 'state.step.field')")
    if op == "true":
        return Truthy(parse_ref(ref))
    if "other" in data:
        return Compare(parse_ref(ref), str(op), parse_ref(data["other"]))
    if "value" not in data:
        raise RuleError(f"Rule {data!r} needs 'value' or 'other'")
    return Compare(parse_ref(ref), str(op), data["value"])
