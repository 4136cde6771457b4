"""Fine-tuning rounds as recorded jobs: promote, reject, fail and resume, diverge, watch.

Tiny random-init BERT models (the ``base`` fixture) keep each round to a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import finetune._tasks as tasks
from finetune import GateConfig, TrainConfig, encoder_folder, resume_round, run_round, watch
from knowledge import (
    Database,
    import_labels,
    list_jobs,
    model_versions,
    new_labels_since_last_job,
    serving_version,
)

LABELS = ("refund", "balance")
AGENT = "intent"


def add_labels(database: Database, per_label: int, start: int = 0) -> None:
    """Import ``per_label`` labelled texts per label; the label word is in the text."""
    texts = [
        (f"{name} {name} please item {i}", name)
        for name in LABELS
        for i in range(start, start + per_label)
    ]
    with database.transaction() as session:
        import_labels(session, AGENT, texts, author="ann", label_set=LABELS)


def config(root: Path, base: str, **changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out_dir": str(root),
        "base_model": base,
        "epochs": 2,
        "batch_size": 8,
        "max_length": 16,
        "lr": 1e-3,
        "head_lr": 1e-2,
        "seed": 0,
    }
    return TrainConfig(**{**settings, **changes})


def serving(database: Database) -> str | None:
    with database.session() as session:
        current = serving_version(session, AGENT)
    return None if current is None else current.version


def test_first_round_promotes_and_a_round_that_loses_the_gate_is_rejected(
    database: Database, base: str, tmp_path: Path
) -> None:
    add_labels(database, 15)
    first = run_round(database, AGENT, config=config(tmp_path, base))
    assert (first.job.status, first.promoted, first.job.error) == ("succeeded", True, None)
    assert first.job.candidate_version == "job-1"
    assert first.job.dataset_version is not None
    assert serving(database) == "job-1"

    add_labels(database, 5, start=15)
    unbeatable = GateConfig(metric="accuracy", margin_points=100.0)
    second = run_round(database, AGENT, config=config(tmp_path, base), gate_config=unbeatable)
    assert (second.job.status, second.promoted) == ("rejected", False)
    assert second.decision is not None
    assert not second.decision.promote
    assert second.job.dataset_version != first.job.dataset_version
    assert serving(database) == "job-1"  # untouched
    with database.session() as session:
        statuses = {v.version: v.status for v in model_versions(session, AGENT)}
        jobs = [(j.id, j.status) for j in list_jobs(session, AGENT)]
    assert statuses == {"job-1": "serving", "job-2": "candidate"}
    assert jobs == [(2, "rejected"), (1, "succeeded")]
    # The candidate started from the serving model's encoder, not from the base model.
    assert Path(second.job.out_dir, "base", "model.safetensors").is_file()
    metrics = json.loads(Path(second.job.out_dir, "run", "metrics.json").read_text("utf-8"))
    assert metrics["config"]["base_model"] == str(Path(second.job.out_dir, "base"))


def test_a_better_candidate_replaces_a_weak_serving_model(
    database: Database, base: str, tmp_path: Path, tiny_model: Any
) -> None:
    """A round beats a random-weights serving model on the holdout and is promoted."""
    import transformers  # noqa: PLC0415 - keep collecting the suite torch-free

    from agents import save_artifact  # noqa: PLC0415
    from knowledge import ModelVersionIn, register_model_version, set_alias  # noqa: PLC0415

    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    weak = tiny_model(tokenizer, len(LABELS), seed=3)
    sha = save_artifact(weak, tokenizer, tmp_path / "weak", labels=list(LABELS))
    with database.transaction() as session:
        register_model_version(
            session,
            ModelVersionIn(
                agent=AGENT, version="weak", artifact_path=str(tmp_path / "weak"), sha256=sha
            ),
        )
        set_alias(session, AGENT, "serving", "weak", "test", "seed model")
    add_labels(database, 15)
    result = run_round(
        database,
        AGENT,
        config=config(tmp_path / "runs", base, epochs=4),
        gate_config=GateConfig(metric="accuracy", margin_points=1.0),
    )
    assert result.job.status == "succeeded", result.job.result
    assert result.decision is not None
    assert result.decision.serving is not None
    assert result.decision.candidate["accuracy"] > result.decision.serving["accuracy"]
    assert serving(database) == "job-1"


def test_a_crash_fails_the_job_without_touching_serving_and_resume_finishes_it(
    database: Database, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_labels(database, 15)
    loss = tasks.LOSSES["single_label"]
    calls = 0

    def crash_after_three(model: Any, batch: Any, config: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("power cut")
        return loss(model, batch, config)

    monkeypatch.setitem(tasks.LOSSES, "single_label", crash_after_three)
    cfg = config(tmp_path, base, checkpoint_every_steps=1)
    failed = run_round(database, AGENT, config=cfg)
    assert failed.job.status == "failed"
    assert failed.job.error == "RuntimeError: power cut"
    assert serving(database) is None
    assert Path(failed.job.out_dir, "run", "checkpoint", "progress.json").is_file()

    monkeypatch.setitem(tasks.LOSSES, "single_label", loss)
    resumed = resume_round(database, failed.job.id)
    assert (resumed.job.id, resumed.job.status) == (failed.job.id, "succeeded")
    metrics = json.loads(Path(resumed.job.out_dir, "run", "metrics.json").read_text("utf-8"))
    assert metrics["resumed_at_step"] == 3
    assert serving(database) == "job-1"


def test_a_nan_loss_marks_the_job_diverged_and_registers_nothing(
    database: Database, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_labels(database, 15)
    loss = tasks.LOSSES["single_label"]
    monkeypatch.setitem(
        tasks.LOSSES, "single_label", lambda model, batch, cfg: loss(model, batch, cfg) * math.nan
    )
    result = run_round(database, AGENT, config=config(tmp_path, base))
    assert result.job.status == "diverged"
    assert result.job.error is not None
    assert "nan" in result.job.error
    assert serving(database) is None
    with database.session() as session:
        assert model_versions(session, AGENT) == []


def test_watch_once_runs_a_round_only_when_enough_labels_are_new(
    database: Database, base: str, tmp_path: Path
) -> None:
    add_labels(database, 15)
    cfg = config(tmp_path, base, epochs=1)
    assert watch(database, AGENT, config=cfg, min_labels=31, once=True) == []
    ran = watch(database, AGENT, config=cfg, min_labels=30, once=True)
    assert [(r.job.trigger, r.job.status) for r in ran] == [("labels", "succeeded")]
    with database.session() as session:
        assert new_labels_since_last_job(session, AGENT) == 0
    assert watch(database, AGENT, config=cfg, min_labels=1, once=True) == []


def test_encoder_folder_holds_the_artifacts_encoder_weights(
    base: str, tmp_path: Path, tiny_model: Any
) -> None:
    import transformers  # noqa: PLC0415 - keep collecting the suite torch-free

    from agents import save_artifact  # noqa: PLC0415

    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    model = tiny_model(tokenizer, 2)
    save_artifact(model, tokenizer, tmp_path / "art", labels=["a", "b"])
    folder = encoder_folder(tmp_path / "art", tmp_path / "enc")
    encoder = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    expected = model.encoder.state_dict()
    got = encoder.state_dict()
    assert set(got) == set(expected)
    assert all(bool((got[k] == expected[k]).all()) for k in expected)


def test_cli_runs_lists_and_watches_rounds(
    database: Database, base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow._cli import main  # noqa: PLC0415 - the CLI imports the command groups

    add_labels(database, 15)
    common = ["--db", database.url, "--out", str(tmp_path), "--base-model", base]
    fast = ["--epochs", "1", "--batch-size", "8", "--max-length", "16"]
    assert main(["finetune", "run", "--agent", AGENT, *common, *fast]) == 0
    assert "job 1 (intent): succeeded" in capsys.readouterr().out

    assert main(["finetune", "jobs", "--agent", AGENT, "--db", database.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["id"], j["status"], j["candidate_version"]) for j in listed] == [
        (1, "succeeded", "job-1")
    ]
    watch_args = ["finetune", "watch", "--agent", AGENT, *common, *fast, "--once"]
    assert main([*watch_args, "--min-labels", "1"]) == 0
    assert "no round run" in capsys.readouterr().out

    assert main(["finetune", "run", "--resume", "1", "--db", database.url]) == 2
    assert "only a job that is failed, diverged, running can be resumed" in capsys.readouterr().err
    assert main(["finetune", "run", "--resume", "9", "--db", database.url]) == 2
    assert "No fine-tuning job 9" in capsys.readouterr().err
