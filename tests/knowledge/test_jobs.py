"""Fine-tuning jobs in the knowledge base: start, update, finish, list, count new labels."""

from __future__ import annotations

import time

import pytest

from knowledge import (
    Database,
    FeedbackIn,
    PredictionIn,
    UnknownJobError,
    finish_job,
    get_job,
    list_jobs,
    new_labels_since_last_job,
    record_predictions,
    start_job,
    submit_feedback_many,
    update_job,
)


def label(database: Database, agent: str, labels: list[str | None], source: str = "human") -> None:
    with database.transaction() as session:
        predictions = record_predictions(
            session,
            [
                PredictionIn(agent=agent, model_version="v0", input={"text": f"t{i}"}, output={})
                for i in range(len(labels))
            ],
        )
        submit_feedback_many(
            session,
            [
                FeedbackIn.model_validate(
                    {
                        "prediction_id": p.id,
                        "label": name,
                        "correction": None if name else {"text": "fixed"},
                        "source": source,
                        "author": "ann",
                    }
                )
                for p, name in zip(predictions, labels, strict=True)
            ],
        )


def test_a_job_is_started_updated_finished_and_listed(database: Database) -> None:
    with database.transaction() as session:
        job = start_job(session, "intent", trigger="manual", out_dir="/runs", config={"a": 1})
        other = start_job(session, "slots", trigger="labels", out_dir="/o", config={})
    assert (job.status, job.finished_at, job.result, job.config) == (
        "running",
        None,
        None,
        {"a": 1},
    )
    with database.transaction() as session:
        update_job(session, job.id, dataset_version=3, out_dir="/runs/job-1")
        update_job(session, job.id, candidate_version="job-1")
        done = finish_job(session, job.id, "rejected", result={"promote": False})
    assert (done.dataset_version, done.candidate_version, done.out_dir) == (
        3,
        "job-1",
        "/runs/job-1",
    )
    assert done.status == "rejected"
    assert done.finished_at is not None
    assert done.result == {"promote": False}
    with database.transaction() as session:
        second = start_job(session, "intent", trigger="labels", out_dir="/runs", config={})
        assert [j.id for j in list_jobs(session, "intent")] == [second.id, job.id]
        assert [j.id for j in list_jobs(session, "slots")] == [other.id]
        assert get_job(session, job.id) == done


def test_a_failed_job_records_its_error_and_can_run_again(database: Database) -> None:
    with database.transaction() as session:
        job = start_job(session, "intent", trigger="manual", out_dir="/r", config={})
        failed = finish_job(session, job.id, "failed", error="RuntimeError: boom")
        rerun = finish_job(session, job.id, "running")
    assert (failed.status, failed.error) == ("failed", "RuntimeError: boom")
    assert failed.finished_at is not None
    assert (rerun.status, rerun.error, rerun.finished_at) == ("running", None, None)


def test_unknown_jobs_and_statuses_are_refused(database: Database) -> None:
    with database.transaction() as session:
        with pytest.raises(UnknownJobError, match="No fine-tuning job 42"):
            get_job(session, 42)
        job = start_job(session, "intent", trigger="manual", out_dir="/r", config={})
        with pytest.raises(ValueError, match=r"Unknown job status 'done'\. Valid: queued"):
            finish_job(session, job.id, "done")  # type: ignore[arg-type]


def test_new_labels_are_counted_since_the_last_job(database: Database) -> None:
    label(database, "intent", ["a", "b", None])  # a correction without a label is no label
    label(database, "intent", ["a"], source="rule")  # rules are never trained on
    label(database, "other", ["a"])
    with database.session() as session:
        assert new_labels_since_last_job(session, "intent") == 2
    with database.transaction() as session:
        start_job(session, "intent", trigger="manual", out_dir="/r", config={})
    with database.session() as session:
        assert new_labels_since_last_job(session, "intent") == 0
        assert new_labels_since_last_job(session, "other") == 1
    time.sleep(0.01)  # feedback timestamps must come after the job's start
    label(database, "intent", ["c", "d", "e"])
    with database.session() as session:
        assert new_labels_since_last_job(session, "intent") == 3
