"""Compile-time type checks of references, rule constants and input mappings.

The checks are conservative: they report only what is certainly wrong (a missing field, a
constant the field can never equal, a mapping between unrelated types) and accept anything
they cannot reason about (``Any``, unknown generics, properties).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from workflow._state import Ref

__all__ = ["UNKNOWN", "assignable", "describe", "resolve", "value_fits"]

UNKNOWN: Any = Any


class RefTypeError(Exception):
    """A reference does not resolve; the message says which part and lists valid fields."""


def resolve(ref: Ref, root_type: Any) -> Any:
    """Return the annotation of ``ref``'s value, ``UNKNOWN`` if it cannot be known.

    Raises:
        RefTypeError: A field on the path does not exist.
    """
    current = root_type
    walked = Ref(ref.root, ref.step)
    for kind, key in ref.path:
        current = _strip_optional(current)
        current = _attr_type(current, key, walked) if kind == "attr" else _item_type(current, key)
        walked = walked.field(key) if kind == "attr" else walked[key]
        if current is UNKNOWN:
            return UNKNOWN
    return current


def _attr_type(owner: Any, name: str, walked: Ref) -> Any:
    if not (isinstance(owner, type) and issubclass(owner, BaseModel)):
        return UNKNOWN
    if name in owner.model_fields:
        return owner.model_fields[name].annotation
    if name in owner.model_computed_fields or isinstance(getattr(owner, name, None), property):
        return UNKNOWN
    valid = ", ".join(owner.model_fields) or "(none)"
    raise RefTypeError(f"{walked} ({owner.__name__}) has no field '{name}'; fields: {valid}")


def _item_type(container: Any, key: Any) -> Any:
    origin, args = typing.get_origin(container), typing.get_args(container)
    if origin in (dict, typing.Mapping) and len(args) == 2:  # noqa: PLR2004 - key, value
        return args[1]
    if origin in (list, typing.Sequence) and args and isinstance(key, int):
        return args[0]
    return UNKNOWN


def _strip_optional(annotation: Any) -> Any:
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def value_fits(annotation: Any, value: Any) -> bool:
    """True if a value of type ``annotation`` can equal the constant ``value``."""
    if annotation is UNKNOWN:
        return True
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        return bool(adapter.validate_python(value) == value)
    except (ValidationError, TypeError, ValueError):
        return False
    except Exception:  # an annotation pydantic cannot build a schema for: accept
        return True


def assignable(source: Any, target: Any) -> bool:  # noqa: PLR0911 - one return per case
    """True unless a ``source`` value can certainly not populate a ``target`` field."""
    if UNKNOWN in (source, target) or source == target:
        return True
    if _is_union(target):
        return any(assignable(source, member) for member in typing.get_args(target))
    if _is_union(source):
        return all(
            assignable(member, target)
            for member in typing.get_args(source)
            if member is not type(None) or target is type(None)
        )
    if typing.get_origin(source) is typing.Literal:
        return all(value_fits(target, value) for value in typing.get_args(source))
    source_cls = typing.get_origin(source) or source
    target_cls = typing.get_origin(target) or target
    if not (isinstance(source_cls, type) and isinstance(target_cls, type)):
        return True
    if target_cls is float and source_cls is int:
        return True
    return issubclass(source_cls, target_cls)


def describe(annotation: Any) -> str:
    """A short readable name of an annotation."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
