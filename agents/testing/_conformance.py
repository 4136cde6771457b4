"""The conformance kit: checks an agent against every clause of the agent contract."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from agents._contract import Agent, RunContext
from agents._errors import AgentContractError
from agents._validation import validate_agent_class

__all__ = ["AgentContractTests", "check_agent"]


def check_class(agent: Agent[Any, Any]) -> None:
    """The class declares name, role, Input, Output and implements run."""
    validate_agent_class(type(agent))


def check_init_params(agent: Agent[Any, Any]) -> None:
    """``init_params`` survive JSON (as in a saved workflow) and rebuild the same agent."""
    cls = type(agent)
    saved = _json_text(cls, agent.init_params)
    try:
        rebuilt = cls(**json.loads(saved))
    except Exception as exc:
        raise AgentContractError(
            cls.name,
            [f"cannot be rebuilt from its saved parameters {saved}: {type(exc).__name__}: {exc}"],
        ) from exc
    again = _json_text(cls, rebuilt.init_params)
    if json.loads(again) != json.loads(saved):
        raise AgentContractError(cls.name, [f"rebuilding from {saved} gave {again}"])


def _json_text(cls: type[Agent[Any, Any]], params: dict[str, Any]) -> str:
    try:
        return json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise AgentContractError(
            cls.name, [f"init parameters must be JSON-serializable: {exc}"]
        ) from exc


def check_warm_up(agent: Agent[Any, Any]) -> None:
    """``warm_up`` can be called twice (the engine may call it more than once)."""
    agent.warm_up()
    try:
        agent.warm_up()
    except Exception as exc:
        raise AgentContractError(
            type(agent).name,
            [f"warm_up is not idempotent: a second call raised {type(exc).__name__}: {exc}"],
        ) from exc


def check_outputs(
    agent: Agent[Any, Any], samples: Sequence[Any], *, atol: float = 0.0
) -> list[BaseModel]:
    """``run`` returns an ``Output`` for every sample; ``run_batch`` returns the same list.

    ``atol`` is how far floats of batched and single outputs may differ: padding and batch
    shape change the order of float sums in a model's forward pass (by ~1e-7), never more.
    """
    cls = type(agent)
    inputs = [cls.Input.model_validate(s) for s in samples]
    ctxs = [RunContext("conformance", "check", visit=i + 1) for i in range(len(inputs))]
    singles = [_resolve(agent.run(i, c)) for i, c in zip(inputs, ctxs, strict=True)]
    problems = [
        f"run returned {type(out).__name__} for sample {i}, expected {cls.Output.__name__}"
        for i, out in enumerate(singles)
        if not isinstance(out, cls.Output)
    ]
    batch = _resolve(agent.run_batch(inputs, ctxs))
    if not isinstance(batch, list) or len(batch) != len(inputs):
        problems.append(f"run_batch must return a list of {len(inputs)} outputs, got {batch!r}")
    elif not _same(batch, singles, atol):
        problems.append("run_batch outputs differ from run outputs on the same inputs")
    if problems:
        raise AgentContractError(cls.name, problems)
    return singles


def _same(left: Any, right: Any, atol: float) -> bool:
    """Equal, except that floats anywhere inside may differ by ``atol``."""
    if isinstance(left, BaseModel) and isinstance(right, BaseModel):
        return type(left) is type(right) and _same(left.model_dump(), right.model_dump(), atol)
    if isinstance(left, float) and isinstance(right, float):
        return abs(left - right) <= atol
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k], atol) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(
            _same(a, b, atol) for a, b in zip(left, right, strict=True)
        )
    return bool(left == right)


def check_agent(agent: Agent[Any, Any], samples: Sequence[Any], *, atol: float = 0.0) -> None:
    """Run every contract check; raise ``AgentContractError`` on the first failing clause.

    Args:
        agent: The agent under test (it is warmed up).
        samples: Inputs (models or dicts) to run; outputs must be deterministic for the
            batch-equals-single check.
        atol: Tolerance for floats in that check (model agents: about 1e-6).
    """
    if not samples:
        raise ValueError("check_agent needs at least one sample input")
    check_class(agent)
    check_init_params(agent)
    check_warm_up(agent)
    check_outputs(agent, samples, atol=atol)


def _resolve(value: Any) -> Any:
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(value: Any) -> Any:
    return await value


class AgentContractTests:
    """Subclass as ``TestMyAgent(AgentContractTests)`` to get one test per contract clause.

    Define ``make_agent()`` and ``samples`` (and ``atol`` for a model agent's floats).
    """

    samples: ClassVar[Sequence[Any]] = ()
    atol: ClassVar[float] = 0.0

    def make_agent(self) -> Agent[Any, Any]:
        """Build the agent under test."""
        raise NotImplementedError("define make_agent() in your test class")

    def test_class_contract(self) -> None:
        check_class(self.make_agent())

    def test_init_params_round_trip(self) -> None:
        check_init_params(self.make_agent())

    def test_warm_up_is_idempotent(self) -> None:
        check_warm_up(self.make_agent())

    def test_outputs_and_batch(self) -> None:
        agent = self.make_agent()
        agent.warm_up()
        assert self.samples, "set samples = [...] to inputs for your agent"
        check_outputs(agent, self.samples, atol=self.atol)
