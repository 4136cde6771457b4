"""Scripted fake agents: no models, deterministic, and they remember how they were called."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from agents._contract import Agent, Role, RunContext

__all__ = ["AsyncFakeAgent", "FakeAgent", "FakeInput", "FakeOutput", "JoinAgent", "JoinInput"]


class FakeInput(BaseModel):
    """Input of the fake agents."""

    text: str = ""
    n: int = 0


class FakeOutput(BaseModel):
    """Output of the fake agents: ``label`` drives routes, ``n`` counts loop turns."""

    text: str = ""
    label: str = ""
    score: float = 1.0
    n: int = 0


class FakeAgent(Agent[FakeInput, FakeOutput]):
    """A sync agent that answers from a script.

    Args:
        label: The label of every output, unless ``labels`` or ``echo`` says otherwise.
        labels: One label per call, in order (the last one repeats).
        echo: Use the input text as the label (routes then follow the task).
        score: The score of every output.
        fail_times: Raise ``RuntimeError`` on this many first calls (then succeed).
        delay_s: Sleep this long in every call (a blocking sleep: test timeouts with it).
        journal: A shared list to which every call appends ``(step, text)``: the call order
            across agents.
    """

    name = "fake"
    role = Role.REASONING

    def __init__(
        self,
        *,
        label: str = "ok",
        labels: Sequence[str] = (),
        echo: bool = False,
        score: float = 1.0,
        fail_times: int = 0,
        delay_s: float = 0.0,
        journal: list[tuple[str, str]] | None = None,
    ) -> None:
        self.label, self.labels, self.echo = label, list(labels), echo
        self.score, self.fail_times, self.delay_s = score, fail_times, delay_s
        self.journal = journal
        self.calls: list[tuple[str, FakeInput]] = []
        self.batch_sizes: list[int] = []
        self.warm_ups = 0

    def warm_up(self) -> None:
        self.warm_ups += 1

    def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:
        call = self._record(input, ctx)
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._answer(input, call)

    def run_batch(
        self, inputs: Sequence[FakeInput], ctxs: Sequence[RunContext]
    ) -> list[FakeOutput]:
        self.batch_sizes.append(len(inputs))
        calls = [self._record(i, c) for i, c in zip(inputs, ctxs, strict=True)]
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._answer(i, call) for i, call in zip(inputs, calls, strict=True)]

    def _record(self, input: FakeInput, ctx: RunContext) -> int:
        """Note the call when it starts (a call that times out still counts)."""
        self.calls.append((ctx.step, input))
        if self.journal is not None:
            self.journal.append((ctx.step, input.text))
        return len(self.calls) - 1

    def _answer(self, input: FakeInput, call: int) -> FakeOutput:
        if call < self.fail_times:
            raise RuntimeError(f"scripted failure {call + 1} of {self.fail_times}")
        if self.echo:
            label = input.text
        elif self.labels:
            label = self.labels[min(call, len(self.labels) - 1)]
        else:
            label = self.label
        return FakeOutput(text=input.text, label=label, score=self.score, n=input.n + 1)


class AsyncFakeAgent(FakeAgent):
    """``FakeAgent`` with ``async def run``; its delay is an ``asyncio.sleep``."""

    name = "fake_async"

    async def run(self, input: FakeInput, ctx: RunContext) -> FakeOutput:  # type: ignore[override]
        call = self._record(input, ctx)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._answer(input, call)

    def run_batch(self, inputs: Sequence[FakeInput], ctxs: Sequence[RunContext]) -> Any:
        self.batch_sizes.append(len(inputs))
        return self._gather(inputs, ctxs)


class JoinInput(BaseModel):
    """Input of ``JoinAgent``: the texts of the branches it joins."""

    texts: list[str] = Field(default_factory=list)


class JoinAgent(Agent[JoinInput, FakeOutput]):
    """Joins branch outputs: its output text is the branch texts joined with ``+``."""

    name = "fake_join"
    role = Role.DECISION

    def run(self, input: JoinInput, ctx: RunContext) -> FakeOutput:
        return FakeOutput(text="+".join(input.texts), label="joined")
