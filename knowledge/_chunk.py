"""Splitting documents into searchable chunks.

A chunk is a run of whole paragraphs packed up to ``max_chars`` characters. A paragraph longer
than that is cut between words, never inside one (a single word longer than ``max_chars``
becomes a chunk of its own). Each chunk after the first starts with the last ``overlap``
characters of the previous one, cut at a word start, so a sentence that straddles a boundary
can still be found from either side.

Markdown is first split into sections at ATX headings (``#`` to ``######``, outside fenced
code); each section is chunked on its own and its chunks remember the heading.
"""

from __future__ import annotations

import re

__all__ = ["chunk_markdown", "chunk_text", "markdown_title"]

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def chunk_text(text: str, *, max_chars: int = 800, overlap: int = 100) -> list[str]:
    """Split ``text`` into chunks of whole paragraphs, at most ``max_chars`` long.

    Args:
        text: The text; paragraphs are separated by blank lines.
        max_chars: The longest chunk, in characters (a longer single word is kept whole).
        overlap: How many characters of the previous chunk to repeat at the start of the
            next one (0 for none); must be less than half of ``max_chars``.

    Returns:
        The chunks, in order; none for a text with nothing but whitespace.
    """
    if max_chars < 1 or not 0 <= overlap < max_chars / 2:
        raise ValueError(
            f"Chunking needs max_chars >= 1 and 0 <= overlap < max_chars / 2, "
            f"got max_chars={max_chars}, overlap={overlap}."
        )
    # Long paragraphs are cut short enough that the overlap still fits in front of a piece.
    piece_chars = max_chars - overlap - 1 if overlap else max_chars
    pieces = [
        piece
        for paragraph in _PARAGRAPH_BREAK.split(text)
        for piece in _split_long(paragraph.strip(), piece_chars)
    ]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if not current:
            current = piece
        elif len(current) + 2 + len(piece) <= max_chars:
            current = f"{current}\n\n{piece}"
        else:
            chunks.append(current)
            tail = _tail(current, overlap)
            fits = tail and len(tail) + 1 + len(piece) <= max_chars
            current = f"{tail} {piece}" if fits else piece
    if current:
        chunks.append(current)
    return chunks


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    """Cut a paragraph longer than ``max_chars`` between words."""
    if len(paragraph) <= max_chars:
        return [paragraph] if paragraph else []
    pieces: list[str] = []
    current = ""
    for word in paragraph.split():
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _tail(chunk: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``chunk`` or fewer, starting at a word."""
    if overlap <= 0:
        return ""
    if len(chunk) <= overlap:
        return chunk
    tail = chunk[-overlap:]
    if not chunk[-overlap - 1].isspace():  # the cut fell inside a word: drop that word's end
        parts = tail.split(maxsplit=1)
        tail = parts[1] if len(parts) > 1 else ""
    return " ".join(tail.split())


def markdown_title(text: str) -> str | None:
    """The text of the first heading of a Markdown document, if it has one."""
    for heading, _body in _sections(text):
        if heading:
            return heading
    return None


def chunk_markdown(
    text: str, *, max_chars: int = 800, overlap: int = 100
) -> list[tuple[str, str | None]]:
    """Chunk Markdown section by section.

    Args:
        text: The Markdown source.
        max_chars: As for ``chunk_text``.
        overlap: As for ``chunk_text``; it never crosses a heading.

    Returns:
        ``(chunk, heading)`` pairs in order; ``heading`` is the nearest heading above the
        chunk, or None before the first one. A section's first chunk starts with its
        heading's text, so a search for the heading's words finds it.
    """
    out: list[tuple[str, str | None]] = []
    carried = ""  # headings with no body of their own, kept for the next section
    heading: str | None = None
    for heading, body in _sections(text):
        section = "\n\n".join(part for part in (carried, heading or "", body) if part)
        carried = section
        if body:
            carried = ""
            chunks = chunk_text(section, max_chars=max_chars, overlap=overlap)
            out.extend((chunk, heading) for chunk in chunks)
    chunks = chunk_text(carried, max_chars=max_chars, overlap=overlap)
    out.extend((chunk, heading) for chunk in chunks)
    return out


def _sections(text: str) -> list[tuple[str | None, str]]:
    """Split Markdown at ATX headings: ``(heading text, body)`` pairs."""
    sections: list[tuple[str | None, str]] = []
    heading: str | None = None
    lines: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        if heading is not None or any(part.strip() for part in lines):
            sections.append((heading, "\n".join(lines).strip()))
        heading, lines = match.group(2).strip() or None, []
    sections.append((heading, "\n".join(lines).strip()))
    return sections
