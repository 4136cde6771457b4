"""The agent branch of the exception tree (drawn in ``knowledge._errors``)."""

from __future__ import annotations

from collections.abc import Iterable

from knowledge import TaskloomError

__all__ = [
    "AgentContractError",
    "AgentError",
    "AgentNotFoundError",
    "ImportNotAllowedError",
    "ModelArtifactError",
    "PluginError",
    "StepCancelledError",
]


class AgentError(TaskloomError):
    """Something about an agent is wrong."""


class AgentContractError(AgentError, TypeError):
    """An agent class, its parameters or its output break the agent contract.

    Attributes:
        agent: The agent's name (or class name when it has none).
        problems: Every problem found, one line each.
    """

    def __init__(self, agent: str, problems: Iterable[str], *, origin: str | None = None) -> None:
        self.agent = agent
        self.problems = list(problems)
        self.origin = origin
        where = f" from {origin}" if origin else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Agent '{agent}'{where} breaks the agent contract:\n{lines}")


class AgentNotFoundError(AgentError, LookupError):
    """No agent is registered under a name."""

    def __init__(self, name: str, known: Iterable[str], *, hint: str = "") -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "(none)"
        super().__init__(
            f"Unknown agent '{name}'.{hint} Registered agents: {listed}. Register it with "
            "agents.register(...) or install a plugin providing it (entry-point group "
            "'taskloom.agents')."
        )


class PluginError(AgentError):
    """A plugin (an entry point or an import path) failed to load or validate."""


class ImportNotAllowedError(PluginError):
    """An import path named in a saved workflow is outside the allowlist."""

    def __init__(self, path: str, allow: Iterable[str]) -> None:
        self.path = path
        self.allow = sorted(allow)
        listed = ", ".join(self.allow) or "empty"
        super().__init__(
            f"Refusing to import '{path}': its module is not in the import allowlist "
            f"({listed}). Loading a workflow runs code from the paths it names, so only "
            "allowlisted modules are imported; pass allow_imports=[...] to trust more."
        )


class ModelArtifactError(AgentError):
    """A model artifact is missing, incomplete, tampered with or in a refused format.

    Attributes:
        path: The artifact directory (or file) concerned.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class StepCancelledError(AgentError):
    """The engine cancelled the step (timeout or shutdown); raised by the agent on request."""
