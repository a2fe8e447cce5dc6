"""The catalog's SQLite side: schema, bulk insert, and `CatalogQuery` -> parameterized SQL.

Every value reaches SQLite as a `?` parameter; a list travels as one JSON text parameter read back with
`json_each`, so there is no parameter limit and no string building from user text. The only SQL text that
varies is chosen from fixed fragments keyed by field name. String comparisons use `key` columns computed in
Python by the same `key()` the predicate uses, so SQL and `CatalogQuery.violations` agree exactly (SQLite's
own lower() only folds ASCII).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentdistill.memory.catalog.items import CatalogItem, CatalogQuery, key

SCHEMA = """
CREATE TABLE items (
    seq INTEGER PRIMARY KEY,          -- catalog order: filter results come back in it
    id TEXT NOT NULL UNIQUE,
    type_key TEXT NOT NULL,
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    release_year INTEGER NOT NULL,
    rating_key TEXT NOT NULL,
    duration_min INTEGER,
    seasons INTEGER,
    data TEXT NOT NULL                -- the whole item as JSON (CatalogItem.to_dict)
);
CREATE INDEX items_title ON items(title_key);
CREATE TABLE item_genres (item_seq INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (key, item_seq));
CREATE TABLE item_countries (item_seq INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (key, item_seq));
CREATE TABLE item_people (item_seq INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (key, item_seq));
"""

_IN = "IN (SELECT value FROM json_each(?))"
_HAS = "EXISTS (SELECT 1 FROM {table} j WHERE j.item_seq = items.seq AND j.key " + _IN + ")"
_HAS_NOT = "NOT " + _HAS

# field -> (SQL fragment with one `?`, how the value becomes the parameter); the keys are fixed, never user text
_FRAGMENTS: dict[str, tuple[str, str]] = {
    "types": (f"items.type_key {_IN}", "keys"),
    "genres": (_HAS.format(table="item_genres"), "keys"),
    "exclude_genres": (_HAS_NOT.format(table="item_genres"), "keys"),
    "year_min": ("items.release_year >= ?", "int"),
    "year_max": ("items.release_year <= ?", "int"),
    "duration_min": ("(items.duration_min IS NULL OR items.duration_min >= ?)", "int"),
    "duration_max": ("(items.duration_min IS NULL OR items.duration_min <= ?)", "int"),
    "seasons_max": ("(items.seasons IS NULL OR items.seasons <= ?)", "int"),
    "countries": (_HAS.format(table="item_countries"), "keys"),
    "exclude_countries": (_HAS_NOT.format(table="item_countries"), "keys"),
    "ratings": (f"items.rating_key {_IN}", "keys"),
    "exclude_ratings": (f"items.rating_key NOT {_IN}", "keys"),
    "people": (_HAS.format(table="item_people"), "keys"),
    "exclude_people": (_HAS_NOT.format(table="item_people"), "keys"),
    "exclude_ids": (f"items.id NOT {_IN}", "exact"),
}


def create(path: Path, items: Sequence[CatalogItem]) -> None:
    """Write a new database file holding `items` (the caller writes into a fresh generation directory)."""
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        with db:
            db.executemany(
                "INSERT INTO items (seq, id, type_key, title, title_key, release_year, rating_key, duration_min,"
                " seasons, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        seq,
                        it.id,
                        key(it.type),
                        it.title,
                        key(it.title),
                        it.release_year,
                        key(it.rating),
                        it.duration_min,
                        it.seasons,
                        json.dumps(it.to_dict(), ensure_ascii=False),
                    )
                    for seq, it in enumerate(items)
                ),
            )
            for table, values in (("item_genres", "genres"), ("item_countries", "countries"), ("item_people", "")):
                db.executemany(
                    f"INSERT OR IGNORE INTO {table} (item_seq, key) VALUES (?, ?)",  # table names are the fixed ones
                    _keyed(items, values),
                )
    finally:
        db.close()


def _keyed(items: Sequence[CatalogItem], attribute: str) -> Iterable[tuple[int, str]]:
    for seq, item in enumerate(items):
        values = getattr(item, attribute) if attribute else item.people
        for value in values:
            yield seq, key(value)


def open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only and shareable across threads: graphs and the bench runner query from worker threads."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def where(query: CatalogQuery) -> tuple[str, list[Any]]:
    """(`WHERE` body, parameters) for `query`; '1' when it constrains nothing."""
    clauses: list[str] = []
    params: list[Any] = []
    for name in query.constrained_fields():
        fragment, kind = _FRAGMENTS[name]
        value = getattr(query, name)
        clauses.append(fragment)
        if kind == "int":
            params.append(int(value))
        elif kind == "keys":
            params.append(json.dumps(sorted({key(v) for v in value}), ensure_ascii=False))
        else:
            params.append(json.dumps(list(value), ensure_ascii=False))
    return (" AND ".join(clauses) or "1"), params


Row = tuple[int, str]  # (seq, item JSON): the catalog decodes (and caches) items, this module only selects them


def select(db: sqlite3.Connection, query: CatalogQuery, limit: int | None) -> list[Row]:
    body, params = where(query)
    sql = f"SELECT seq, data FROM items WHERE {body} ORDER BY seq"
    if limit is not None:
        sql, params = sql + " LIMIT ?", [*params, limit]
    return db.execute(sql, params).fetchall()


def by_ids(db: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Row]:
    rows = db.execute(f"SELECT id, seq, data FROM items WHERE id {_IN}", (json.dumps(list(ids)),))
    return {r[0]: (r[1], r[2]) for r in rows}


def by_title_key(db: sqlite3.Connection, title_key: str) -> Row | None:
    return db.execute("SELECT seq, data FROM items WHERE title_key = ? ORDER BY seq LIMIT 1", (title_key,)).fetchone()


def titles(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(id, title) of every item in catalog order, for fuzzy matching."""
    return [(r[0], r[1]) for r in db.execute("SELECT id, title FROM items ORDER BY seq")]


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])


def distinct(db: sqlite3.Connection, attribute: str) -> list[str]:
    """Distinct original spellings of a scalar or list attribute, read from the stored JSON."""
    if attribute not in ("type", "rating", "genres", "countries"):
        raise ValueError(f"no vocabulary for item attribute {attribute!r}")
    if attribute in ("type", "rating"):
        sql = f"SELECT DISTINCT json_extract(data, '$.{attribute}') FROM items"  # attribute is one of two literals
    else:
        sql = f"SELECT DISTINCT j.value FROM items, json_each(items.data, '$.{attribute}') j"  # genres | countries
    return [r[0] for r in db.execute(sql) if r[0]]


def decode(data: str) -> CatalogItem:
    return CatalogItem.from_dict(json.loads(data))
