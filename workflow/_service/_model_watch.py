"""Keeps the served workflows' registry agents on the model their alias points at.

An agent built with ``from_registry`` serves the version its alias (``serving``) named when
it loaded. After a promotion or rollback through the service it is refreshed at once; a
promotion made elsewhere (a fine-tuning round in its own process, another service) is picked
up by a periodic check. A new version that fails to load leaves the old one serving, and
the failure is logged. Agents running on a Ray cluster live in their replicas, not here:
those serve a new version after their replicas restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from knowledge import Database
from workflow._compiled import CompiledWorkflow

__all__ = ["ModelWatch"]

_log = logging.getLogger("taskloom.service")


class ModelWatch:
    """Refreshes registry-following agents, on demand and every ``interval_s`` seconds."""

    def __init__(
        self, workflows: Iterable[CompiledWorkflow], database: Database, interval_s: float
    ) -> None:
        self._agents = list(_registry_agents(workflows))
        self._database = database
        self._interval_s = interval_s

    def refresh(self, agent: str | None = None) -> list[str]:
        """Swap every registry agent (of ``agent``, or all) whose alias moved; return them."""
        swapped = []
        for target in self._agents:
            name = target.registry_alias[0]
            if agent is not None and name != agent:
                continue
            try:
                if target.refresh_from_registry(self._database):
                    swapped.append(name)
                    _log.info("agent %s now serves %s", name, target.model_version)
            except Exception:  # the old version keeps serving; the log says why
                _log.exception("agent %s could not load its new model version", name)
        return swapped

    async def run(self) -> None:
        """Refresh every ``interval_s`` seconds until cancelled (no-op without agents)."""
        if not self._agents or self._interval_s <= 0:
            return
        while True:
            await asyncio.sleep(self._interval_s)
            await asyncio.to_thread(self.refresh)


def _registry_agents(workflows: Iterable[CompiledWorkflow]) -> Iterator[Any]:
    """Each distinct agent of ``workflows`` that follows a registry alias, once."""
    seen: set[int] = set()
    for workflow in workflows:
        for step in workflow.steps.values():
            agent = step.agent
            if getattr(agent, "registry_alias", None) is not None and id(agent) not in seen:
                seen.add(id(agent))
                yield agent
