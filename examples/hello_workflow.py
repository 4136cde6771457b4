"""A first taskloom workflow: triage customer-support messages with rule-based agents.

    python examples/hello_workflow.py

Four agents, one per role, route each message: perceive its intent, decide what to do by
rules over what was perceived, then reply, ask a clarifying question, or escalate to a
human. The agents here are keyword rules so this runs in a second with no model; the
model-backed agents plug into the same places. The run prints each message's step trace
with the rule that fired, and the workflow as Mermaid text.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel

from agents import Agent, Role, RunContext
from workflow import Engine, Workflow, state

INTENT_KEYWORDS = {
    "card_lost_or_stolen": ("lost", "stolen", "missing card"),
    "compromised_card": ("fraud", "didn't make", "not mine", "unauthorised"),
    "exchange_rate": ("exchange rate", "conversion"),
    "top_up_failed": ("top up", "top-up", "topup"),
    "change_pin": ("pin",),
}
ALWAYS_ESCALATE = ["card_lost_or_stolen", "compromised_card"]

MESSAGES = [
    "I think my card was stolen yesterday, please help",
    "What exchange rate do you use for conversion to euros?",
    "My top up failed twice this morning",
    "There is a payment I didn't make on my statement",
    "hello?",
    "How do I change my PIN?",
]


class Ticket(BaseModel):
    """The task: one customer message."""

    text: str


class Perception(BaseModel):
    """What the perception agent saw."""

    intent: str
    confidence: float


class Decision(BaseModel):
    """What the decision agent chose, and why."""

    action: Literal["reply", "clarify", "escalate"]
    reason: str


class DecisionInput(BaseModel):
    """The decision agent reads the perceived intent and its confidence."""

    intent: str
    confidence: float


class Action(BaseModel):
    """What an execution agent did."""

    done: str
    key: str


class KeywordIntent(Agent[Ticket, Perception]):
    """Perception: the intent whose keywords match, confidence by how clearly."""

    name = "keyword_intent"
    role = Role.PERCEPTION

    def run(self, input: Ticket, ctx: RunContext) -> Perception:
        text = input.text.lower()
        hits = {i: sum(k in text for k in words) for i, words in INTENT_KEYWORDS.items()}
        best = max(hits, key=lambda i: hits[i])
        if hits[best] == 0:
            return Perception(intent="unknown", confidence=0.0)
        return Perception(intent=best, confidence=min(1.0, 0.6 + 0.2 * hits[best]))


class RulePolicy(Agent[DecisionInput, Decision]):
    """Decision: hard business rules first, then a confidence threshold."""

    name = "rule_policy"
    role = Role.DECISION

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        self.min_confidence = min_confidence

    def run(self, input: DecisionInput, ctx: RunContext) -> Decision:
        if input.intent in ALWAYS_ESCALATE:
            return Decision(action="escalate", reason=f"'{input.intent}' always goes to a human")
        if input.confidence < self.min_confidence:
            return Decision(action="clarify", reason=f"confidence {input.confidence:.2f} too low")
        return Decision(action="reply", reason=f"confident about '{input.intent}'")


class Execute(Agent[DecisionInput, Action]):
    """Execution: performs one kind of action, keyed for idempotency."""

    name = "execute"
    role = Role.EXECUTION

    def __init__(self, *, kind: str) -> None:
        self.kind = kind

    def run(self, input: DecisionInput, ctx: RunContext) -> Action:
        return Action(done=f"{self.kind}: {input.intent}", key=ctx.idempotency_key)


def build() -> Workflow:
    """The triage workflow, as a workflow author writes it."""
    wf = Workflow("hello_triage", task=Ticket, description="keyword triage of support messages")
    wf.step("perceive", KeywordIntent())  # no inputs=: same-named task fields (text)
    reads = {"intent": state("perceive").intent, "confidence": state("perceive").confidence}
    wf.step("decide", RulePolicy(min_confidence=0.5), inputs=reads)
    for kind in ("reply", "clarify", "escalate"):
        wf.step(kind, Execute(kind=kind), inputs=reads)
    wf.route("perceive", "decide")
    wf.route("decide", "reply", when=state("decide").action == "reply")
    wf.route("decide", "clarify", when=state("decide").action == "clarify")
    wf.route("decide", "escalate")
    return wf


async def main() -> None:
    """Run every message concurrently and print what happened to each."""
    compiled = build().compile()
    async with Engine() as engine:
        results = await engine.run_many(compiled, [{"text": m} for m in MESSAGES])
        for message, result in zip(MESSAGES, results, strict=True):
            print(f"\n{message!r} -> {result.status.value}")
            for record in engine.store.steps(result.run_id):
                nxt = ", ".join(record.decision.targets) or "end"
                print(f"  {record.step:9} -> {nxt:9} {record.decision.reason}")
            decision = result.outputs["decide"]
            print(f"  decision: {decision.action} ({decision.reason})")  # type: ignore[attr-defined]
    print("\nThe workflow as Mermaid (paste into any Mermaid viewer):\n")
    print(compiled.to_mermaid())


if __name__ == "__main__":
    asyncio.run(main())
