"""The SQLite side of a knowledge store: documents (text once, metadata as JSON) and chunks as spans into them.

A chunk's integer `vid` is its FAISS id, so a search result maps back to its row with one indexed lookup. Id lists
go in as one JSON array (`json_each`), which avoids SQLite's limit on bound parameters.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agentdistill.errors import AgentDistillError
from agentdistill.memory.documents import Document

SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX documents_title ON documents (title COLLATE NOCASE);
CREATE TABLE chunks (vid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
                     n INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX chunks_doc ON chunks (doc_id);
"""
# vid, chunk_id, doc_id, title, chunk text, metadata JSON
CHUNK_SQL = (
    "SELECT c.vid, c.chunk_id, d.doc_id, d.title, substr(d.text, c.start + 1, c.end - c.start), d.metadata "
    "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id"
)
_IN_JSON = "IN (SELECT value FROM json_each(?))"
ChunkRow = tuple[int, str, str, str, str, str]
Piece = tuple[Document, int, int, int]  # document, chunk number, start, end (character offsets)


class InvalidFilter(AgentDistillError):
    """A search filter names a field or value the store cannot match."""


def new_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def existing_ids(db: sqlite3.Connection, ids: Sequence[str]) -> list[str]:
    return [r[0] for r in db.execute(f"SELECT doc_id FROM documents WHERE doc_id {_IN_JSON}", (json.dumps(list(ids)),))]


def delete_documents(db: sqlite3.Connection, ids: Sequence[str]) -> np.ndarray:
    """Delete documents and their chunks; returns the vids to remove from the index."""
    if not ids:
        return np.zeros(0, dtype=np.int64)
    arg = (json.dumps(list(ids)),)
    vids = [r[0] for r in db.execute(f"SELECT vid FROM chunks WHERE doc_id {_IN_JSON}", arg)]
    db.execute(f"DELETE FROM chunks WHERE doc_id {_IN_JSON}", arg)
    db.execute(f"DELETE FROM documents WHERE doc_id {_IN_JSON}", arg)
    return np.asarray(vids, dtype=np.int64)


def insert(db: sqlite3.Connection, docs: Sequence[Document], pieces: Sequence[Piece]) -> np.ndarray:
    """Insert documents and chunks; returns the new chunks' vids, in `pieces` order."""
    (first,) = db.execute("SELECT COALESCE(MAX(vid), -1) + 1 FROM chunks").fetchone()
    vids = np.arange(first, first + len(pieces), dtype=np.int64)
    db.executemany(
        "INSERT INTO documents VALUES (?, ?, ?, ?)",
        [(d.id, d.title, d.text, json.dumps(dict(d.metadata), ensure_ascii=False, sort_keys=True)) for d in docs],
    )
    db.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
        [(int(v), f"{d.id}#{n}", d.id, n, s, e) for v, (d, n, s, e) in zip(vids, pieces, strict=True)],
    )
    return vids


def filter_sql(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL over documents `d` for field == value (a list/tuple/set means any of); id and title are columns."""
    clauses, params = [], []
    for name, value in filters.items():
        if not isinstance(name, str) or not name or '"' in name:
            raise InvalidFilter(f"filter field {name!r} is not a valid metadata key")
        column = {"id": "d.doc_id", "doc_id": "d.doc_id", "title": "d.title"}.get(name)
        if column is None:
            column, params = "json_extract(d.metadata, ?)", [*params, f'$."{name}"']
        if value is None:
            clauses.append(f"{column} IS NULL")
        elif isinstance(value, list | tuple | set | frozenset):
            clauses.append(f"{column} {_IN_JSON}")
            params.append(json.dumps([_sql_value(v) for v in value]))
        else:
            clauses.append(f"{column} = ?")
            params.append(_sql_value(value))
    return (" AND ".join(clauses) or "1"), params


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)  # json_extract gives 1/0 for true/false
    if isinstance(value, str | int | float):
        return value
    raise InvalidFilter(f"filter value {value!r}: use a string, number, boolean, null, or a list of those")


def matching_vids(db: sqlite3.Connection, where: str, params: Sequence[Any], limit: int) -> np.ndarray:
    sql = f"SELECT c.vid FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE {where} LIMIT ?"
    return np.asarray([r[0] for r in db.execute(sql, (*params, limit))], dtype=np.int64)


def chunk_rows(db: sqlite3.Connection, vids: Sequence[int], where: str, params: Sequence[Any]) -> dict[int, ChunkRow]:
    """Rows of the given vids that pass the filter, keyed by vid."""
    sql = f"{CHUNK_SQL} WHERE c.vid {_IN_JSON} AND {where}"
    return {r[0]: r for r in db.execute(sql, (json.dumps(list(vids)), *params))}


def get_document(db: sqlite3.Connection, key: str) -> Document | None:
    """A document by id, or a chunk by `docid#n` (as a Document whose metadata carries doc_id)."""
    row = db.execute("SELECT doc_id, title, text, metadata FROM documents WHERE doc_id = ?", (key,)).fetchone()
    if row:
        return Document(row[0], row[1], row[2], json.loads(row[3]))
    chunk = db.execute(f"{CHUNK_SQL} WHERE c.chunk_id = ?", (key,)).fetchone()
    if chunk:
        return Document(chunk[1], chunk[3], chunk[4], {**json.loads(chunk[5]), "doc_id": chunk[2]})
    return None


def id_by_title(db: sqlite3.Connection, title: str) -> str | None:
    """Case-insensitive; the smallest id wins when titles repeat."""
    title = title.strip()
    sql = "SELECT doc_id FROM documents WHERE title = ? COLLATE NOCASE ORDER BY doc_id LIMIT 1"
    row = db.execute(sql, (title,)).fetchone()
    if row:
        return row[0]
    want = title.casefold()  # SQLite's NOCASE folds ASCII only
    rows = db.execute("SELECT doc_id, title FROM documents ORDER BY doc_id")
    return next((r[0] for r in rows if r[1].casefold() == want), None)


def close_titles(db: sqlite3.Connection, title: str) -> list[str]:
    lowered = {r[0].lower(): r[0] for r in db.execute("SELECT DISTINCT title FROM documents")}
    return [lowered[c] for c in difflib.get_close_matches(title.lower(), list(lowered), n=3, cutoff=0.6)]


def close_ids(db: sqlite3.Connection, key: str) -> list[str]:
    ids = [r[0] for r in db.execute("SELECT doc_id FROM documents")]
    return difflib.get_close_matches(key.partition("#")[0], ids, n=3, cutoff=0.6)


def count(db: sqlite3.Connection, table: str) -> int:
    if table not in ("documents", "chunks"):
        raise ValueError(f"unknown table {table!r}")
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
