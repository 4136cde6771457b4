"""The agent contract: the one interface every taskloom agent implements.

An agent is a class deriving from ``Agent[InputModel, OutputModel]``:

- ``name`` (class attribute): unique registry name, letters, digits, ``_ . -``.
- ``role`` (class attribute): one ``Role`` value.
- ``Input`` / ``Output``: pydantic models, taken from the generic parameters (or set
  explicitly). The engine validates every input against ``Input`` and checks every output is
  an ``Output``.
- ``__init__``: cheap, keyword parameters that serialize to JSON (they are saved with
  workflows and sent to remote workers). The base class records them as ``init_params``.
- ``warm_up()``: loads models and other heavy state; idempotent, the engine may call it more
  than once and calls it before the first run.
- ``run(input, ctx)``: returns an ``Output``; may be ``async def``. Sync agents that block
  (model inference, I/O) set ``blocking = True`` so the engine runs them in a worker thread.
- ``run_batch(inputs, ctxs)``: optional; one output per input, in order. The default loops
  over ``run``, so batch and single calls share one core. The engine's micro-batcher feeds it
  calls gathered from concurrent runs.

``ctx`` is the ``RunContext`` of the call: run id, step, attempt, visit, idempotency key,
logger, knowledge-base handle and cooperative cancellation.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel

from agents._errors import StepCancelledError

__all__ = ["Agent", "Role", "RunContext"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)

_log = logging.getLogger("taskloom.agents")


class Role(str, enum.Enum):
    """The four roles of agents in a workflow."""

    PERCEPTION = "perception"
    REASONING = "reasoning"
    DECISION = "decision"
    EXECUTION = "execution"


class RunContext:
    """Everything an agent may need to know about the call it is serving.

    Attributes:
        run_id: The run this call belongs to.
        step: The step being executed.
        attempt: 1 for the first try, 2 for the first retry, ...
        visit: How many times this step has run in this run, this time included (loops).
        knowledge: The knowledge-base handle the engine was given, or None.
    """

    __slots__ = ("_cancelled", "_logger", "attempt", "knowledge", "run_id", "step", "visit")

    def __init__(
        self, run_id: str, step: str, *, attempt: int = 1, visit: int = 1, knowledge: Any = None
    ) -> None:
        self.run_id = run_id
        self.step = step
        self.attempt = attempt
        self.visit = visit
        self.knowledge = knowledge
        self._cancelled = False
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of the same visit: key side effects on it."""
        return f"{self.run_id}:{self.step}:{self.visit}"

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags records with run id and step."""
        if self._logger is None:
            extra = {"run_id": self.run_id, "step": self.step, "attempt": self.attempt}
            self._logger = logging.LoggerAdapter(_log, extra)
        return self._logger

    @property
    def cancelled(self) -> bool:
        """True once the engine gave up on this call (timeout or shutdown)."""
        return self._cancelled

    def cancel(self) -> None:
        """Ask the agent to stop; long-running agents check ``cancelled`` and return early."""
        self._cancelled = True

    def raise_if_cancelled(self) -> None:
        """Raise ``StepCancelledError`` if the engine cancelled this call."""
        if self._cancelled:
            raise StepCancelledError(f"Step '{self.step}' of run '{self.run_id}' was cancelled.")

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, step={self.step!r}, attempt={self.attempt})"


@functools.cache
def _init_signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls.__init__)  # type: ignore[misc]  # the class, not an instance


def _capture_params(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments by parameter name, ``**kwargs`` flattened."""
    if cls.__init__ is object.__init__:  # type: ignore[misc]  # the class, not an instance
        if args or kwargs:
            # object.__init__ accepts and drops arguments when a class defines __new__.
            raise TypeError(f"{cls.__name__}() takes no arguments (it defines no __init__)")
        return {}
    signature = _init_signature(cls)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        # __init__ reports bad arguments in its own words; copy and pickle call __new__
        # without arguments and restore the recorded parameters with the instance state.
        return {}
    params: dict[str, Any] = {}
    for key, value in list(bound.arguments.items())[1:]:
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            params[key] = value
    return params


def _generic_models(cls: type) -> tuple[Any, ...]:
    """The ``(Input, Output)`` that ``cls``'s own generic bases give ``Agent``, or ``()``.

    A plain subclass inherits ``Input``/``Output`` as attributes instead, and type variables
    of an intermediate generic base (``Base[OutT]``) are substituted.
    """
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if origin is Agent:
            return get_args(base)
        if isinstance(origin, type) and issubclass(origin, Agent):
            bound = dict(zip(getattr(origin, "__parameters__", ()), get_args(base), strict=False))
            return tuple(bound.get(arg, arg) for arg in _generic_models(origin))
    return ()


class Agent(ABC, Generic[InT, OutT]):
    """Base class of all agents; the contract is in this module's docstring."""

    name: ClassVar[str]
    role: ClassVar[Role]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    blocking: ClassVar[bool] = False

    _init_params: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr, model in zip(("Input", "Output"), _generic_models(cls), strict=False):
            if attr not in cls.__dict__ and isinstance(model, type):
                setattr(cls, attr, model)

    def __new__(cls, *args: Any, **kwargs: Any) -> Agent[Any, Any]:
        self = super().__new__(cls)
        self._init_params = _capture_params(cls, args, kwargs)
        return self

    @property
    def init_params(self) -> dict[str, Any]:
        """The keyword arguments this agent was built with (saved with workflows)."""
        return dict(self._init_params)

    def warm_up(self) -> None:
        """Load models or other heavy state. Must be idempotent."""

    @abstractmethod
    def run(self, input: InT, ctx: RunContext) -> OutT | Awaitable[OutT]:
        """Handle one input; see the module docstring."""

    def run_batch(
        self, inputs: Sequence[InT], ctxs: Sequence[RunContext]
    ) -> list[OutT] | Awaitable[list[OutT]]:
        """Handle several inputs at once; by default one ``run`` per input."""
        if inspect.iscoroutinefunction(self.run):
            return self._gather(inputs, ctxs)
        return [cast(OutT, self.run(item, ctx)) for item, ctx in zip(inputs, ctxs, strict=True)]

    async def _gather(self, inputs: Sequence[InT], ctxs: Sequence[RunContext]) -> list[OutT]:
        calls = [
            cast(Awaitable[OutT], self.run(item, ctx))
            for item, ctx in zip(inputs, ctxs, strict=True)
        ]
        return list(await asyncio.gather(*calls))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_params.items())
        return f"{type(self).__name__}({args})"
