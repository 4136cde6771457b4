"""The action selector on the real all-MiniLM-L6-v2 and real Banking77 rows.

Five intents map to three support actions (two intents share ``freeze_card`` and two
``send_reply``). A short fine-tune (``finetune.train``), then: held-out action accuracy
well above chance, and the saved artifact serves what the loop validated in memory.
"""

from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from agents import ActionInput, ActionSelector, Entity, RunContext, action
from finetune import Example, TrainConfig, evaluate, train

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
INTENT_ACTION = {
    "lost_or_stolen_card": "freeze_card",
    "compromised_card": "freeze_card",
    "card_arrival": "send_reply",
    "exchange_rate": "send_reply",
    "terminate_account": "create_ticket",
}
ACTIONS = sorted(set(INTENT_ACTION.values()))
PER_INTENT = {"train": 20, "test": 16, "val": 4}
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


def examples(rows: list[tuple[str, int]]) -> list[Example]:
    return [Example(text, ACTIONS[y]) for text, y in rows]


def chosen(agent: ActionSelector, rows: list[tuple[str, int]]) -> list[str]:
    inputs = [ActionInput(text=t, values={"article": "A-1"}) for t, _ in rows]
    ctxs = [RunContext("eval", "act", visit=i + 1) for i in range(len(rows))]
    return [o.action for o in agent.run_batch(inputs, ctxs)]


def test_minilm_selector_learns_actions_and_round_trips(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    config = TrainConfig(out_dir=str(tmp_path / "v1"), epochs=2, lr=1e-4, head_lr=5e-3,
                         max_length=MAX_LENGTH)  # fmt: skip
    result = train(config, examples(splits["train"]), examples(splits["val"]))
    agent = ActionSelector(
        str(result.model_dir),
        sha256=result.sha256,
        actions=[send_reply, freeze_card, create_ticket],
        slots={"card_last4": "card_digits"},
        dry_run=True,
    )
    actions = chosen(agent, splits["test"])

    val = examples(splits["val"])
    served = evaluate(result.model_dir, [e.text for e in val], [e.label_set() for e in val])
    assert served == result.report  # save -> load -> what the loop validated in memory
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
