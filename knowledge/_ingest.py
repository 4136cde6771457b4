"""Ingesting documents: read files, redact, chunk, embed and store.

Supported files (by extension, case-insensitive):

- ``.txt``: one document; paragraphs are separated by blank lines; the title is the file name.
- ``.md``, ``.markdown``: one document, chunked section by section at its headings; the title
  is the first heading; each chunk's meta records its ``section``.
- ``.csv``: one document per row; the text is in ``text_column``, the title in
  ``title_column`` when the file has one (else the start of the text), every other column
  becomes document meta; each chunk's meta records the ``line`` it came from.
- ``.jsonl``: one document per non-blank line, a JSON object; the text field is
  ``text_column``, the title ``title_column`` when present, every other field is meta; as
  for CSV, each chunk records its ``line``.

Before anything is stored, text, title and meta pass through the session's redactor, so
sensitive values never reach the database. A document is identified by the SHA-256 of its
redacted text, title and meta: ingesting the same content again (from the same file or
another) adds nothing. Embeddings are computed in batches and stored as little-endian float32
bytes with the embedder's name.

These functions add rows to the session and flush; they never commit. On an error part of a
file may already be in the session: roll it back (``Database.transaction()`` does).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowledge._chunk import chunk_markdown, chunk_text, markdown_title
from knowledge._embed import Embedder
from knowledge._errors import EmbedderError, IngestError
from knowledge._models import Chunk, Document
from knowledge._redact import redactor_for

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "IngestReport",
    "add_document",
    "chunk_embedders",
    "ingest_path",
    "reembed_chunks",
]

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".csv", ".jsonl")
TITLE_CHARS = 80  # a row without a title is titled by the start of its text, this long


class IngestReport(BaseModel):
    """What an ingest added and skipped."""

    embedder: str = Field(description="Name of the embedder the chunks were embedded with.")
    files: list[str] = Field(default_factory=list, description="Files read, in order.")
    documents_added: int = 0
    duplicates: int = Field(0, description="Documents skipped: their content was stored.")
    empty: int = Field(0, description="Documents skipped: no text.")
    chunks_added: int = 0
    skipped_files: list[str] = Field(
        default_factory=list, description="Files in a folder with an unsupported extension."
    )


@dataclass
class _Doc:
    """A document read from a file, before redaction."""

    text: str
    source: str
    title: str
    meta: dict[str, Any]
    markdown: bool = False
    chunk_meta: dict[str, Any] = field(default_factory=dict)  # provenance, not hashed


@dataclass
class _Options:
    text_column: str
    title_column: str
    meta: dict[str, Any]


def ingest_path(  # noqa: PLR0913 - keyword-only options, documented below
    session: Session,
    path: str | Path,
    embedder: Embedder,
    *,
    text_column: str = "text",
    title_column: str = "title",
    meta: Mapping[str, Any] | None = None,
    chunk_chars: int = 800,
    overlap: int = 100,
    batch_size: int = 256,
) -> IngestReport:
    """Ingest a file, or every supported file under a folder.

    Args:
        session: The database session; rows are added and flushed, not committed.
        path: A ``.txt``, ``.md``, ``.csv`` or ``.jsonl`` file, or a folder to walk.
        embedder: Embeds the chunks; its name is stored with them.
        text_column: The CSV column or JSONL field holding the text.
        title_column: The CSV column or JSONL field holding the title, when there is one.
        meta: Extra meta for every document (file columns and fields win on a clash).
        chunk_chars: The longest chunk in characters.
        overlap: Characters repeated from one chunk at the start of the next.
        batch_size: Chunks embedded and written per batch.

    Returns:
        What was added and skipped.

    Raises:
        IngestError: The path is missing, a file has an unsupported extension, is not UTF-8,
            or is malformed (the message names the file and the line or column).
    """
    report = IngestReport(embedder=embedder.name)
    options = _Options(text_column, title_column, dict(meta or {}))
    writer = _Writer(session, embedder, report, chunk_chars, overlap, batch_size)
    for file in _files(Path(path), report):
        report.files.append(str(file))
        for doc in _read(file, options):
            writer.add(doc)
    writer.flush()
    return report


def add_document(  # noqa: PLR0913 - keyword-only options, documented below
    session: Session,
    text: str,
    *,
    source: str,
    title: str,
    meta: Mapping[str, Any] | None = None,
    embedder: Embedder,
    markdown: bool = False,
    chunk_chars: int = 800,
    overlap: int = 100,
) -> int | None:
    """Add one document from text: redacted, chunked, embedded, flushed (not committed).

    Args:
        session: The database session.
        text: The document text.
        source: Where it came from (a path, URL or system name); searchable as a filter.
        title: Its title.
        meta: Metadata to filter on (JSON values).
        embedder: Embeds the chunks.
        markdown: Chunk at Markdown headings.
        chunk_chars: The longest chunk in characters.
        overlap: Characters repeated from one chunk at the start of the next.

    Returns:
        The document's id: the new row's, or the stored one's when the same content is
        already there. None when the text is empty.
    """
    report = IngestReport(embedder=embedder.name)
    writer = _Writer(session, embedder, report, chunk_chars, overlap, batch_size=256)
    doc = _Doc(text, source, title, dict(meta or {}), markdown=markdown)
    return writer.add(doc, flush=True)


def reembed_chunks(
    session: Session,
    embedder: Embedder,
    *,
    replace: Collection[str] | None = None,
    batch_size: int = 256,
) -> int:
    """Embed with ``embedder`` the stored chunks that have no vector from it yet.

    A chunk holds one embedding, tagged with its embedder's name, and search compares a query
    only with chunks of the same name. So when a new model version serves (a fine-tuned
    retriever), the chunks must be embedded again before its vector search finds them; this
    does it in batches, flushing (not committing). It replaces the other embedders' vectors:
    if the knowledge base also serves another embedder, name the ones to replace.

    Args:
        session: The database session; rows are updated and flushed, not committed.
        embedder: The embedder whose vectors the chunks get.
        replace: The embedder names whose chunks are re-embedded (chunks with no embedding
            always are); None re-embeds every chunk not embedded by ``embedder``.
        batch_size: Chunks embedded and written per batch.

    Returns:
        How many chunks were embedded (0 when all carry ``embedder``'s vectors already).

    Raises:
        EmbedderError: The embedder returned an array of the wrong shape.
    """
    if replace is None:
        stale = or_(Chunk.embedder.is_(None), Chunk.embedder != embedder.name)
    else:
        stale = or_(Chunk.embedder.is_(None), Chunk.embedder.in_(set(replace)))
    stale = or_(stale, Chunk.embedding.is_(None))
    ids = list(session.scalars(select(Chunk.id).where(stale).order_by(Chunk.id)))
    for start in range(0, len(ids), max(1, batch_size)):
        batch = ids[start : start + max(1, batch_size)]
        rows = session.execute(
            select(Chunk.id, Chunk.text).where(Chunk.id.in_(batch)).order_by(Chunk.id)
        ).all()
        vectors = _embed(embedder, [text for _, text in rows])
        values = [
            {"id": chunk_id, "embedding": _blob(vector), "embedder": embedder.name}
            for (chunk_id, _), vector in zip(rows, vectors, strict=True)
        ]
        session.execute(update(Chunk), values)
    session.flush()
    return len(ids)


def chunk_embedders(session: Session) -> dict[str, int]:
    """How many stored chunks each embedder name has embedded ("" for chunks with none).

    Tells whether a model's index exists (and is complete) before searching with it.
    """
    stmt = select(Chunk.embedder, func.count()).group_by(Chunk.embedder)
    return {name or "": count for name, count in session.execute(stmt)}


def _embed(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed ``texts``, checking that the embedder kept its contract's shape."""
    vectors = embedder.embed(texts)
    if vectors.shape != (len(texts), embedder.dim):
        raise EmbedderError(
            f"Embedder '{embedder.name}' returned an array of shape {vectors.shape} "
            f"for {len(texts)} texts; an Embedder must return (len(texts), dim="
            f"{embedder.dim})."
        )
    return vectors


def _blob(vector: npt.NDArray[np.float32]) -> bytes:
    """How a vector is stored: little-endian float32 bytes."""
    return vector.astype("<f4").tobytes()


def _files(path: Path, report: IngestReport) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        report.skipped_files = [str(p) for p in files if not _supported(p)]
        return [p for p in files if _supported(p)]
    if not path.exists():
        raise IngestError(f"Cannot ingest '{path}': no such file or folder. Check the path.")
    if not _supported(path):
        raise IngestError(
            f"Cannot ingest '{path}': unsupported file type '{path.suffix or '(none)'}'. "
            f"Supported: {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    return [path]


def _supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_EXTENSIONS


def _read(path: Path, options: _Options) -> Iterator[_Doc]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            yield from _read_csv(path, options)
        elif suffix == ".jsonl":
            yield from _read_jsonl(path, options)
        else:
            text = path.read_text(encoding="utf-8")
            markdown = suffix != ".txt"
            title = (markdown_title(text) if markdown else None) or path.stem
            yield _Doc(text, str(path), title, dict(options.meta), markdown=markdown)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"Cannot ingest '{path}': it is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Convert it to UTF-8 first."
        ) from exc


def _read_csv(path: Path, options: _Options) -> Iterator[_Doc]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if options.text_column not in columns:
            raise IngestError(
                f"Cannot ingest '{path}': it has no column '{options.text_column}'. "
                f"Columns: {', '.join(columns) or '(none)'}. Name the text column with "
                "--text-column (text_column=...)."
            )
        for row in reader:
            line = reader.line_num
            if None in row:  # DictReader files surplus fields under the key None
                raise IngestError(
                    f"Cannot ingest '{path}': line {line} has more fields than the header "
                    f"({len(columns)}). Quote values that contain commas."
                )
            values = {k: v for k, v in row.items() if v is not None}
            yield _row_doc(path, values, options, {"line": line})


def _read_jsonl(path: Path, options: _Options) -> Iterator[_Doc]:
    with path.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise IngestError(
                    f"Cannot ingest '{path}': line {line} is not valid JSON ({exc.msg}, "
                    f"column {exc.colno}). Each line must be one JSON object."
                ) from exc
            if not isinstance(record, dict):
                raise IngestError(
                    f"Cannot ingest '{path}': line {line} is a JSON {type(record).__name__}, "
                    "not an object. Each line must be one JSON object."
                )
            if not isinstance(record.get(options.text_column), str):
                raise IngestError(
                    f"Cannot ingest '{path}': line {line} has no string field "
                    f"'{options.text_column}'. Fields: {', '.join(record) or '(none)'}. "
                    "Name the text field with --text-column (text_column=...)."
                )
            yield _row_doc(path, record, options, {"line": line})


def _row_doc(path: Path, values: dict[str, Any], options: _Options, where: dict[str, Any]) -> _Doc:
    text = values.pop(options.text_column)
    title = values.pop(options.title_column, None)
    title = str(title) if title not in (None, "") else _title_from(text)
    return _Doc(text, str(path), title, {**options.meta, **values}, chunk_meta=where)


def _title_from(text: str) -> str:
    """A title from the start of the text: its first line, cut between words if long."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= TITLE_CHARS:
        return first
    cut = first.rfind(" ", 0, TITLE_CHARS - 3)
    return first[: cut if cut > 0 else TITLE_CHARS - 3] + "..."


class _Writer:
    """Redacts, dedupes, chunks and embeds documents, and writes them in batches."""

    def __init__(
        self,
        session: Session,
        embedder: Embedder,
        report: IngestReport,
        chunk_chars: int,
        overlap: int,
        batch_size: int,
    ) -> None:
        chunk_text("", max_chars=chunk_chars, overlap=overlap)  # validate the sizes up front
        self.session = session
        self.embedder = embedder
        self.report = report
        self.chunk_chars = chunk_chars
        self.overlap = overlap
        self.batch_size = max(1, batch_size)
        self.redactor = redactor_for(session)
        self.pending: dict[str, Document] = {}  # content hash -> document not yet written
        self.pending_chunks = 0

    def add(self, doc: _Doc, *, flush: bool = False) -> int | None:
        """Queue one document; with ``flush``, write the queue and return the document's id."""
        text = self.redactor.text(doc.text).strip()
        if not text:
            self.report.empty += 1
            return None
        title = self.redactor.text(doc.title)
        meta = self.redactor.json(doc.meta)
        digest = _content_hash(text, title, meta)
        if digest in self.pending:
            self.report.duplicates += 1
        else:
            self.pending[digest] = self._document(doc, text, title, meta, digest)
            self.pending_chunks += len(self.pending[digest].chunks)
        if flush:
            return self.flush()[digest]
        if self.pending_chunks >= self.batch_size:
            self.flush()
        return None

    def _document(
        self, doc: _Doc, text: str, title: str, meta: dict[str, Any], digest: str
    ) -> Document:
        if doc.markdown:
            pieces = chunk_markdown(text, max_chars=self.chunk_chars, overlap=self.overlap)
            chunks = [(chunk, {"section": heading} if heading else {}) for chunk, heading in pieces]
        else:
            pieces_ = chunk_text(text, max_chars=self.chunk_chars, overlap=self.overlap)
            chunks = [(chunk, {}) for chunk in pieces_]
        return Document(
            source=doc.source,
            title=title,
            content_hash=digest,
            meta=meta,
            created_at=time.time(),
            chunks=[
                Chunk(ordinal=i, text=chunk, meta={**doc.chunk_meta, **chunk_meta})
                for i, (chunk, chunk_meta) in enumerate(chunks)
            ],
        )

    def flush(self) -> dict[str, int]:
        """Write the queued documents that are not stored yet, with their embeddings.

        Returns:
            The id of every queued document by content hash, stored before or just now.
        """
        if not self.pending:
            return {}
        ids = dict(
            self.session.execute(
                select(Document.content_hash, Document.id).where(
                    Document.content_hash.in_(list(self.pending))
                )
            ).all()
        )
        new = [doc for digest, doc in self.pending.items() if digest not in ids]
        chunks = [chunk for doc in new for chunk in doc.chunks]
        vectors = _embed(self.embedder, [chunk.text for chunk in chunks])
        for chunk, vector in zip(chunks, vectors, strict=True):
            chunk.embedding = _blob(vector)
            chunk.embedder = self.embedder.name
        self.session.add_all(new)
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise IngestError(
                "Another writer stored some of the same documents while this ingest ran "
                f"({exc.orig}). Roll back and run the ingest again: documents already stored "
                "are skipped."
            ) from exc
        self.report.duplicates += len(ids)
        self.report.documents_added += len(new)
        self.report.chunks_added += len(chunks)
        ids.update((doc.content_hash, doc.id) for doc in new)
        self.pending = {}
        self.pending_chunks = 0
        return ids


def _content_hash(text: str, title: str, meta: Any) -> str:
    payload = json.dumps([text, title, meta], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
