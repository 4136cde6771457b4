"""Where agents are found by name: in-process registration plus plugin entry points."""

from __future__ import annotations

import difflib
import logging
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from agents._contract import Agent
from agents._errors import AgentContractError, AgentNotFoundError, PluginError
from agents._validation import validate_agent_class

__all__ = ["ENTRY_POINT_GROUP", "AgentRegistry", "default_registry", "register"]

ENTRY_POINT_GROUP = "taskloom.agents"

_log = logging.getLogger("taskloom.agents")

AgentClass = TypeVar("AgentClass", bound=type[Agent[Any, Any]])


class AgentRegistry:
    """Agent classes by name.

    Plugins are entry points in ``entry_point_group`` whose name is the agent name and whose
    value is the agent class (``weather = weather_agent:WeatherAgent``). They are loaded
    lazily, one at a time on first lookup, or all when the registry is listed; never at
    import. Every class is validated when it is registered, with errors naming the plugin.
    """

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._classes: dict[str, type[Agent[Any, Any]]] = {}
        self._origins: dict[str, str] = {}
        self._group = entry_point_group
        self._lock = threading.RLock()
        self._scanned = False
        self._broken: dict[str, Exception] = {}
        self._available: list[EntryPoint] | None = None

    def register(self, cls: AgentClass, *, origin: str | None = None) -> AgentClass:
        """Register an agent class; usable as a class decorator.

        Registering the same class twice is a no-op; another class under a taken name is an
        error naming both.
        """
        validate_agent_class(cls, origin=origin)
        with self._lock:
            existing = self._classes.get(cls.name)
            if existing is not None and existing is not cls:
                raise AgentContractError(
                    cls.name,
                    [
                        f"the name is already taken by {_qualname(existing)} "
                        f"(from {self._origins[cls.name]}); agent names must be unique"
                    ],
                    origin=origin or _qualname(cls),
                )
            self._classes[cls.name] = cls
            self._origins[cls.name] = origin or _qualname(cls)
        return cls

    def unregister(self, name: str) -> None:
        """Remove a registered agent (tests and reloads)."""
        with self._lock:
            self._classes.pop(name, None)
            self._origins.pop(name, None)

    def get(self, name: str) -> type[Agent[Any, Any]]:
        """Return the agent class registered as ``name``, loading its plugin if needed."""
        with self._lock:
            found = self._classes.get(name)
            if found is None:
                for entry_point in self._entry_points(name):
                    self._load(entry_point)
                found = self._classes.get(name)
        if found is None:
            known = self.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise AgentNotFoundError(name, known, hint=hint)
        return found

    def create(self, name: str, params: dict[str, Any] | None = None) -> Agent[Any, Any]:
        """Instantiate the agent registered as ``name`` with keyword ``params``.

        Raises:
            AgentContractError: ``params`` do not fit the agent's ``__init__`` (a
                ``TypeError``) or it rejects their values (a ``ValueError``).
        """
        cls = self.get(name)
        try:
            return cls(**(params or {}))
        except (TypeError, ValueError) as exc:
            raise AgentContractError(name, [f"cannot be built with {params!r}: {exc}"]) from exc

    def names(self) -> list[str]:
        """All agent names, plugins included (this loads every plugin once)."""
        with self._lock:
            if not self._scanned:
                self._scanned = True
                for entry_point in self._entry_points(None):
                    if entry_point.name not in self._classes:
                        try:
                            self._load(entry_point)
                        except (PluginError, AgentContractError) as exc:
                            # One broken plugin must not hide the others; get() re-raises it.
                            self._broken[entry_point.name] = exc
                            _log.warning("Skipping broken agent plugin: %s", exc)
            return sorted(self._classes)

    @property
    def broken(self) -> dict[str, Exception]:
        """Plugins that failed to load while listing, by entry-point name."""
        return dict(self._broken)

    def origin(self, name: str) -> str:
        """Where the agent registered as ``name`` came from."""
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def refresh(self) -> None:
        """Forget the entry points seen so far (after installing a plugin at run time)."""
        with self._lock:
            self._available, self._scanned = None, False

    def _entry_points(self, name: str | None) -> list[EntryPoint]:
        if self._group is None:
            return []
        if self._available is None:
            # Scanning installed distributions costs ~10 ms; do it once, not per lookup.
            self._available = list(entry_points(group=self._group))
        return [ep for ep in self._available if name is None or ep.name == name]

    def _load(self, entry_point: EntryPoint) -> None:
        dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
        origin = f"plugin '{dist}' (entry point '{entry_point.name} = {entry_point.value}')"
        try:
            cls = entry_point.load()
        except Exception as exc:
            raise PluginError(f"{origin} failed to import: {exc}") from exc
        if getattr(cls, "name", None) != entry_point.name:
            raise PluginError(
                f"{origin} provides an agent named {getattr(cls, 'name', None)!r}; the entry "
                f"point name must equal the agent's name"
            )
        self.register(cls, origin=origin)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


default_registry = AgentRegistry()
register = default_registry.register
