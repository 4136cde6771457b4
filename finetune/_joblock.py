"""One process per fine-tuning job: an OS file lock in the job's run folder.

A job left ``running`` is either still training in some process or orphaned by a crash;
its status alone cannot tell. The process running a job holds an exclusive ``flock`` on
``<out_dir>/job.lock`` for as long as it runs; the OS releases it when the process ends,
however it ends. A resume takes the lock first, so it refuses a job that is still running
and continues one whose process died.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from finetune._errors import FinetuneError

__all__ = ["LOCK_FILE", "job_lock"]

LOCK_FILE = "job.lock"


@contextmanager
def job_lock(out_dir: str | Path, job_id: int) -> Iterator[None]:
    """Hold job ``job_id``'s lock in ``out_dir`` for the block.

    Raises:
        FinetuneError: Another process holds it: the job is running there.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FinetuneError(
                f"Job {job_id} is running in another process ({holder}); it cannot be resumed "
                "while that process runs. Wait for it, or stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
