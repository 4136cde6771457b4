"""Importing objects named by path (``package.module:Qualified.name``) under an allowlist."""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from agents._errors import ImportNotAllowedError, PluginError

__all__ = ["DEFAULT_ALLOWLIST", "import_object", "is_allowed", "object_path"]

# taskloom's own packages ship agents and helpers that saved workflows may name.
DEFAULT_ALLOWLIST: tuple[str, ...] = ("agents", "workflow")


def object_path(obj: Any) -> str | None:
    """Return ``module:qualname`` if ``obj`` can be imported back by that path, else None."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        found = _resolve(module, qualname)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None


def import_object(path: str, allow: Collection[str] = DEFAULT_ALLOWLIST) -> Any:
    """Import the object at ``path`` if its module is allowlisted.

    Args:
        path: ``package.module:Qualified.name``.
        allow: Module prefixes that may be imported (``"pkg"`` allows ``pkg`` and ``pkg.*``).

    Raises:
        ImportNotAllowedError: The module is not allowlisted.
        PluginError: The path is malformed or does not resolve.
    """
    module, sep, qualname = path.partition(":")
    if not sep or not module or not qualname:
        raise PluginError(f"Malformed import path '{path}': expected 'package.module:Name'.")
    if not is_allowed(module, allow):
        raise ImportNotAllowedError(path, allow)
    try:
        return _resolve(module, qualname)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"Cannot import '{path}': {exc}") from exc


def is_allowed(module: str, allow: Collection[str]) -> bool:
    """Whether ``module`` is one of the ``allow`` prefixes or inside one of them."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allow)


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
