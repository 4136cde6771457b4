"""``taskloom finetune train`` and ``eval`` end to end on a tiny random-init BERT.

The toy task (as in test_loop.py) is learnable in seconds: a text's label is which keyword
family it contains among shared filler words.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from agents import ClassifierInput, RunContext, TextClassifier
from finetune._curves import plot_curves
from workflow._cli import main

FILLER = ["please", "help", "me", "with", "my", "account", "today", "now", "the", "a"]
WORDS = {"card": ["card", "visa", "debit"], "rate": ["rate", "exchange", "currency"]}
AMOUNTS, PAYEES = ["£20", "$5", "€300", "£7", "$45", "€12"], ["alice", "bob", "carol", "dave"]
PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--epochs", "3", "--batch-size", "4", "--lr", "3e-3", "--head-lr", "3e-2",
        "--max-length", "32", "--quiet"]  # fmt: skip


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (" ".join(rng.sample(FILLER, rng.randint(1, 5)) + rng.sample(words, 1)), label)
        for label, words in WORDS.items()
        for _ in range(n)
    ]


def _slots_jsonl(path: Path, n: int, seed: int) -> Path:
    """Payments ("... £20 to alice"): an amount and a payee span in each text."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        before = " ".join(rng.sample(FILLER, 2))
        amount, payee = rng.choice(AMOUNTS), rng.choice(PAYEES)
        text = f"{before} {amount} to {payee}"
        start = len(before) + 1
        slots = [
            {"type": "amount", "start": start, "end": start + len(amount)},
            {"type": "payee", "start": len(text) - len(payee), "end": len(text)},
        ]
        lines.append(json.dumps({"utterance": text, "slots": slots}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = [f"{i},{text},{label}\n" for i, (text, label) in enumerate(rows)]
    path.write_text("id,utterance,intent\n" + "".join(lines), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["finetune", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _train_args(data: Path, out: Path, base: str, *extra: str) -> list[str]:
    columns = ["--text-column", "utterance", "--label-column", "intent"]
    return ["train", "--data", str(data), "--out", str(out), "--base-model", base, *columns,
            *FAST, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def trained(base: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A CSV run shared by the tests: (run folder, what it printed, a held-out test file)."""
    folder = tmp_path_factory.mktemp("run")
    data = _csv(folder / "train.csv", _rows(24, seed=1))
    test = _csv(folder / "test.csv", _rows(10, seed=3))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["finetune", *_train_args(data, folder / "out", base)])
    assert status == 0
    return folder / "out", printed.getvalue(), test


def test_train_from_csv_writes_a_servable_artifact_metrics_and_curves(
    trained: tuple[Path, str, Path],
) -> None:
    out_dir, out, _ = trained

    summary = dict(line.split(maxsplit=1) for line in out.splitlines()[:1])
    assert summary["examples"] == "44 train, 4 validation"  # 10% of each label held out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    sha = metrics["sha256"]
    assert f"sha256           {sha}" in out
    assert f"best epoch       {metrics['best_epoch']} of 3" in out
    assert "card" in out.split("validation report")[1]
    assert (out_dir / "curves.png").read_bytes().startswith(PNG)
    agent = TextClassifier(str(out_dir / "model"))
    served = agent.run(ClassifierInput(text="my visa card"), RunContext("r", "s"))
    assert served.model_sha256 == sha
    assert agent.loaded.meta.labels == ["card", "rate"]


def test_eval_prints_scores_and_a_per_label_table(
    trained: tuple[Path, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir, _, test = trained
    columns = ["--text-column", "utterance", "--label-column", "intent"]
    model = str(out_dir / "model")

    status, text, _ = run(capsys, "eval", "--model", model, "--data", str(test), *columns)
    status_json, raw, _ = run(capsys, "eval", "--model", model, "--data", str(test), *columns,
                              "--json")  # fmt: skip

    assert status == status_json == 0
    report = json.loads(raw)
    assert set(report) == {"model", "sha256", "examples", "accuracy", "macro_f1", "micro_f1",
                           "per_label"}  # fmt: skip
    assert report["examples"] == 20
    assert report["accuracy"] >= 0.9  # learnable toy task, unseen test rows
    assert set(report["per_label"]["card"]) == {"precision", "recall", "f1", "support"}
    assert report["per_label"]["rate"]["support"] == 10
    assert f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}" in text
    card_row = next(line for line in text.splitlines() if line.startswith("card "))
    assert card_row.split()[1:] == [
        f"{report['per_label']['card'][k]:.4f}" for k in ("precision", "recall", "f1")
    ] + ["10"]


def test_train_multi_label_from_jsonl_with_a_validation_file(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415

    import finetune._cli as cli  # noqa: PLC0415 - patched below

    bars: list[Any] = []
    shown = io.StringIO()  # the bar as a terminal would show it (capsys' stderr is no TTY)

    def visible_bar(total: int, *, quiet: bool) -> Any:
        bars.append(tqdm(total=total, file=shown, disable=False))
        return bars[-1]

    monkeypatch.setattr(cli, "_progress_bar", visible_bar)

    def jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
        both = [{"text": f"{a} {b}", "tags": ["card", "rate"]} for (a, _), (b, _) in
                zip(rows[: len(rows) // 4], rows[len(rows) // 2 :], strict=False)]  # fmt: skip
        lines = [{"text": t, "tags": [label]} for t, label in rows] + both
        path.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
        return path

    data, val = jsonl(tmp_path / "t.jsonl", _rows(24, 1)), jsonl(tmp_path / "v.jsonl", _rows(6, 2))

    status, out, err = run(capsys, "train", "--task", "multi-label-classification", "--data",
                           str(data), "--val", str(val), "--label-column", "tags", "--out",
                           str(tmp_path / "out"), "--base-model", base, *FAST,
                           "--epochs", "1")  # fmt: skip

    assert status == 0, err
    assert "examples         60 train, 15 validation" in out
    assert "val micro_f1" in out
    meta = TextClassifier(str(tmp_path / "out" / "model")).loaded.meta
    assert (meta.task, meta.labels) == ("multi_label", ["card", "rate"])
    steps = json.loads((tmp_path / "out" / "metrics.json").read_text())["optimizer_steps"]
    assert bars[0].n == bars[0].total == steps == 15  # 60 rows / batches of 4, 1 epoch
    assert "15/15" in shown.getvalue()


def test_token_classification_trains_from_jsonl_and_eval_scores_exact_spans(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _slots_jsonl(tmp_path / "train.jsonl", 40, seed=1)
    test = _slots_jsonl(tmp_path / "test.jsonl", 12, seed=3)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"utterance": "on monday", "slots": [{"type": "date",
                                 "start": 3, "end": 9}]}) + "\n")  # fmt: skip
    columns = ["--text-column", "utterance", "--label-column", "slots"]
    model = str(tmp_path / "out" / "model")

    status, out, err = run(capsys, "train", "--task", "token-classification", "--data",
                           str(data), "--out", str(tmp_path / "out"), "--base-model", base,
                           *columns, *FAST)  # fmt: skip
    scored, raw, _ = run(capsys, "eval", "--model", model, "--data", str(test), *columns, "--json")
    unknown, _, unknown_err = run(capsys, "eval", "--model", model, "--data", str(other),
                                  *columns)  # fmt: skip

    assert status == scored == 0, err
    assert "examples         36 train, 4 validation" in out
    assert "val micro_f1" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["config"]["task"], metrics["config"]["metric"]) == (
        "token_classification",
        "micro_f1",
    )
    assert metrics["labels"] == ["O", "B-amount", "I-amount", "B-payee", "I-payee"]
    report = json.loads(raw)
    assert report["sha256"] == metrics["sha256"]
    assert report["examples"] == 12
    assert {k: v["support"] for k, v in report["per_label"].items()} == {"amount": 12, "payee": 12}
    assert report["micro_f1"] >= 0.9  # exact spans on unseen texts
    assert unknown == 2
    assert "label(s) date that the model" in unknown_err
    assert "Its labels: amount, payee" in unknown_err


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs taskloom[lora]")
def test_train_tier_lora_saves_a_plain_artifact(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _csv(tmp_path / "train.csv", _rows(12, seed=1))

    status, _, err = run(capsys, *_train_args(data, tmp_path / "out", base, "--tier", "lora",
                                              "--epochs", "1", "--lora-r", "2", "--lora-alpha",
                                              "6", "--lora-dropout", "0.05"))  # fmt: skip

    assert status == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    lora = {k: v for k, v in metrics["config"].items() if k.startswith("lora_")}
    assert (metrics["config"]["tier"], lora) == (
        "lora",
        {"lora_r": 2, "lora_alpha": 6, "lora_dropout": 0.05},
    )
    agent = TextClassifier(str(tmp_path / "out" / "model"))
    assert not any("lora" in name for name in agent.loaded.model.state_dict())
    served = agent.run(ClassifierInput(text="my visa card"), RunContext("r", "s"))
    assert served.model_sha256 == metrics["sha256"]


def test_training_options_reach_the_recorded_config(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _csv(tmp_path / "train.csv", _rows(12, seed=1))

    status, _, err = run(capsys, *_train_args(data, tmp_path / "out", base, "--epochs", "1",
                                              "--label-smoothing", "0.2", "--grad-accum", "2",
                                              "--warmup-ratio", "0.3", "--patience", "4",
                                              "--weight-decay", "0.05"))  # fmt: skip

    assert status == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    config = metrics["config"]
    assert (config["label_smoothing"], config["grad_accum"], config["warmup_ratio"]) == (
        0.2,
        2,
        0.3,
    )
    assert (config["patience"], config["weight_decay"], config["lora_r"]) == (4, 0.05, 8)
    assert metrics["optimizer_steps"] == 3  # 22 rows: 6 batches, a step every 2


class _InterruptedError(Exception):
    pass


def test_resume_continues_an_interrupted_run(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import finetune._cli as cli  # noqa: PLC0415 - patched below

    data = _csv(tmp_path / "train.csv", _rows(24, seed=1))
    original = cli.train

    def crashing(*args: Any, on_step: Any, **kwargs: Any) -> Any:
        def step(n: int) -> None:
            on_step(n)
            if n == 13:  # 11 steps an epoch: epoch 2 is under way
                raise _InterruptedError

        return original(*args, on_step=step, **kwargs)

    monkeypatch.setattr(cli, "train", crashing)
    with pytest.raises(_InterruptedError):
        main(["finetune", *_train_args(data, tmp_path / "out", base, "--epochs", "2")])
    monkeypatch.setattr(cli, "train", original)

    status, _, err = run(
        capsys, *_train_args(data, tmp_path / "out", base, "--epochs", "2", "--resume")
    )

    assert status == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["resumed_at_step"] == 11
    assert metrics["optimizer_steps"] == 22


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--label-column", "label"], r"line 2 has no column 'label'\. Columns present: id, "
         r"utterance, intent"),
        (["--task", "token-classification"], r"train\.csv': unsupported file type '\.csv'\. "
         r"Supported: \.jsonl\."),
        (["--val-fraction", "1.5"], r"--val-fraction must be in \(0, 1\)"),
        (["--epochs", "0"], r"epochs must be >= 1"),
        (["--label-smoothing", "1"], r"label_smoothing must be in \[0, 1\)"),
        (["--label-smoothing", "-0.1"], r"label_smoothing must be in \[0, 1\)"),
        (["--tier", "lora", "--lora-r", "0", "--lora-dropout", "1"],
         r"lora_r must be >= 1;.*lora_dropout must be in \[0, 1\)"),
        (["--lora-r", "4", "--lora-alpha", "8"],
         r"--tier lora is needed by --lora-r, --lora-alpha \(got --tier full\)"),
        (["--task", "multi-label-classification", "--label-smoothing", "0.1"],
         r"--label-smoothing applies to --task text-classification only"),
        (["--task", "multi-label-classification", "--contrastive-epochs", "2"],
         r"--contrastive-epochs applies to --task text-classification only"),
        (["--contrastive-epochs", "-1"], r"contrastive_epochs must be >= 0"),
    ],
)  # fmt: skip
def test_bad_train_input_exits_2_with_a_clear_message(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _csv(tmp_path / "train.csv", _rows(4, seed=1))
    args = ["train", "--data", str(data), "--out", str(tmp_path / "out"), "--text-column",
            "utterance", "--label-column", "intent", "--quiet", *extra]  # fmt: skip

    status, out, err = run(capsys, *args)

    assert status == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--label-smoothing", "a lot", "argument --label-smoothing: invalid float value: 'a lot'"),
        ("--lora-r", "2.5", "argument --lora-r: invalid int value: '2.5'"),
    ],
)
def test_an_option_of_the_wrong_type_exits_2_with_usage(
    option: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), option,
            value]  # fmt: skip

    with pytest.raises(SystemExit) as exited:
        main(["finetune", *args])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("usage: taskloom finetune train")
    assert message in err
    assert "Traceback" not in err


def test_empty_file_and_unknown_validation_label_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _csv(tmp_path / "train.csv", _rows(4, seed=1))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    val = _csv(tmp_path / "val.csv", [("a loan please", "loan")])
    common = ["--text-column", "utterance", "--label-column", "intent", "--out",
              str(tmp_path / "out")]  # fmt: skip

    empty_status, _, empty_err = run(capsys, "train", "--data", str(empty), *common)
    val_status, _, val_err = run(capsys, "train", "--data", str(data), "--val", str(val), *common)

    assert (empty_status, val_status) == (2, 2)
    assert "empty.jsonl' holds no examples" in empty_err
    assert "Validation label(s) loan never occur in training" in val_err


def test_bad_eval_input_exits_2(
    trained: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir, _, _ = trained
    other = _csv(tmp_path / "other.csv", [("a loan please", "loan"), ("my card", "card")])
    columns = ["--text-column", "utterance", "--label-column", "intent"]

    unknown = run(capsys, "eval", "--model", str(out_dir / "model"), "--data", str(other),
                  *columns)  # fmt: skip
    missing = run(capsys, "eval", "--model", str(tmp_path / "nope"), "--data", str(other),
                  *columns)  # fmt: skip

    assert unknown[0] == missing[0] == 2
    assert "label(s) loan that the model" in unknown[2]
    assert "Its labels: card, rate" in unknown[2]
    assert "nope" in missing[2]
    assert "Traceback" not in unknown[2] + missing[2]


def test_plot_curves_draws_a_png_from_metrics_json(tmp_path: Path) -> None:
    epochs = [
        {"epoch": e, "train_loss": 1 / e, "val_accuracy": 0.5 + e / 10, "val_macro_f1": 0.5,
         "val_micro_f1": 0.6}
        for e in (1, 2, 3)
    ]  # fmt: skip
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"epochs": epochs, "best_epoch": 3}))

    written = plot_curves(metrics)

    assert written == tmp_path / "curves.png"
    assert written.read_bytes().startswith(PNG)
    assert written.stat().st_size > 5_000  # two drawn panels, not an empty canvas
