"""The service under load: a seeded SQLite knowledge base and a uvicorn process serving it.

    python -m benchmarks._service_server --db URL --port PORT --jobs-dir DIR

The benchmark seeds the knowledge base (``seed``), then starts this module as a separate
process (``start_server``): one uvicorn worker on loopback serving a 3-step workflow of fake
agents, so what is measured is the service (HTTP, validation, the engine, the SQL run store),
not a model.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import text

from agents.testing import FakeAgent
from knowledge import Database, PredictionIn, create_api_key, enqueue_uncertain, record_predictions
from workflow import CompiledWorkflow, ServiceConfig, Workflow, create_app, state

__all__ = ["REVIEW_AGENT", "TASKS", "WORKFLOW", "count_runs", "seed", "start_server", "stop"]

WORKFLOW = "triage"
REVIEW_AGENT = "intent"
# The fake classifier echoes the text as its label, so the two tasks take the two routes.
TASKS = ({"text": "refund"}, {"text": "where is my parcel"})
LABELS = [
    "refund", "card_lost", "transfer", "balance", "exchange_rate",
    "top_up", "card_arrival", "pin_blocked", "cash_withdrawal", "direct_debit",
]  # fmt: skip


class Task(BaseModel):
    """A customer message."""

    text: str


def triage_workflow() -> CompiledWorkflow:
    """classify -> refund when the label is "refund" (a rule), else reply (the default)."""
    wf = Workflow(WORKFLOW, task=Task)
    wf.step("classify", FakeAgent(echo=True))
    wf.step("refund", FakeAgent(label="refunded"))
    wf.step("reply", FakeAgent(label="answered"))
    wf.route("classify", "refund", when=state("classify").label == "refund")
    wf.route("classify", "reply")
    return wf.compile()


def _vector(rng: random.Random) -> list[float]:
    weights = [rng.random() ** 3 for _ in LABELS]  # skewed: some confident, some not
    total = sum(weights)
    return [w / total for w in weights]


def seed(database: Database, predictions: int) -> str:
    """Queue ``predictions`` classifier predictions for review; return an operator key.

    Args:
        database: The fresh knowledge base.
        predictions: How many predictions to record and queue (probabilities over 10 labels).

    Returns:
        The operator key's token (operators may submit tasks and read the review queue).
    """
    rng = random.Random(7)
    rows = []
    for i in range(predictions):
        vector = _vector(rng)
        best = LABELS[vector.index(max(vector))]
        rows.append(
            PredictionIn(
                agent=REVIEW_AGENT,
                model_version="v1",
                input={"text": f"customer message {i}: where is my money?"},
                output={"label": best},
                label=best,
                confidence=max(vector),
                probabilities=vector,
                label_set=LABELS,
            )
        )
    with database.transaction() as session:
        record_predictions(session, rows)
        queued = enqueue_uncertain(session, REVIEW_AGENT)
        _, token = create_api_key(session, "load", "operator", created_by="benchmark")
    if queued != predictions:
        raise RuntimeError(f"Seeding queued {queued} of {predictions} predictions for review.")
    return token


def count_runs(database: Database) -> dict[str, int]:
    """Runs in the knowledge base by status (an exact count, unlike paging by time)."""
    with database.session() as session:
        rows = session.execute(text("SELECT status, COUNT(*) FROM runs GROUP BY status"))
        return {str(status): int(n) for status, n in rows}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    db_url: str, jobs_dir: Path, timeout_s: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the service in its own process; return it and its base URL once it is healthy.

    Raises:
        RuntimeError: The server exited or did not answer ``GET /health`` in time.
    """
    port = _free_port()
    command = [sys.executable, "-m", "benchmarks._service_server", "--db", db_url,
               "--port", str(port), "--jobs-dir", str(jobs_dir)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"The server exited with {server.returncode}: {' '.join(command)}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as response:
                if response.status == 200:
                    return server, base
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"The server did not answer {base}/health within {timeout_s:g} s.")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Ask the server to shut down (SIGTERM), kill it if it takes over 30 s."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> None:
    """Serve the triage workflow over ``--db`` on loopback with one uvicorn worker."""
    import uvicorn  # noqa: PLC0415 - the service extra; only the server process needs it

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="knowledge base URL (seeded)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jobs-dir", required=True, help="where fine-tuning jobs would go")
    args = parser.parse_args(argv)
    app = create_app(
        [triage_workflow()],
        database=Database(args.db),
        config=ServiceConfig(jobs_dir=args.jobs_dir, dashboard=False),
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
