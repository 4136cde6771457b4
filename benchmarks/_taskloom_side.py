"""taskloom side of the engine-overhead benchmark: the same workflows, no-op agents."""

from __future__ import annotations

import itertools

from pydantic import BaseModel

from agents import Agent, Role, RunContext
from benchmarks._peers import route_for
from workflow import CompiledWorkflow, Workflow, state, task

__all__ = ["Message", "chain", "support4"]


class Message(BaseModel):
    """The task, and every no-op step's input and output."""

    text: str
    action: str = ""


class Noop(Agent[Message, Message]):
    """Passes the text on; the ``decide`` step also sets the action, as the peers do."""

    name = "bench_noop"
    role = Role.REASONING

    def __init__(self, *, decides: bool = False) -> None:
        self.decides = decides

    def run(self, input: Message, ctx: RunContext) -> Message:
        return Message(text=input.text, action=route_for(input.text) if self.decides else "")


def support4() -> CompiledWorkflow:
    """perceive -> reason -> decide -> (execute | escalate), one rule after decide."""
    wf = Workflow("support4", task=Message)
    for name in ("perceive", "reason", "decide", "execute", "escalate"):
        wf.step(name, Noop(decides=name == "decide"), inputs={"text": task.text})
    wf.route("perceive", "reason").route("reason", "decide")
    wf.route("decide", "execute", when=state("decide").action == "reply")
    return wf.route("decide", "escalate").compile()


def chain(n: int) -> CompiledWorkflow:
    """``n`` no-op steps in a line, each reading the previous step's output."""
    wf = Workflow(f"chain{n}", task=Message)
    names = [f"s{i:03d}" for i in range(n)]
    wf.step(names[0], Noop(), inputs={"text": task.text})
    for before, name in itertools.pairwise(names):
        wf.step(name, Noop(), inputs={"text": state(before).text}).route(before, name)
    return wf.compile()
