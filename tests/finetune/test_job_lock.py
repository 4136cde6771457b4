"""A job runs in one process at a time: resuming a job that still runs is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune import FinetuneError, resume_round
from finetune._joblock import LOCK_FILE, job_lock
from knowledge import Database, get_job, start_job


def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path: Path) -> None:
    holder = f"Job 7 is running .*pid {os.getpid()}"
    with job_lock(tmp_path, 7), pytest.raises(FinetuneError, match=holder), job_lock(tmp_path, 7):
        pass
    with job_lock(tmp_path, 7):  # released on exit
        assert (tmp_path / LOCK_FILE).is_file()


def test_resuming_a_job_another_process_runs_is_refused_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    with database.transaction() as session:
        job = start_job(session, "intent", trigger="manual", out_dir=str(tmp_path), config={})

    refused = pytest.raises(FinetuneError, match="cannot be resumed while that process runs")
    with job_lock(tmp_path, job.id), refused:  # as the process running it holds it
        resume_round(database, job.id)
    with database.session() as session:
        assert (get_job(session, job.id).status, get_job(session, job.id).error) == (
            "running",
            None,
        )

    # Its process gone (the lock released), the orphaned job is resumed: here it fails at
    # once, having no settings to train with, and says so.
    resumed = resume_round(database, job.id)
    assert resumed.job.status == "failed"
    assert "KeyError" in (resumed.job.error or "")
