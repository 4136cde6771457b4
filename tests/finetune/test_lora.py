"""Tier ``lora``: adapters on the encoder's attention query and value layers plus the full
head; the saved artifact has the adapters merged in, so it is a plain taskloom artifact.

Uses the toy task and tiny random-init BERT of ``test_loop.py``.
"""

from __future__ import annotations

import copy
import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest

from agents import ClassifierInput, RunContext, TextClassifier
from finetune import Example, TrainConfig, TrainConfigError, train

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("peft") is None,
    reason="peft is not installed: pip install 'taskloom[lora]' (the dev extra has it)",
)

FILLER = ["please", "help", "me", "with", "my", "account", "today", "now", "the", "a"]
WORDS = {"card": ["card", "visa", "debit"], "rate": ["rate", "exchange", "currency"]}


def _split(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(" ".join(rng.sample(FILLER, rng.randint(1, 5)) + rng.sample(words, 1)), label)
        for label, words in WORDS.items()
        for _ in range(n)
    ]


TRAIN, VAL = _split(24, seed=1), _split(8, seed=2)


def _config(out: Path, base: str, **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out_dir": str(out),
        "base_model": base,
        "tier": "lora",
        "epochs": 4,
        "batch_size": 4,
        "lr": 1e-2,
        "head_lr": 3e-2,
        "max_length": 32,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
    }
    return TrainConfig(**(settings | overrides))


def _trainable(config: TrainConfig) -> tuple[int, int]:
    """Trainable and total parameters of the model the loop builds for ``config``."""
    from finetune._run_setup import load_model  # noqa: PLC0415 - the loop's own builder

    model, _ = load_model(config, num_labels=2)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def test_lora_trains_fewer_parameters_than_full(base: str, tmp_path: Path) -> None:
    lora, lora_total = _trainable(_config(tmp_path, base))
    full, _ = _trainable(_config(tmp_path, base, tier="full"))
    head, _ = _trainable(_config(tmp_path, base, tier="head"))

    assert head < lora < full / 5
    # r=4 adapters on query and value of 2 layers (hidden 32): A (4x32) + B (32x4) each
    assert lora - head == 2 * 2 * (4 * 32 + 32 * 4)
    assert lora_total == full + (lora - head)  # the base weights are still all there


def test_lora_learns_and_the_merged_artifact_serves_the_same(base: str, tmp_path: Path) -> None:
    import torch  # noqa: PLC0415 - heavy, lazy

    from finetune import _loop  # noqa: PLC0415 - to keep the in-memory model

    kept: dict[str, Any] = {}
    finish = _loop._finish

    def keep(run: Any, progress: Any) -> Any:
        """Copy the best weights with their adapters unmerged, then finish the run."""
        model = run.accelerator.unwrap_model(run.model)
        model.load_state_dict(progress.best_state)
        kept["model"], kept["tokenizer"] = copy.deepcopy(model), run.tokenizer
        return finish(run, progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_loop, "_finish", keep)
        result = train(_config(tmp_path, base), TRAIN, VAL)

    assert result.best_metric >= 0.9
    agent = TextClassifier(str(result.model_dir))
    served = [agent.run(ClassifierInput(text=e.text), RunContext("r", "s")) for e in VAL]
    assert not any("lora" in name for name in agent.loaded.model.state_dict())
    model, tokenizer = kept["model"].eval(), kept["tokenizer"]
    assert any("lora_A" in name for name in model.state_dict())  # the adapters, unmerged
    with torch.no_grad():
        for example, out in zip(VAL, served, strict=True):
            batch = tokenizer(example.text, return_tensors="pt")
            logits = model(batch["input_ids"], batch["attention_mask"])[0]
            loaded = agent.loaded.model(batch["input_ids"], batch["attention_mask"])[0]
            assert loaded.tolist() == pytest.approx(logits.tolist(), abs=1e-4)
            assert out.label == agent.loaded.meta.labels[int(logits.argmax())]
            probabilities = torch.softmax(logits / result.temperature, dim=-1).tolist()
            assert list(out.probabilities.values()) == pytest.approx(probabilities, abs=1e-4)


def test_a_missing_peft_is_a_clear_error(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError

    with pytest.raises(TrainConfigError, match=r"pip install 'taskloom\[lora\]'"):
        train(_config(tmp_path, base), TRAIN, VAL)
