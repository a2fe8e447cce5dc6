"""A catalog of titles: typed attributes in SQLite for hard filters, descriptions in a KnowledgeStore for retrieval.

`Catalog` is read-only once built (files.py keeps the on-disk generations; db.py the SQL). The shipped Netflix
subset (`default_catalog`) is built once per embedder into `<home>/catalogs/<hash>/`. Import the catalog API from
`agentdistill.memory.catalog`; the planner's tools over a catalog are `agentdistill.tools.catalog.make_catalog_tools`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import agentdistill.memory.catalog.db as catalog_db
import agentdistill.memory.catalog.files as catalog_files
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory.catalog.files import CatalogNotFound, CorruptCatalog
from agentdistill.memory.catalog.importer import import_catalog
from agentdistill.memory.catalog.items import CatalogItem, CatalogQuery, Vocabulary, key
from agentdistill.memory.embedders import Embedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.knowledge_bases import open_store
from agentdistill.memory.store_files import EmbedderMismatch

_TITLE_CUTOFF = 0.8  # difflib ratio for a fuzzy title match: 'Stranger Thing' finds it, 'Strangers' does not


class CatalogEmbedderMismatch(StoreError):
    def __init__(self, directory: Path, built_with: str, given: str) -> None:
        super().__init__(
            f"catalog {directory} was embedded with {built_with!r}, but {given!r} was passed: their vectors are not "
            "comparable. Pass the embedder that built it (or none, to use the recorded one), or rebuild the catalog."
        )


class CatalogItemNotFound(AgentDistillError):
    def __init__(self, item_id: str, suggestions: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"no catalog item with id {item_id!r}.{hint}")
        self.item_id, self.suggestions = item_id, list(suggestions)


class Catalog:
    """Open with `Catalog.open` or make with `Catalog.build`; read-only and safe to share between threads."""

    def __init__(
        self, directory: Path, generation: Path, db: sqlite3.Connection, kb: KnowledgeStore, manifest: dict[str, Any]
    ) -> None:
        self.directory, self.generation = directory, generation
        self._db, self._kb, self._lock, self._manifest = db, kb, threading.Lock(), manifest
        self._titles: list[tuple[str, str, str]] | None = None  # (id, title, normalized title), built on first use
        self._vocabulary: Vocabulary | None = None
        self._decoded: dict[int, CatalogItem] = {}  # seq -> item: decoding and validating JSON dominates a filter

    @classmethod
    def build(cls, directory: Path, items: Sequence[CatalogItem], embedder: Embedder) -> Catalog:
        """Write `items` as a new generation of the catalog in `directory` (replacing any older one) and open it."""
        directory = Path(directory)
        with catalog_files.locked(directory):
            catalog_files.write_generation(directory, items, embedder)
        return cls.open(directory, embedder)

    @classmethod
    def open(cls, directory: Path, embedder: Embedder | None = None) -> Catalog:
        """Open the live generation; `embedder=None` loads the recorded one on the first `retrieve`."""
        directory = Path(directory)
        current = directory / catalog_files.CURRENT
        if not current.is_file():
            raise CatalogNotFound(directory)
        name = current.read_text(encoding="utf-8").strip()
        generation = directory / name
        if not catalog_files.GEN.fullmatch(name) or not generation.is_dir():
            raise CorruptCatalog(current, f"names {name!r}, which is not a generation directory here")
        manifest = catalog_files.read_manifest(generation / catalog_files.MANIFEST)
        db_path = generation / catalog_files.DB_FILE
        if not db_path.is_file():
            raise CorruptCatalog(db_path, "the file is missing")
        db = catalog_db.open_readonly(db_path)
        try:
            items = catalog_db.count(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise CorruptCatalog(db_path, f"SQLite cannot read it ({exc})") from exc
        if items != manifest["items"]:
            db.close()
            raise CorruptCatalog(db_path, f"holds {items} items, the manifest says {manifest['items']}")
        try:
            kb = open_store(catalog_files.KB_NAME, generation / catalog_files.KB_DIR, embedder=embedder)
        except EmbedderMismatch as exc:
            db.close()
            raise CatalogEmbedderMismatch(directory, manifest["embedder"]["name"], exc.given) from exc
        except StoreError as exc:
            db.close()
            raise CorruptCatalog(generation / catalog_files.KB_DIR, str(exc)) from exc
        if len(kb) != items:
            db.close()
            raise CorruptCatalog(generation / catalog_files.KB_DIR, f"holds {len(kb)} descriptions for {items} items")
        return cls(directory, generation, db, kb, manifest)

    def close(self) -> None:
        self._db.close()
        self._kb.close()

    def __len__(self) -> int:
        return int(self._manifest["items"])

    def __iter__(self) -> Iterator[CatalogItem]:
        return iter(self.items())

    def items(self) -> list[CatalogItem]:
        """Every item, in catalog order (the order they were built from)."""
        return self.filter(CatalogQuery())

    def get(self, item_id: str) -> CatalogItem:
        """The item with this id; a miss suggests close ids (and the id of an item titled like `item_id`)."""
        found = self.get_many([item_id])
        if found:
            return found[0]
        raise CatalogItemNotFound(item_id, self.suggest_ids(item_id))

    def get_many(self, ids: Sequence[str]) -> list[CatalogItem]:
        """The items with these ids in the order given; unknown ids are skipped (see `suggest_ids`)."""
        with self._lock:
            found = catalog_db.by_ids(self._db, list(ids))
        return self._decode([found[i] for i in dict.fromkeys(ids) if i in found])

    def suggest_ids(self, item_id: str) -> list[str]:
        """Close ids, then the id of a title matching `item_id` (models often pass a title where an id belongs)."""
        titles = self._title_index()
        guesses = difflib.get_close_matches(item_id, [t[0] for t in titles], n=3, cutoff=0.5)  # ids are short
        titled = self.find_title(item_id)
        return ([titled.id] if titled and titled.id not in guesses else []) + guesses

    def find_title(self, title: str) -> CatalogItem | None:
        """Exact title (case-insensitive), then ignoring punctuation and a leading article, then fuzzy; else None."""
        if not title.strip():
            return None
        with self._lock:
            exact = catalog_db.by_title_key(self._db, key(title))
        if exact is not None:
            return self._decode([exact])[0]
        titles = self._title_index()
        wanted = _normal_title(title)
        match = next((t[0] for t in titles if t[2] == wanted), None)
        if match is None:
            close = difflib.get_close_matches(wanted, [t[2] for t in titles], n=1, cutoff=_TITLE_CUTOFF)
            match = next((t[0] for t in titles if close and t[2] == close[0]), None)
        return self.get_many([match])[0] if match is not None else None

    def filter(self, query: CatalogQuery, *, limit: int | None = None) -> list[CatalogItem]:
        """Items meeting every constraint of `query`, in catalog order; exactly those `query.violations` passes."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        with self._lock:
            rows = catalog_db.select(self._db, query, limit)
        return self._decode(rows)

    def retrieve(
        self, text: str, *, k: int = 20, among: Collection[str] | None = None
    ) -> list[tuple[CatalogItem, float]]:
        """The k items whose description is closest in meaning to `text` (cosine, best first), optionally only
        among the given ids. Blank text or an empty `among` retrieves nothing."""
        if not text.strip() or k < 1:
            return []
        filters = None
        if among is not None:
            ids = list(dict.fromkeys(among))
            if not ids:
                return []
            filters = {"id": ids}
        hits = self._kb.search(text, k=k, filters=filters)
        items = {item.id: item for item in self.get_many([h.metadata["doc_id"] for h in hits])}
        return [(items[h.metadata["doc_id"]], h.score) for h in hits if h.metadata["doc_id"] in items]

    def vocabulary(self) -> Vocabulary:
        """Types, genres, countries and ratings present in the catalog (one spelling each, sorted)."""
        if self._vocabulary is None:
            with self._lock:
                values = {a: catalog_db.distinct(self._db, a) for a in ("type", "genres", "countries", "rating")}
            spelled = {a: sorted({key(v): v for v in reversed(vs)}.values(), key=key) for a, vs in values.items()}
            self._vocabulary = Vocabulary(
                types=tuple(spelled["type"]),
                genres=tuple(spelled["genres"]),
                countries=tuple(spelled["countries"]),
                ratings=tuple(spelled["rating"]),
            )
        return self._vocabulary

    @property
    def embedder_name(self) -> str:
        return str(self._manifest["embedder"]["name"])

    def info(self) -> dict[str, Any]:
        """What `catalog info` shows: where it is, what it holds, how it was embedded."""
        with self._lock:
            kinds = dict(self._db.execute("SELECT json_extract(data, '$.type'), COUNT(*) FROM items GROUP BY 1"))
            low, high = self._db.execute("SELECT MIN(release_year), MAX(release_year) FROM items").fetchone()
        vocabulary = self.vocabulary()
        return {
            "directory": str(self.directory),
            "generation": self.generation.name,
            "items": len(self),
            "by_type": kinds,
            "years": [low, high],
            "genres": len(vocabulary.genres),
            "countries": len(vocabulary.countries),
            "ratings": list(vocabulary.ratings),
            "embedder": self._manifest["embedder"]["name"],
            "embedder_spec": self._manifest["embedder"]["spec"],
            "content_sha256": self._manifest["content_sha256"],
            "built": self._manifest["built"],
        }

    def _decode(self, rows: Sequence[catalog_db.Row]) -> list[CatalogItem]:
        out = []
        for seq, data in rows:
            found = self._decoded.get(seq)
            if found is None:
                found = self._decoded[seq] = catalog_db.decode(data)  # read-only catalog: the cache never goes stale
            out.append(found)
        return out

    def _title_index(self) -> list[tuple[str, str, str]]:
        if self._titles is None:
            with self._lock:
                rows = catalog_db.titles(self._db)
            self._titles = [(i, t, _normal_title(t)) for i, t in rows]  # immutable catalog: computing twice is harmless
        return self._titles


def packaged_catalog_path() -> Path:
    """The shipped Netflix subset (CC0; see NETFLIX_CATALOG_LICENSE.md), one CatalogItem.to_dict() per line."""
    return Path(str(resources.files("agentdistill") / "data" / "netflix_catalog.jsonl"))


def load_items(path: Path) -> list[CatalogItem]:
    """Items from a JSONL file in CatalogItem.to_dict() form (the packaged catalog's format)."""
    return import_catalog(path)


def default_catalog(home: Path, embedder: Embedder) -> Catalog:
    """The shipped Netflix subset, built on first use into `<home>/catalogs/<hash>/` and reopened after that.

    The hash covers the packaged file, the embedder and the on-disk format, so a new package version or another
    embedder gets its own directory instead of stale vectors. Concurrent first uses build it once (file lock).
    """
    source = packaged_catalog_path()
    digest = hashlib.sha256(source.read_bytes())
    digest.update(f"\0{embedder.name}\0{embedder.dim}\0{catalog_files.FORMAT_VERSION}".encode())
    directory = Path(home) / "catalogs" / f"netflix-{digest.hexdigest()[:16]}"
    with catalog_files.locked(directory):
        try:
            return Catalog.open(directory, embedder)
        except (CatalogNotFound, CorruptCatalog):
            catalog_files.write_generation(directory, load_items(source), embedder)
    return Catalog.open(directory, embedder)


def _normal_title(title: str) -> str:
    words = re.sub(r"[^\w]+", " ", key(title)).split()
    if len(words) > 1 and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)
