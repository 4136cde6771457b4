"""Run state and typed references into it: the shared language of rules and input mappings.

A run's state is the validated task plus the latest output of every step that has run (and
the failure of every step that failed into an error route). Each step writes only its own
key, so parallel branches never write the same key and need no merge policy.

References name a value in that state:

- ``task.text``: a field of the task;
- ``state("perceive").label``: a field of step ``perceive``'s output;
- ``failure("reason").message``: a field of the ``StepFailure`` of step ``reason``;
- ``state("score").probs["lost_card"]``, ``state("x").items[0]``: item access.

Their text form (``task.text``, ``state.perceive.label``, ``failure.reason.message``,
``state.score.probs["lost_card"]``) is what saved workflows contain.
"""

from __future__ import annotations

import json
import operator
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn

from pydantic import BaseModel

from knowledge import StepFailure
from workflow._errors import RuleError

__all__ = ["Ref", "RunState", "failure", "parse_ref", "state", "task"]

Root = Literal["task", "state", "failure"]
# A path segment: ("attr", name) or ("item", key).
Segment = tuple[str, Any]


class RunState:
    """The state of one run; rules and input mappings read it, only the engine writes it."""

    __slots__ = ("_failures", "_outputs", "failures", "outputs", "task")

    def __init__(self, task: BaseModel) -> None:
        self.task = task
        self._outputs: dict[str, BaseModel] = {}
        self._failures: dict[str, StepFailure] = {}
        self.outputs: Mapping[str, BaseModel] = types.MappingProxyType(self._outputs)
        self.failures: Mapping[str, StepFailure] = types.MappingProxyType(self._failures)

    def __repr__(self) -> str:
        return f"RunState(task={self.task!r}, outputs={dict(self._outputs)!r})"


class Ref:
    """A reference to a value in run state; comparisons on it build rules.

    Attribute access extends the path (``.field``); ``field("name")`` reaches fields whose
    names clash with the methods below. A ``Ref`` is not a bool: combine rules with ``&``,
    ``|`` and ``~``, and test membership with ``is_in`` / ``contains``.
    """

    __slots__ = ("_path", "_root", "_step")
    _root: Root
    _step: str | None
    _path: tuple[Segment, ...]
    __hash__ = None  # type: ignore[assignment]  # == builds a rule, so refs are unhashable

    def __init__(self, root: Root, step: str | None = None, path: tuple[Segment, ...] = ()):
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_path", path)

    @property
    def root(self) -> Root:
        """``task``, ``state`` or ``failure``."""
        return self._root

    @property
    def step(self) -> str | None:
        """The step whose output or failure this refers to (None for the task)."""
        return self._step

    @property
    def path(self) -> tuple[Segment, ...]:
        """The path below the root, as ``("attr", name)`` / ``("item", key)`` segments."""
        return self._path

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.field(name)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Ref is immutable")

    def field(self, name: str) -> Ref:
        """The field ``name`` below this reference."""
        return Ref(self.root, self.step, (*self.path, ("attr", name)))

    def __getitem__(self, key: str | int) -> Ref:
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise RuleError(f"Item keys in references must be str or int, not {key!r}")
        return Ref(self.root, self.step, (*self.path, ("item", key)))

    def __bool__(self) -> NoReturn:
        raise RuleError(
            f"{self} is a reference, not a value: compare it (==, <, .is_in(...)) and combine "
            "rules with &, | and ~ instead of and, or, not."
        )

    def __eq__(self, other: object) -> Any:  # returns a Compare rule
        return _compare(self, "==", other)

    def __ne__(self, other: object) -> Any:
        return _compare(self, "!=", other)

    def __lt__(self, other: object) -> Any:
        return _compare(self, "<", other)

    def __le__(self, other: object) -> Any:
        return _compare(self, "<=", other)

    def __gt__(self, other: object) -> Any:
        return _compare(self, ">", other)

    def __ge__(self, other: object) -> Any:
        return _compare(self, ">=", other)

    def __invert__(self) -> Any:  # the value is falsy
        return ~_truthy(self)

    def __and__(self, other: Any) -> Any:
        return _truthy(self) & other

    def __or__(self, other: Any) -> Any:
        return _truthy(self) | other

    def __rand__(self, other: Any) -> Any:
        return other & _truthy(self)

    def __ror__(self, other: Any) -> Any:
        return other | _truthy(self)

    def is_in(self, values: Any) -> Any:
        """Rule: this value is one of ``values`` (a list, tuple or set of constants)."""
        if not isinstance(values, list | tuple | set | frozenset):
            raise RuleError(f"is_in() takes a list of constants, not {values!r}")
        return _compare(self, "in", list(values))

    def contains(self, value: Any) -> Any:
        """Rule: this value (a list, string or mapping) contains ``value``."""
        return _compare(self, "contains", value)

    def to_text(self) -> str:
        """The text form used in saved workflows (``state.perceive.label``)."""
        head = "task" if self.root == "task" else f"{self.root}.{self.step}"
        return head + "".join(_segment_text(seg) for seg in self.path)

    def __str__(self) -> str:
        head = "task" if self.root == "task" else f"{self.root}({self.step!r})"
        return head + "".join(_segment_text(seg) for seg in self.path)

    def __repr__(self) -> str:
        return f"Ref({self})"

    def getter(self) -> Callable[[RunState], Any]:
        """A function reading this reference's value from a run state."""
        root = _root_getter(self.root, self.step)
        if not self.path:
            return root
        if all(kind == "attr" for kind, _ in self.path):
            fields = operator.attrgetter(".".join(name for _, name in self.path))
            return lambda s: fields(root(s))
        path = self.path

        def walk(s: RunState) -> Any:
            value = root(s)
            for kind, key in path:
                value = getattr(value, key) if kind == "attr" else value[key]
            return value

        return walk


def _root_getter(root: Root, step: str | None) -> Callable[[RunState], Any]:
    if root == "task":
        return operator.attrgetter("task")
    name = str(step)

    def read(s: RunState) -> Any:
        try:
            return (s._outputs if root == "state" else s._failures)[name]
        except KeyError:
            what = "has not run" if root == "state" else "has not failed"
            raise RuleError(f"{root}({name!r}) is not available: step '{name}' {what}") from None

    return read


def _segment_text(segment: Segment) -> str:
    kind, key = segment
    return f".{key}" if kind == "attr" else f"[{json.dumps(key)}]"


def _compare(left: Ref, op: str, right: Any) -> Any:
    from workflow._rules import Compare  # noqa: PLC0415 - rules build on refs; avoids a cycle

    return Compare(left, op, right)


def _truthy(ref: Ref) -> Any:
    from workflow._rules import Truthy  # noqa: PLC0415 - rules build on refs; avoids a cycle

    return Truthy(ref)


task = Ref("task")


def state(step: str) -> Ref:
    """Reference to the output of ``step``."""
    return Ref("state", step)


def failure(step: str) -> Ref:
    """Reference to the ``StepFailure`` of ``step`` (read it in error-route handlers)."""
    return Ref("failure", step)


_REF_HEAD = re.compile(r"^(task|(state|failure)\.([A-Za-z_][A-Za-z0-9_]*))")
_REF_SEGMENT = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+|"(?:[^"\\]|\\.)*")\]')


def parse_ref(text: str) -> Ref:
    """Parse a reference's text form (``state.perceive.label``); raise ``RuleError`` if bad."""
    head = _REF_HEAD.match(text)
    if head is None:
        raise RuleError(
            f"Bad reference {text!r}: it must start with 'task', 'state.<step>' or 'failure.<step>'"
        )
    ref = task if head.group(1) == "task" else Ref(head.group(2), head.group(3))  # type: ignore[arg-type]
    position = head.end()
    while position < len(text):
        seg = _REF_SEGMENT.match(text, position)
        if seg is None:
            raise RuleError(f"Bad reference {text!r}: cannot parse from {text[position:]!r}")
        ref = ref.field(seg.group(1)) if seg.group(1) else ref[json.loads(seg.group(2))]
        position = seg.end()
    return ref
