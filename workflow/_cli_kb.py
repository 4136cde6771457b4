"""``taskloom kb``: ingest documents into the knowledge base and search them.

    taskloom kb ingest PATH... [--url URL] [--text-column C] [--title-column C]
                               [--meta KEY=VALUE]... [--chunk-chars N] [--embedder minilm|hash]
    taskloom kb search QUERY [--url URL] [--k N] [--filter KEY=VALUE]... [--alpha A]
                             [--embedder minilm|hash] [--json]

``--url`` defaults to ``TASKLOOM_DATABASE_URL``, else ``sqlite:///taskloom.db``. Search with
the embedder the documents were ingested with. ``KEY=VALUE`` gives a string; ``KEY:=JSON``
gives a JSON value (``year:=2024``, ``vip:=true``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowledge import (
    Database,
    Embedder,
    HashEmbedder,
    IngestReport,
    MiniLMEmbedder,
    ingest_path,
    search,
)

__all__ = ["add_kb_commands"]

EMBEDDERS = ("minilm", "hash")
SNIPPET = 160  # characters of each hit's text printed by ``kb search``


def add_kb_commands(commands: Any) -> None:
    """Register ``taskloom kb ingest`` and ``taskloom kb search`` on the subparsers."""
    kb = commands.add_parser("kb", help="ingest documents and search them")
    sub = kb.add_subparsers(required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="ingest .txt, .md, .csv and .jsonl files or folders")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _common(ingest)
    ingest.add_argument("--text-column", default="text", help="CSV column / JSONL field of text")
    ingest.add_argument("--title-column", default="title", help="CSV column / JSONL field")
    ingest.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="meta for every doc"
    )
    ingest.add_argument("--chunk-chars", type=int, default=800, help="longest chunk")
    ingest.set_defaults(handler=_ingest)

    find = sub.add_parser("search", help="hybrid full-text and vector search")
    find.add_argument("query")
    _common(find)
    find.add_argument("--k", type=int, default=5, help="number of hits (default 5)")
    find.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="meta equality"
    )
    find.add_argument(
        "--alpha", type=float, default=0.5, help="vector weight, 0 (full text) to 1 (vector)"
    )
    find.set_defaults(handler=_search)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="database URL")
    parser.add_argument(
        "--embedder", choices=EMBEDDERS, default="minilm", help="embedding model (minilm)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


class _UsageError(ValueError):
    """A malformed option value: reported with exit status 2."""


def _embedder(name: str) -> Embedder:
    return HashEmbedder() if name == "hash" else MiniLMEmbedder()


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` (a string) and ``KEY:=JSON`` options."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.rstrip(":"):
            raise _UsageError(
                f"{option} {item!r} is not KEY=VALUE (or KEY:=JSON for a number or boolean)."
            )
        if key.endswith(":"):
            try:
                out[key[:-1]] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _UsageError(
                    f"{option} {item!r}: the value after ':=' is not JSON ({exc.msg})."
                ) from exc
        else:
            out[key] = value
    return out


def _ingest(args: argparse.Namespace) -> int:
    try:
        meta = _pairs(args.meta, "--meta")
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    embedder = _embedder(args.embedder)
    reports: list[IngestReport] = []
    with Database(args.url) as db, db.transaction() as session:  # all files or none
        for path in args.paths:
            reports.append(
                ingest_path(
                    session,
                    path,
                    embedder,
                    text_column=args.text_column,
                    title_column=args.title_column,
                    meta=meta,
                    chunk_chars=args.chunk_chars,
                )
            )
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
        return 0
    for report in reports:
        for skipped in report.skipped_files:
            print(f"skipped {skipped} (unsupported file type)")
    added = sum(r.documents_added for r in reports)
    print(
        f"ingested {sum(len(r.files) for r in reports)} files: {added} documents added, "
        f"{sum(r.duplicates for r in reports)} already stored, "
        f"{sum(r.empty for r in reports)} empty; {sum(r.chunks_added for r in reports)} "
        f"chunks embedded with {embedder.name}"
    )
    return 0


def _search(args: argparse.Namespace) -> int:
    try:
        filters = _pairs(args.filter, "--filter")
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    embedder = _embedder(args.embedder)
    with Database(args.url) as db, db.transaction() as session:
        hits = search(session, args.query, embedder, k=args.k, filters=filters, alpha=args.alpha)
    if args.json:
        print(json.dumps([hit.model_dump(mode="json") for hit in hits], indent=2))
        return 0
    if not hits:
        print("no matches")
    for rank, hit in enumerate(hits, start=1):
        section = hit.chunk_meta.get("section")
        where = f"{hit.source} [{section}]" if section else hit.source
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= SNIPPET else snippet[: SNIPPET - 3] + "..."
        print(f"{rank}. {hit.score:.3f}  {hit.title}  ({where})\n   {snippet}")
    return 0
