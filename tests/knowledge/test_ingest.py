"""Ingesting documents: formats, chunking, dedupe, metadata, redaction and bad input."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, text

from knowledge import (
    Database,
    EmbedderError,
    HashEmbedder,
    IngestError,
    IngestReport,
    add_document,
    ingest_path,
)
from knowledge._chunk import chunk_markdown, chunk_text
from knowledge._models import Chunk, Document

EMBEDDER = HashEmbedder(dim=32)

GUIDE = textwrap.dedent("""\
    # Card help

    Everything about your card.

    ## Lost card

    Freeze the card in the app, then order a replacement.

    ```
    # this is code, not a heading
    ```

    ## Fees

    ATM withdrawals are free up to 200 EUR a month.
""")


def rows(database: Database) -> tuple[list[Document], list[Chunk]]:
    with database.session() as session:
        documents = list(session.scalars(select(Document).order_by(Document.id)))
        chunks = list(session.scalars(select(Chunk).order_by(Chunk.document_id, Chunk.ordinal)))
        session.expunge_all()
        return documents, chunks


def ingest(database: Database, path: Path, **options: Any) -> IngestReport:
    with database.transaction() as session:
        return ingest_path(session, path, EMBEDDER, **options)


# ---------------------------------------------------------------------------- chunking


def test_chunks_pack_whole_paragraphs_up_to_the_limit() -> None:
    paragraphs = ["alpha " * 10, "beta " * 10, "gamma " * 10, "delta " * 30]
    text_ = "\n\n".join(p.strip() for p in paragraphs)

    chunks = chunk_text(text_, max_chars=140, overlap=0)

    assert chunks == [
        f"{paragraphs[0].strip()}\n\n{paragraphs[1].strip()}",
        paragraphs[2].strip(),
        " ".join(["delta"] * 23),
        " ".join(["delta"] * 7),
    ]


def test_chunks_never_split_a_word_and_respect_the_limit() -> None:
    words = [f"w{i}{'x' * (i % 7)}" for i in range(400)]
    text_ = " ".join(words[:150]) + "\n\n" + " ".join(words[150:])

    chunks = chunk_text(text_, max_chars=120, overlap=30)

    assert all(len(chunk) <= 120 for chunk in chunks)
    vocabulary = set(words)
    assert all(set(chunk.split()) <= vocabulary for chunk in chunks)
    # Overlap: each chunk after the first starts with the end of the previous one.
    for previous, chunk in itertools.pairwise(chunks):
        first_word = chunk.split()[0]
        assert first_word in previous.split()[-6:]
    assert set(" ".join(chunks).split()) == vocabulary  # every word is somewhere


def test_a_word_longer_than_the_limit_is_kept_whole() -> None:
    long_word = "x" * 50

    assert chunk_text(f"short {long_word} end", max_chars=20, overlap=0) == [
        "short",
        long_word,
        "end",
    ]


def test_chunking_rejects_an_overlap_that_would_not_fit() -> None:
    with pytest.raises(ValueError, match="overlap < max_chars / 2"):
        chunk_text("text", max_chars=100, overlap=60)


def test_markdown_is_chunked_by_section_with_headings_kept() -> None:
    chunks = chunk_markdown(GUIDE, max_chars=800, overlap=0)

    assert [heading for _, heading in chunks] == ["Card help", "Lost card", "Fees"]
    assert chunks[1][0].startswith("Lost card\n\nFreeze the card")
    assert "# this is code, not a heading" in chunks[1][0]


# ---------------------------------------------------------------------------- formats


def test_text_file_is_one_document_titled_by_its_name(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "refunds.txt"
    path.write_text("Refunds take 5 days.\n\nContact the merchant first.\n")

    report = ingest(database, path, meta={"team": "payments"})

    documents, chunks = rows(database)
    assert report.documents_added == 1
    assert report.chunks_added == 1
    assert report.files == [str(path)]
    assert [(d.title, d.source, d.meta) for d in documents] == [
        ("refunds", str(path), {"team": "payments"})
    ]
    assert chunks[0].text == "Refunds take 5 days.\n\nContact the merchant first."


def test_markdown_title_and_sections(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE)

    ingest(database, path)

    documents, chunks = rows(database)
    assert documents[0].title == "Card help"
    assert [c.meta["section"] for c in chunks] == ["Card help", "Lost card", "Fees"]
    assert [c.ordinal for c in chunks] == [0, 1, 2]


def test_csv_rows_become_documents_with_column_meta(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(
        "question,answer,category,title\n"
        'How long do refunds take?,"Up to 5 days, sometimes 10.",refunds,Refund time\n'
        "Can I freeze my card?,Yes: in the app.,cards,\n"
    )

    report = ingest(database, path, text_column="answer")

    documents, chunks = rows(database)
    assert report.documents_added == 2
    assert [(d.title, d.meta) for d in documents] == [
        ("Refund time", {"question": "How long do refunds take?", "category": "refunds"}),
        ("Yes: in the app.", {"question": "Can I freeze my card?", "category": "cards"}),
    ]
    assert [(c.text, c.meta) for c in chunks] == [
        ("Up to 5 days, sometimes 10.", {"line": 2}),
        ("Yes: in the app.", {"line": 3}),
    ]


def test_jsonl_lines_become_documents_with_field_meta(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "articles.jsonl"
    records = [
        {"body": "Top up by bank transfer.", "title": "Top up", "views": 12, "tags": ["money"]},
        {"body": "Virtual cards change number.", "vip": True},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records[:1]) + "\n\n" + json.dumps(records[1]))

    ingest(database, path, text_column="body")

    documents, chunks = rows(database)
    assert [(d.title, d.meta) for d in documents] == [
        ("Top up", {"views": 12, "tags": ["money"]}),
        ("Virtual cards change number.", {"vip": True}),
    ]
    assert [c.meta for c in chunks] == [{"line": 1}, {"line": 3}]


def test_rows_without_a_title_are_titled_by_their_first_words(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "tickets.jsonl"
    long_text = "My replacement card never arrived " + "and nobody answers " * 6
    path.write_text(json.dumps({"text": long_text}) + "\n")

    ingest(database, path)

    (document,), _ = rows(database)
    head = document.title.removesuffix("...")
    assert document.title.endswith("...")
    assert head.startswith("My replacement card never arrived and nobody")
    assert long_text[len(head)] == " "  # cut between words
    assert len(document.title) <= 80


def test_embeddings_are_float32_bytes_with_the_embedder_name(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("Exchange rates on weekends include a fee.")

    ingest(database, path)

    _, chunks = rows(database)
    assert chunks[0].embedder == EMBEDDER.name
    assert chunks[0].embedding is not None
    stored = np.frombuffer(chunks[0].embedding, dtype="<f4")
    np.testing.assert_array_equal(stored, EMBEDDER.embed([chunks[0].text])[0])


def test_a_folder_ingests_supported_files_and_reports_the_rest(
    database: Database, tmp_path: Path
) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("First file.")
    (tmp_path / "docs" / "sub" / "b.MD").write_text("# B\n\nSecond file.")
    (tmp_path / "docs" / "logo.png").write_bytes(b"\x89PNG")

    report = ingest(database, tmp_path / "docs")

    assert report.documents_added == 2
    assert [Path(f).name for f in report.files] == ["a.txt", "b.MD"]
    assert [Path(f).name for f in report.skipped_files] == ["logo.png"]


def test_long_documents_are_embedded_in_several_batches(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("\n\n".join(f"Paragraph {i} about topic {i}." for i in range(30)))

    report = ingest(database, path, chunk_chars=40, overlap=0, batch_size=4)

    _, chunks = rows(database)
    assert report.chunks_added == len(chunks) == 30
    assert all(c.embedding is not None and len(c.embedding) == 32 * 4 for c in chunks)


# ---------------------------------------------------------------------------- dedupe


def test_ingesting_the_same_file_again_adds_nothing(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "one"}\n')

    first = ingest(database, path)
    second = ingest(database, path)

    assert (first.documents_added, first.duplicates) == (2, 1)
    assert (second.documents_added, second.duplicates, second.chunks_added) == (0, 3, 0)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2
        assert session.scalar(select(func.count()).select_from(Chunk)) == 2


def test_add_document_returns_the_stored_id_for_repeated_content(database: Database) -> None:
    with database.transaction() as session:
        first = add_document(
            session, "Cards arrive in 5 days.", source="api", title="Delivery", embedder=EMBEDDER
        )
        again = add_document(
            session, "Cards arrive in 5 days.", source="other", title="Delivery", embedder=EMBEDDER
        )
        other_meta = add_document(
            session,
            "Cards arrive in 5 days.",
            source="api",
            title="Delivery",
            meta={"lang": "en"},
            embedder=EMBEDDER,
        )
        empty = add_document(session, "  \n ", source="api", title="Blank", embedder=EMBEDDER)

    assert first is not None
    assert again == first
    assert other_meta not in (None, first)  # different meta: a different document
    assert empty is None


def test_a_concurrent_ingest_of_the_same_content_stores_it_once(database: Database) -> None:
    first = database.session()
    first_id = add_document(first, "Same text", source="a", title="T", embedder=EMBEDDER)
    outcome: dict[str, Any] = {}

    def second_writer() -> None:
        try:
            with database.transaction() as session:
                outcome["id"] = add_document(
                    session, "Same text", source="b", title="T", embedder=EMBEDDER
                )
        except IngestError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(0.5)  # let the second writer reach its BEGIN (SQLite) or its INSERT (PostgreSQL)
    first.commit()
    first.close()
    thread.join(timeout=30)

    # SQLite serialises writers, so the second sees the first's row; on PostgreSQL it may
    # have looked before the commit, and then the unique hash refuses its copy.
    if database.dialect == "sqlite":
        assert outcome == {"id": first_id}
    else:
        assert outcome.get("id") == first_id or "Another writer stored" in outcome["error"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 1


class WrongShapeEmbedder:
    name = "broken"
    dim = 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_an_embedder_returning_the_wrong_shape_is_named(database: Database) -> None:
    with database.session() as session, pytest.raises(EmbedderError, match="'broken' returned"):
        add_document(session, "text", source="s", title="t", embedder=WrongShapeEmbedder())


# ---------------------------------------------------------------------------- redaction


def test_card_numbers_are_redacted_before_storage(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text(
        "text,customer\n"
        "My card 4111 1111 1111 1111 was charged twice for one order,jane.doe@example.com\n"
    )

    ingest(database, path)

    with database.engine.connect() as connection:  # the raw rows, as stored
        (chunk_text_,) = connection.execute(text("SELECT text FROM chunks")).one()
        (meta,) = connection.execute(text("SELECT meta FROM documents")).one()
    assert "4111" not in chunk_text_
    assert "charged twice for one order" in chunk_text_
    assert "jane.doe@example.com" not in str(meta)


# ---------------------------------------------------------------------------- bad input


def test_a_missing_path_is_a_clear_error(database: Database, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file or folder"):
        ingest(database, tmp_path / "nope.txt")


def test_an_unsupported_extension_lists_the_supported_ones(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7")

    with pytest.raises(IngestError, match=re.escape("unsupported file type '.pdf'")) as info:
        ingest(database, path)
    assert ".txt, .md, .markdown, .csv, .jsonl" in str(info.value)


def test_csv_without_the_text_column_lists_the_columns(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("question,answer\nq,a\n")

    with pytest.raises(IngestError, match=re.escape("no column 'text'. Columns: question, answer")):
        ingest(database, path)


def test_csv_row_with_extra_fields_names_the_line(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("text,category\nfine,cards\nnot, quoted, here\n")

    with pytest.raises(IngestError, match="line 3 has more fields than the header"):
        ingest(database, path)
    assert rows(database) == ([], [])  # the transaction rolled back the first row


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"text": "broken"\n', "line 2 is not valid JSON"),
        ('{"text": "ok"}\n\n["a", "list"]\n', "line 3 is a JSON list, not an object"),
        (
            '{"body": "no text field", "id": 1}\n',
            "line 1 has no string field 'text'. Fields: body, id",
        ),
    ],
)
def test_malformed_jsonl_names_the_line(
    database: Database, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)

    with pytest.raises(IngestError, match=re.escape(message)):
        ingest(database, path)


def test_a_file_that_is_not_utf8_is_a_clear_error(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème".encode("latin-1"))

    with pytest.raises(IngestError, match="not UTF-8 text"):
        ingest(database, path)
