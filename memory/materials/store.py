"""A store of Materials Project records: scalar columns in SQLite for exact queries, one summary vector per record
in FAISS for search by meaning.

`MaterialsStore` is read-only once built (files.py keeps the on-disk generations; db.py the SQL; queries.py
reads query arguments). The shipped sample (`default_materials_store`) is built once per embedder into
`<home>/materials/`. Import the API from `agentdistill.memory.materials`.
"""

from __future__ import annotations

import difflib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import agentdistill.memory.materials.db as materials_db
import agentdistill.memory.materials.files as materials_files
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory import vector_index
from agentdistill.memory.catalog.files import locked
from agentdistill.memory.embedders import Embedder, make_embedder
from agentdistill.memory.materials.files import CorruptMaterialsStore, MaterialsStoreNotFound
from agentdistill.memory.materials.queries import (
    check_property_arguments,
    element_symbols,
    property_column,
)
from agentdistill.memory.materials.records import MaterialRecord, load_records, parse_formula, sample_records_path


class MaterialsEmbedderMismatch(StoreError):
    def __init__(self, directory: Path, built_with: str, given: str) -> None:
        super().__init__(
            f"materials store {directory} was embedded with {built_with!r}, but {given!r} was passed: their vectors "
            "are not comparable. Pass the embedder that built it (or none, to use the recorded one), or rebuild it."
        )


class MaterialNotFound(AgentDistillError, LookupError):
    """No record has this id (a LookupError too, so callers that treat every miss alike can catch that)."""

    def __init__(self, material_id: str, suggestions: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"no material with id {material_id!r} in the store.{hint}")
        self.material_id, self.suggestions = material_id, list(suggestions)


class MaterialsStore:
    """Open with `MaterialsStore.open` or make with `MaterialsStore.build`; read-only and safe to share
    between threads. Query results are MaterialRecords."""

    def __init__(
        self,
        directory: Path,
        generation: Path,
        db: sqlite3.Connection,
        index: faiss.Index,
        manifest: dict[str, Any],
        embedder: Embedder | None,
    ) -> None:
        self.directory, self.generation, self.manifest = directory, generation, manifest
        self._db, self._index, self._embedder, self._lock = db, index, embedder, threading.Lock()
        self._decoded: dict[int, MaterialRecord] = {}  # seq -> record; the store never changes, so never stale

    @classmethod
    def build(cls, directory: str | Path, records: Sequence[MaterialRecord], embedder: Embedder) -> MaterialsStore:
        """Write `records` as a new generation in `directory` (replacing any older one, atomically) and open it."""
        directory = Path(directory)
        with locked(directory):
            materials_files.write_generation(directory, records, embedder)
        return cls.open(directory, embedder)

    @classmethod
    def open(cls, directory: str | Path, embedder: Embedder | None = None) -> MaterialsStore:
        """Open the live generation, checking manifest, database and index against each other.

        `embedder=None` recreates the recorded embedder on the first `search`; a given one must match it.
        """
        directory = Path(directory)
        generation = materials_files.live_generation(directory)
        manifest = materials_files.read_manifest(generation / materials_files.MANIFEST)
        recorded = manifest["embedder"]
        if embedder is not None and (embedder.name != recorded.get("name") or embedder.dim != recorded.get("dim")):
            raise MaterialsEmbedderMismatch(directory, str(recorded.get("name")), embedder.name)
        db_path, index_path = generation / materials_files.DB_FILE, generation / materials_files.INDEX_FILE
        for path in (db_path, index_path):
            if not path.is_file():
                raise CorruptMaterialsStore(path, "the file is missing")
        db = materials_db.open_readonly(db_path)
        try:
            records = materials_db.count(db)
            if records != manifest["records"]:
                problem = f"holds {records} records, the manifest says {manifest['records']}"
                raise CorruptMaterialsStore(db_path, problem)
            try:
                index = vector_index.read(index_path)
            except RuntimeError as exc:
                raise CorruptMaterialsStore(index_path, f"FAISS cannot read it ({str(exc).splitlines()[0]})") from exc
            if index.ntotal != records or index.d != recorded.get("dim"):
                raise CorruptMaterialsStore(
                    index_path, f"holds {index.ntotal} vectors of dim {index.d} for {records} records of dim "
                    f"{recorded.get('dim')}",
                )  # fmt: skip
        except sqlite3.DatabaseError as exc:
            db.close()
            raise CorruptMaterialsStore(db_path, f"SQLite cannot read it ({exc})") from exc
        except BaseException:
            db.close()
            raise
        return cls(directory, generation, db, index, manifest, embedder)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MaterialsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.manifest["records"])

    @property
    def embedder_name(self) -> str:
        return str(self.manifest["embedder"]["name"])

    def get(self, material_id: str) -> MaterialRecord:
        """The record with this id; MaterialNotFound names close ids (or the ids of a formula given instead)."""
        found = self._rows(materials_db.by_ids, [material_id.strip()])
        if found:
            return found[0]
        raise MaterialNotFound(material_id, self.suggest_ids(material_id))

    def suggest_ids(self, material_id: str, n: int = 3) -> list[str]:
        """Ids close to `material_id`: first the ids of a formula passed where an id belongs, then similar ids."""
        text = material_id.strip()
        by_formula = [r.material_id for r in self.by_formula(text)][:n] if text else []
        with self._lock:
            ids = materials_db.material_ids(self._db)
        folded = {i.lower(): i for i in ids}
        exact = [folded[t] for t in (text.lower(), f"mp-{text}".lower()) if t in folded]
        close = difflib.get_close_matches(text.lower(), list(folded), n=n, cutoff=0.6)
        return list(dict.fromkeys([*by_formula, *exact, *(folded[c] for c in close)]))[:n]

    def by_formula(self, formula: str) -> list[MaterialRecord]:
        """Records written as `formula`, or with the same reduced formula (polymorphs; "Fe4O6" finds Fe2O3),
        most stable first: energy above hull, then formation energy, then id; missing values last."""
        text = formula.strip()
        try:
            reduced = parse_formula(text).reduced_formula
        except ValueError:
            reduced = None  # not a formula pymatgen reads: only an exact spelling can match
        return self._rows(materials_db.by_formula, text, reduced)

    def by_elements(
        self, elements: str | Sequence[str], *, exact: bool = False, k: int | None = None
    ) -> list[MaterialRecord]:
        """Records containing all of `elements` (symbols, names or "Fe-O"), or with `exact=True` made of exactly
        them; fewest elements first, then by reduced formula, most stable first. InvalidMaterialsQuery for a
        name that is no element."""
        symbols = element_symbols(elements)
        return self._rows(materials_db.by_elements, symbols, exact=exact, limit=k)

    def by_property(
        self,
        name: str,
        min: float | None = None,  # shadows the builtin: these are the names a caller (or a tool call) writes
        max: float | None = None,
        k: int = 20,
        *,
        equals: str | None = None,
        descending: bool = False,
    ) -> list[MaterialRecord]:
        """Up to k records whose property `name` is known and within [min, max], by value (ascending unless
        `descending`), ties in id order. `ordering` takes `equals` ("FM" or "ferromagnetic") instead, and lists
        the most stable first. UnknownMaterialProperty lists the valid names."""
        column = property_column(name)
        if k < 1:
            return []
        code = check_property_arguments(column, min, max, equals)
        if code is not None:
            return self._rows(materials_db.by_ordering, code, k)
        return self._rows(materials_db.by_range, column, min, max, descending=descending, limit=k)

    def search(self, text: str, k: int = 5) -> list[tuple[MaterialRecord, float]]:
        """The k records whose summary is closest in meaning to `text` (cosine, best first)."""
        if not text.strip() or k < 1:
            return []
        query = np.ascontiguousarray(self._query_embedder().encode([text]), dtype=np.float32)
        scores, seqs = vector_index.search(self._index, query, k, nprobe=1)
        hits = [(int(s), float(score)) for s, score in zip(seqs[0], scores[0], strict=True) if s >= 0]
        records = dict(self._select(materials_db.by_seqs, [s for s, _ in hits]))
        return [(records[s], score) for s, score in hits if s in records]

    def suggest_formulas(self, formula: str, n: int = 3) -> list[str]:
        """Known formulas close to `formula`, for "did you mean": the same reduced formula first, then the same
        letters in another case, then difflib's closest spellings."""
        text = formula.strip()
        with self._lock:
            pairs = materials_db.formulas(self._db)
        known = list(dict.fromkeys(f for pair in pairs for f in pair))
        out: list[str] = []
        try:
            reduced = parse_formula(text).reduced_formula
            out += [f for f, r in pairs if r == reduced]
        except ValueError:
            pass
        folded: dict[str, str] = {}
        for f in known:
            folded.setdefault(f.lower(), f)
        out += [folded[text.lower()]] if text.lower() in folded else []
        out += [folded[c] for c in difflib.get_close_matches(text.lower(), list(folded), n=n, cutoff=0.6)]
        return list(dict.fromkeys(out))[:n]

    def records(self) -> list[MaterialRecord]:
        """Every record, in build order."""
        return self._rows(materials_db.by_seqs, list(range(len(self))))

    def _rows(self, select: Callable[..., list[materials_db.Row]], *args: Any, **kwargs: Any) -> list[MaterialRecord]:
        return [record for _, record in self._select(select, *args, **kwargs)]

    def _select(
        self, select: Callable[..., list[materials_db.Row]], *args: Any, **kwargs: Any
    ) -> list[tuple[int, MaterialRecord]]:
        """(seq, record) for the rows `select(db, ...)` returns, in its order; decoded records are cached."""
        with self._lock:
            rows = select(self._db, *args, **kwargs)
        out = []
        for row in rows:
            found = self._decoded.get(row[0])
            if found is None:
                found = self._decoded[row[0]] = materials_db.decode(row)
            out.append((row[0], found))
        return out

    def _query_embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = make_embedder(str(self.manifest["embedder"]["spec"]))
            return self._embedder


def default_materials_store(home: str | Path, embedder: Embedder) -> MaterialsStore:
    """The shipped sample, built on first use into `<home>/materials/sample-<hash>/` and reopened after that.

    The hash covers the packaged file, the embedder and the on-disk format, so a new package version or another
    embedder gets its own directory instead of stale vectors. Concurrent first uses build it once (file lock).
    """
    source = sample_records_path()
    digest = hashlib.sha256(source.read_bytes())
    digest.update(f"\0{embedder.name}\0{embedder.dim}\0{materials_files.FORMAT_VERSION}".encode())
    directory = Path(home) / "materials" / f"sample-{digest.hexdigest()[:16]}"
    with locked(directory):
        try:
            return MaterialsStore.open(directory, embedder)
        except (MaterialsStoreNotFound, CorruptMaterialsStore):
            materials_files.write_generation(directory, load_records(source), embedder)
    return MaterialsStore.open(directory, embedder)
