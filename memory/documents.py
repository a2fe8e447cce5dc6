"""Documents for the knowledge store: read them from JSONL or a folder of .txt/.md files, and cut them into chunks.

Input errors name the file, the line and the field, because a knowledge base is usually a file someone generated and
has to fix by hand. Chunks are character spans into the document text, so the store keeps each text once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.errors import AgentDistillError, InputDataError
from agentdistill.jsonl import json_value, text_lines

TEXT_SUFFIXES = (".txt", ".md")
_WORD = re.compile(r"\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


class DocumentSourceError(AgentDistillError):
    """A document source path is missing or holds no documents."""


@dataclass(frozen=True)
class Document:
    """One knowledge-base entry; every key besides id/title/text is metadata that search filters can match."""

    id: str
    title: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.metadata, "id": self.id, "title": self.title, "text": self.text}


def as_document(item: Document | Mapping[str, Any], *, source: str = "<input>", line: int = 0) -> Document:
    """Validate a mapping with id/title/text (other keys become metadata); `source:line` goes into the error."""
    if isinstance(item, Document):
        item = item.to_dict()
    if not isinstance(item, Mapping):
        raise InputDataError(source, line, f"expected a JSON object, got {type(item).__name__}")
    for key in ("id", "title", "text"):
        if key not in item:
            raise InputDataError(source, line, "is missing (every document needs id, title and text)", field=key)
    doc_id, title, text = item["id"], item["title"], item["text"]
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    for key, value in (("id", doc_id), ("title", title), ("text", text)):
        if not isinstance(value, str):
            raise InputDataError(source, line, f"must be a string, got {type(value).__name__}", field=key)
        if not value.strip():
            raise InputDataError(source, line, "is empty", field=key)
    if "#" in doc_id:
        raise InputDataError(source, line, f"{doc_id!r} contains '#', which separates chunk numbers", field="id")
    metadata = {k: v for k, v in item.items() if k not in ("id", "title", "text")}
    return Document(id=doc_id, title=title.strip(), text=text, metadata=metadata)


def read_jsonl(path: str | Path) -> Iterator[Document]:
    """One JSON object per line; a blank or broken line is an error, not something to skip silently."""
    path = Path(path)
    for number, raw in text_lines(path):
        if not raw.strip():
            raise InputDataError(path, number, "empty line: expected a JSON object with id, title and text")
        yield as_document(json_value(raw, path, number), source=str(path), line=number)


def read_folder(folder: str | Path) -> Iterator[Document]:
    """Every .txt/.md file below `folder`: id = relative path without suffix, title = first heading or file stem,
    metadata `path` (relative) and `source` (the first subfolder, or the folder's own name for files directly in
    it), so `--filter source=wiki` picks the files under wiki/."""
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputDataError(path, 1, f"not UTF-8 text ({exc.reason})", field="text") from exc
        heading = _HEADING.search(text) if path.suffix.lower() == ".md" else None
        item = {
            "id": relative.with_suffix("").as_posix(),
            "title": heading.group(1) if heading else path.stem,
            "text": text,
            "path": relative.as_posix(),
            "source": relative.parts[0] if len(relative.parts) > 1 else folder.resolve().name,
        }
        yield as_document(item, source=str(path), line=1)


def load_documents(source: str | Path) -> list[Document]:
    """A JSONL file or a folder of text files; duplicate ids are an error naming both places."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DocumentSourceError(f"{path} does not exist: pass a JSONL file or a folder of .txt/.md files")
    docs = list(read_folder(path) if path.is_dir() else read_jsonl(path))
    if not docs:
        kind = "no .txt or .md files" if path.is_dir() else "no lines"
        raise DocumentSourceError(f"{path} has {kind}: nothing to index")
    seen: dict[str, int] = {}
    for number, doc in enumerate(docs, start=1):
        if doc.id in seen:
            where = "document" if path.is_dir() else "line"
            raise InputDataError(path, number, f"duplicate id {doc.id!r} (first at {where} {seen[doc.id]})", field="id")
        seen[doc.id] = number
    return docs


def chunk_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of `size` words, each starting `size - overlap` words after the previous one.

    Spans keep the original whitespace, and the last window always reaches the end of the text.
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not words:
        return [(0, len(text))]
    step = size - overlap
    spans = []
    for first in range(0, len(words), step):
        last = min(first + size, len(words)) - 1
        spans.append((words[first][0], words[last][1]))
        if last == len(words) - 1:
            break
    return spans
