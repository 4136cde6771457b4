"""The support-triage workflow: perceive, reason, decide, execute.

::

    intent -> slots -> article -> decide -+-> reply     (send the article, slots filled)
                                          +-> clarify   (ask a clarifying question)
                                          +-> freeze -> escalate   (card at risk)
                                          +-> escalate  (open a ticket for a person)

- perceive: ``intent`` (a ``TextClassifier`` over Banking77's intents, served from the
  registry's ``serving`` alias so promoted models take over) and ``slots`` (an
  ``EntityExtractor`` trained on NLU++: amounts, dates, company names...);
- reason: ``article`` (a ``Retriever``) finds the help article in the knowledge base; the
  evidence is scored by whether it agrees with the intent and by its similarity;
- decide: ``decide`` (a ``PolicyAgent``): the hard rules first (a lost, stolen or
  compromised card always goes to a person, and the card is frozen; disputes and missing
  money go to a person), then low intent confidence asks a clarifying question, else the
  policy model decides from the signals (how certain the intent is, whether the article
  found agrees with it) and the text;
- execute: ``ActionSelector`` steps run the chosen action under an idempotency key and
  write the outbox, the card freeze or the ticket in the knowledge base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agents import (
    ActionSelector,
    ClassifierOutput,
    EntityExtractor,
    PolicyAgent,
    PolicyRule,
    Retriever,
    RetrieverOutput,
    TextClassifier,
)
from support_triage.actions import ACTIONS
from workflow import Batch, CompiledWorkflow, RunState, Workflow, state, task

__all__ = [
    "CARD_AT_RISK",
    "DECISIONS",
    "NEEDS_PERSON",
    "Ticket",
    "TriageAgents",
    "build_workflow",
    "policy_agent",
    "policy_signals",
    "selector_agent",
]

DECISIONS = ["reply", "clarify", "escalate"]
CARD_AT_RISK = ["lost_or_stolen_card", "compromised_card"]
# Disputes and missing money: a person handles these even when the intent is clear.
NEEDS_PERSON = [
    "card_payment_not_recognised",
    "card_swallowed",
    "cash_withdrawal_not_recognised",
    "direct_debit_payment_not_recognised",
    "lost_or_stolen_phone",
    "transaction_charged_twice",
    "wrong_amount_of_cash_received",
]
RULE_NAME = "card at risk"
BANDS = ((0.8, "high"), (0.5, "medium"), (0.0, "low"))
# Arguments named differently from the extractor's slot types.
SLOTS = {"amount": "amount_of_money", "company": "company_name"}


class Ticket(BaseModel):
    """The task: one customer message."""

    ticket_id: str
    text: str


@dataclass(frozen=True)
class TriageAgents:
    """The model agents the workflow runs (built by ``support_triage.training``)."""

    intent: TextClassifier
    slots: EntityExtractor
    article: Retriever
    policy: PolicyAgent
    act: ActionSelector


def policy_signals(intent: ClassifierOutput, article: RetrieverOutput) -> dict[str, Any]:
    """What the policy reads besides the text; the policy model is trained on the same."""
    top = article.evidence[0].source if article.evidence else ""
    return {
        "intent": intent.label,
        "intent_confidence": intent.confidence,
        # The same confidence in words: a small model reads "low" far sooner than "0.31".
        "certainty": next(band for floor, band in BANDS if intent.confidence >= floor),
        "article_agrees": top == intent.label,
        "article_score": article.top_score,
    }


def policy_agent(
    model_dir: str, sha256: str, *, min_intent_confidence: float, min_confidence: float | None
) -> PolicyAgent:
    """The decision agent: two business rules, then the intent's confidence, then the model.

    The rules escalate whatever the model thinks: a card at risk (the workflow also freezes
    it) and the intents a person must handle. A ticket whose intent is uncertain gets a
    clarifying question. The policy model decides the rest from the signals and the text.
    """
    return PolicyAgent(
        model_dir,
        sha256=sha256,
        rules=[
            PolicyRule(
                name=RULE_NAME,
                signal="intent",
                op="in",
                value=tuple(CARD_AT_RISK),
                decision="escalate",
            ),
            PolicyRule(
                name="needs a person",
                signal="intent",
                op="in",
                value=tuple(NEEDS_PERSON),
                decision="escalate",
            ),
        ],
        thresholds={"intent_confidence": min_intent_confidence},
        fallback="clarify",
        min_confidence=min_confidence,
    )


def selector_agent(model_dir: str, sha256: str) -> ActionSelector:
    """The execution agent. Every step forces its action (the decision chose it), so the
    selector's own classifier never chooses here: it fills arguments and runs actions."""
    return ActionSelector(model_dir, sha256=sha256, actions=list(ACTIONS), slots=SLOTS)


def _policy_input(s: RunState) -> dict[str, Any]:
    return {
        "text": s.task.text,
        "signals": policy_signals(s.outputs["intent"], s.outputs["article"]),
    }


def _act(name: str, s: RunState, **values: Any) -> dict[str, Any]:
    return {
        "text": s.task.text,
        "action": name,
        "entities": s.outputs["slots"].entities,
        "values": {"ticket_id": s.task.ticket_id, "intent": s.outputs["intent"].label, **values},
    }


def _reply_input(s: RunState) -> dict[str, Any]:
    return _act("send_reply", s)


def _clarify_input(s: RunState) -> dict[str, Any]:
    return _act("ask_clarification", s)


def _freeze_input(s: RunState) -> dict[str, Any]:
    return _act("freeze_card", s)


def _escalate_input(s: RunState) -> dict[str, Any]:
    decision = s.outputs["decide"]
    # A card at risk first; then what a rule or the model sent to a person; then the unsure.
    if decision.rule == RULE_NAME:
        priority = "urgent"
    else:
        priority = "high" if decision.decided_by in ("rule", "model") else "normal"
    return _act("create_ticket", s, priority=priority, reasons="; ".join(decision.reasons))


def build_workflow(agents: TriageAgents, *, max_batch: int = 32) -> CompiledWorkflow:
    """The triage workflow; model steps are micro-batched across concurrent runs."""
    batch = Batch(max_size=max_batch, max_wait_s=0.0)
    wf = Workflow("support_triage", task=Ticket, description="triage of banking support tickets")
    wf.step("intent", agents.intent, inputs={"text": task.text}, batch=batch)
    wf.step("slots", agents.slots, inputs={"text": task.text}, batch=batch)
    wf.step("article", agents.article, inputs={"query": task.text}, batch=batch)
    wf.step("decide", agents.policy, inputs=_policy_input, batch=batch)
    for name, inputs in (
        ("reply", _reply_input),
        ("clarify", _clarify_input),
        ("freeze", _freeze_input),
        ("escalate", _escalate_input),
    ):
        wf.step(name, agents.act, inputs=inputs, batch=batch)
    wf.route("intent", "slots")
    wf.route("slots", "article")
    wf.route("article", "decide")
    wf.route("decide", "reply", when=state("decide").decision == "reply")
    wf.route("decide", "clarify", when=state("decide").decision == "clarify")
    wf.route("decide", "freeze", when=state("decide").rule == RULE_NAME)
    wf.route("decide", "escalate")
    wf.route("freeze", "escalate")
    return wf.compile()
