"""``taskloom kb ingest`` and ``taskloom kb search`` on a temporary SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workflow._cli import main


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "guide.md").write_text(
        "# Card help\n\n## Lost card\n\nFreeze a lost or stolen card in the app, then order a "
        "replacement.\n\n## Fees\n\nATM withdrawals are free up to 200 EUR a month.\n"
    )
    (tmp_path / "faq.csv").write_text(
        "answer,category\n"
        "Refunds from merchants take up to 10 days.,payments\n"
        "Exchange rates include a weekend fee.,payments\n"
        "Virtual cards change number after each purchase.,cards\n"
    )
    return tmp_path


def url_for(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kb.db'}"


def kb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["kb", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_ingest_then_search_end_to_end(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = url_for(files)
    md, csv_ = str(files / "guide.md"), str(files / "faq.csv")

    status, out, _ = kb(capsys, "ingest", md, csv_, "--url", url, "--text-column", "answer",
                        "--embedder", "hash")  # fmt: skip
    assert status == 0
    assert out.strip() == (
        "ingested 2 files: 4 documents added, 0 already stored, 0 empty; "
        "5 chunks embedded with hash-256-3"
    )

    status, out, _ = kb(capsys, "ingest", csv_, "--url", url, "--text-column", "answer",
                        "--embedder", "hash")  # fmt: skip
    assert status == 0
    assert "0 documents added, 3 already stored" in out

    status, out, _ = kb(capsys, "search", "stolen card", "--url", url, "--embedder", "hash")
    assert status == 0
    assert out.splitlines()[0].startswith("1. 1.000  Card help  (")
    assert out.splitlines()[0].endswith("guide.md [Lost card])")
    assert "Freeze a lost or stolen card" in out.splitlines()[1]


def test_search_json_with_filters_and_k(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = url_for(files)
    kb(capsys, "ingest", str(files / "faq.csv"), "--url", url, "--text-column", "answer",
       "--embedder", "hash", "--meta", "lang=en", "--meta", "version:=2")  # fmt: skip

    status, out, _ = kb(capsys, "search", "weekend fee refunds", "--url", url, "--embedder",
                        "hash", "--json", "--k", "1", "--filter", "category=payments",
                        "--filter", "version:=2")  # fmt: skip

    assert status == 0
    (hit,) = json.loads(out)
    assert hit["meta"] == {"category": "payments", "lang": "en", "version": 2}
    assert hit["chunk_meta"] == {"line": 2} or hit["chunk_meta"] == {"line": 3}
    assert set(hit) >= {"chunk_id", "document_id", "text", "score", "fts_score", "source"}


def test_bad_input_exits_with_a_clear_message(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url_for(files)

    status, _, err = kb(capsys, "ingest", str(files / "faq.csv"), "--url", url, "--embedder",
                        "hash")  # fmt: skip
    assert status == 1
    assert "no column 'text'. Columns: answer, category" in err

    status, _, err = kb(capsys, "ingest", str(files / "missing.txt"), "--url", url)
    assert status == 1
    assert "no such file or folder" in err

    status, _, err = kb(capsys, "search", "x", "--url", url, "--filter", "oops")
    assert status == 2
    assert "--filter 'oops' is not KEY=VALUE" in err

    status, _, err = kb(capsys, "search", "x", "--url", url, "--k", "0", "--embedder", "hash")
    assert status == 1
    assert "k must be at least 1" in err


def test_search_on_an_empty_knowledge_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = kb(capsys, "search", "anything", "--url", url_for(tmp_path), "--embedder",
                        "hash")  # fmt: skip

    assert status == 0
    assert out.strip() == "no matches"


@pytest.mark.slow  # two processes each load torch and the model: ~15-40 s on 2 shared cores
def test_the_console_command_runs_kb_with_the_real_model(files: Path) -> None:
    """As a user runs it: a subprocess, the default embedder (MiniLM), no model hub."""
    url = url_for(files)
    code = "import sys; from workflow._cli import main; sys.exit(main(sys.argv[1:]))"

    def taskloom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, "kb", *args, "--url", url],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    ingested = taskloom("ingest", str(files / "guide.md"))
    found = taskloom("search", "my wallet was pinched", "--k", "1", "--json")

    assert ingested.returncode == 0, ingested.stderr
    assert "chunks embedded with all-MiniLM-L6-v2" in ingested.stdout
    assert found.returncode == 0, found.stderr
    (hit,) = json.loads(found.stdout)
    assert hit["chunk_meta"] == {"section": "Lost card"}
    assert hit["fts_score"] is None  # found by meaning alone
