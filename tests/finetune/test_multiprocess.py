"""The training loop under ``accelerate launch`` with two CPU processes (gloo) matches one
process: batches shard across the processes, validation counts every row once, and only
the main process writes the artifact and ``metrics.json``.

Both runs see the same effective batch (one process of 8 rows, two of 4) and the same
seed; their batches differ in composition, so the metrics agree within a tolerance rather
than exactly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finetune import evaluate

pytestmark = pytest.mark.slow

SCRIPT = """
import json, random, sys

from finetune import Example, TrainConfig, train

FILLER = ["please", "help", "me", "with", "my", "account", "today", "now", "the", "a"]
WORDS = {"card": ["card", "visa", "debit"], "rate": ["rate", "exchange", "currency"]}


def split(n, seed):
    rng = random.Random(seed)
    return [
        Example(" ".join(rng.sample(FILLER, rng.randint(1, 5)) + rng.sample(words, 1)), label)
        for label, words in WORDS.items()
        for _ in range(n)
    ]


base, out, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = TrainConfig(
    out_dir=out, base_model=base, epochs=3, batch_size=batch_size, lr=3e-3, head_lr=3e-2,
    max_length=32, checkpoint_every_steps=2,
)
val = split(9, seed=2)
result = train(config, split(25, seed=1), val)
import torch.distributed as dist
rank = dist.get_rank() if dist.is_initialized() else 0
with open(f"{out}.rank{rank}.json", "w") as f:
    json.dump({"best_metric": result.best_metric, "examples": result.report.examples,
               "macro_f1": result.report.macro_f1, "sha256": result.sha256,
               "val_texts": [e.text for e in val], "val_labels": [e.label for e in val]}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _launch(tmp: Path, base: str, processes: int, batch_size: int) -> list[dict[str, Any]]:
    """Run the script under ``accelerate launch``; return each rank's result."""
    script, out = tmp / "train_toy.py", tmp / f"run{processes}"
    script.write_text(SCRIPT, "utf-8")
    # --multi_gpu selects the torchrun launcher; without a GPU, Accelerate runs it on
    # CPU with the gloo backend.
    mode = ["--multi_gpu", f"--main_process_port={_free_port()}"] if processes > 1 else ["--cpu"]
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *mode,
        *(f"--num_processes={processes}", "--num_machines=1"),
        *("--mixed_precision=no", "--dynamo_backend=no"),
        *(str(script), base, str(out), str(batch_size)),
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [
        json.loads((tmp / f"run{processes}.rank{r}.json").read_text()) for r in range(processes)
    ]


def test_two_processes_match_one(base: str, tmp_path: Path) -> None:
    one = _launch(tmp_path, base, processes=1, batch_size=8)[0]
    two = _launch(tmp_path, base, processes=2, batch_size=4)
    rows = len(one["val_texts"])

    assert one["best_metric"] >= 0.9
    assert abs(two[0]["best_metric"] - one["best_metric"]) <= 0.1
    assert abs(two[0]["macro_f1"] - one["macro_f1"]) <= 0.1
    # gather_for_metrics drops the rows repeated to even out the last batch
    assert one["examples"] == two[0]["examples"] == two[1]["examples"] == rows
    assert two[0]["sha256"] == two[1]["sha256"]  # one artifact, written by the main process
    served = evaluate(tmp_path / "run2" / "model", two[0]["val_texts"], two[0]["val_labels"])
    assert served.accuracy == pytest.approx(two[0]["best_metric"], abs=0.06)
    assert not (tmp_path / "run2" / "checkpoint").exists()
