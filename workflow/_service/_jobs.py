"""Fine-tuning rounds started from the service: one ``taskloom finetune run`` process each.

A round trains for minutes on all the cores it gets, so it runs in its own process, never in
the server's: requests keep being answered, and a crash of the round cannot take the service
down. The round records itself as a job in the knowledge base (``GET .../jobs`` lists it).
The database URL reaches the process through its environment, not its command line, where
any user of the machine could read a password in it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from workflow._service._errors import ApiError

__all__ = ["JobLauncher"]
# ``Database()`` reads its URL from here when ``--db`` is not given.
_URL_ENV = "TASKLOOM_DATABASE_URL"


class JobLauncher:
    """Starts rounds as child processes, at most one running per agent; they outlive the service
    (their own session), since a round stopped halfway would waste its work.

    Args:
        database_url: The knowledge base the rounds read and write.
        jobs_dir: Where job folders and their logs go.
        command: The command that runs one round (``--agent`` and options are appended).
    """

    def __init__(self, database_url: str, jobs_dir: str, command: tuple[str, ...]) -> None:
        self._database_url = database_url
        self._jobs_dir = Path(jobs_dir)
        self._command = command
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, agent: str, *, epochs: int | None, tier: str | None) -> tuple[int, str]:
        """Start a round for ``agent``; return its pid and log file.

        Raises:
            ApiError: 409 when a round this service started for ``agent`` still runs.
        """
        running = self._running.get(agent)
        if running is not None and running.poll() is None:
            raise ApiError(
                409,
                f"A fine-tuning round for '{agent}' is still running (pid {running.pid}); "
                "wait for it to finish (GET its jobs) before starting another.",
            )
        logs = self._jobs_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{agent}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        args = [*self._command, "--agent", agent, "--out", str(self._jobs_dir)]
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        if tier is not None:
            args += ["--tier", tier]
        env = {**os.environ, _URL_ENV: self._database_url, "HF_HUB_OFFLINE": "1"}
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        # Waited for on a thread: a finished round is reaped at once, not left a zombie.
        threading.Thread(target=process.wait, name=f"round-{agent}", daemon=True).start()
        self._running[agent] = process
        return process.pid, str(log)
