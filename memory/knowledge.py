"""KnowledgeStore: chunked documents, embedded into a FAISS index, with titles, texts and metadata in SQLite.

A store is a directory `<root>/<name>/` holding generations `gen-NNNN/` (index.faiss, store.db, manifest.json) and
a `CURRENT` file naming the live one. `save()` writes a complete new generation, fsyncs it, switches CURRENT atomically
and only then deletes older generations, so a process killed at any point leaves a store that still opens (see
store_files.py). Nothing is pickled. An opened store reads its generation's SQLite file read-only and copies it into
memory on the first change, so searching a large store costs no copy.
Stores by name (open, build, add to, the sample) are knowledge_bases.py; its config and hits, knowledge_types.py.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agentdistill.memory import store_db, store_files, vector_index
from agentdistill.memory.documents import Document, as_document, chunk_spans
from agentdistill.memory.embedders import Embedder, EmbedderNotFound, embedder_spec, make_embedder
from agentdistill.memory.knowledge_types import DocumentNotFound, DuplicateDocument, Hit, KnowledgeConfig
from agentdistill.memory.store_files import EmbedderMismatch, StoreInfo, store_dir
from agentdistill.progress import Progress


class KnowledgeStore:
    """Use `KnowledgeStore.create`, `build_store` or `open_store`; the constructor is internal."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        db: sqlite3.Connection,
        index: Any,
        config: KnowledgeConfig,
        embedder: Embedder | None,
        embedder_name: str,
        embedder_spec: str,
        dim: int,
        manifest: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        self.name, self.root, self.config, self.dim = name, Path(root), config, dim
        self.embedder_name, self.embedder_spec = embedder_name, embedder_spec
        self._db, self._index, self._embedder, self._device = db, index, embedder, device
        self._readonly = manifest is not None
        self._manifest = dict(manifest) if manifest else None

    @classmethod
    def create(
        cls,
        name: str,
        root: str | Path,
        *,
        embedder: Embedder | str | None = None,
        config: KnowledgeConfig | None = None,
        device: str | None = None,
    ) -> KnowledgeStore:
        """An empty in-memory store; nothing is written until `save()`."""
        store_dir(root, name)  # validates the name before any work
        emb = embedder if isinstance(embedder, Embedder) else make_embedder(embedder, device=device)
        db = store_db.new_db()
        config = config or KnowledgeConfig()
        return cls(
            name,
            Path(root),
            db=db,
            index=vector_index.new_flat(emb.dim),
            config=config,
            embedder=emb,
            embedder_name=emb.name,
            embedder_spec=embedder_spec(emb),
            dim=emb.dim,
            device=device,
        )

    # ---- embedding ---------------------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use, so `info()`, `get()` and listing never pay for loading a model."""
        if self._embedder is None:
            try:
                embedder = make_embedder(self.embedder_spec, device=self._device)
            except EmbedderNotFound as exc:
                raise EmbedderNotFound(
                    f"knowledge store {self.name!r} was built with embedder {self.embedder_name!r} "
                    f"({self.embedder_spec}), which cannot be loaded here: {exc}. Pass that embedder "
                    f"(--embedder DIR), or rebuild: `agentdistill kb build {self.name} --from FILE --embedder DIR`."
                ) from exc
            self.check_embedder(embedder)
            self._embedder = embedder
        return self._embedder

    def check_embedder(self, embedder: Embedder) -> None:
        if embedder.name != self.embedder_name or embedder.dim != self.dim:
            raise EmbedderMismatch(self.name, self.embedder_name, self.dim, embedder.name, embedder.dim)

    def _encode(self, texts: Sequence[str], progress: bool | None) -> np.ndarray:
        """Longest texts first, as sentence-transformers does, so each batch pads to similar lengths."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.config.batch_size * 8  # several batches per call: bar updates cost nothing next to encoding
        with Progress(len(texts), desc="embedding", unit="chunk", enabled=progress) as bar:
            for start in range(0, len(order), step):
                idx = order[start : start + step]
                vectors = self.embedder.encode([texts[i] for i in idx], batch_size=self.config.batch_size)
                out[idx] = np.asarray(vectors, dtype=np.float32).reshape(len(idx), self.dim)
                bar.update(len(idx))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms > 0, norms, 1.0)  # cosine needs unit rows, whatever the embedder returned
        return out

    # ---- changes -----------------------------------------------------------------------------------------------

    def _writable(self) -> sqlite3.Connection:
        if self._readonly:
            memory = sqlite3.connect(":memory:")
            self._db.backup(memory)
            self._db.close()
            self._db, self._readonly = memory, False
        return self._db

    def add(
        self, documents: Iterable[Document | Mapping[str, Any]], *, upsert: bool = False, progress: bool | None = None
    ) -> int:
        """Chunk, embed and index documents; returns the number of chunks added. Existing ids need `upsert=True`."""
        docs = [as_document(d, line=n) for n, d in enumerate(documents, start=1)]
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DuplicateDocument(f"document id {dup!r} appears more than once in this batch")
        existing = store_db.existing_ids(self._db, ids)
        if existing and not upsert:
            raise DuplicateDocument(
                f"{len(existing)} document id(s) already in store {self.name!r} (e.g. {existing[0]!r}): "
                "use upsert (`kb add --upsert`) to replace them"
            )
        cfg = self.config
        pieces = [
            (d, n, s, e)
            for d in docs
            for n, (s, e) in enumerate(chunk_spans(d.text, cfg.chunk_size, cfg.chunk_overlap))
        ]
        vectors = self._encode([f"{d.title}\n{d.text[s:e]}" for d, _, s, e in pieces], progress)
        with self._writable() as db:  # one transaction: a failure below leaves the SQLite side unchanged
            old_vids = store_db.delete_documents(db, existing)
            vids = store_db.insert(db, docs, pieces)
            vector_index.remove(self._index, old_vids)
            self._index.add_with_ids(vectors, vids)
        self._maybe_convert()
        return len(pieces)

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], *, progress: bool | None = None) -> int:
        return self.add(documents, upsert=True, progress=progress)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents and all their chunks; every id must exist (nothing changes otherwise)."""
        ids = list(dict.fromkeys(ids))
        missing = sorted(set(ids) - set(store_db.existing_ids(self._db, ids)))
        if missing:
            raise DocumentNotFound("id", missing[0], store_db.close_ids(self._db, missing[0]))
        with self._writable() as db:
            vector_index.remove(self._index, store_db.delete_documents(db, ids))
        return len(ids)

    def _ivf_params(self) -> vector_index.IvfParams:
        cfg = self.config
        return vector_index.IvfParams(cfg.ivf_nlist, cfg.ivf_train_size, cfg.seed)

    def _maybe_convert(self) -> None:
        want = vector_index.choose_kind(
            self._index.ntotal, setting=self.config.index, threshold=self.config.ivf_threshold
        )
        if want == vector_index.IVF and vector_index.kind_of(self._index) == vector_index.FLAT and self._index.ntotal:
            self._index = vector_index.convert_to_ivf(self._index, self._ivf_params())

    # ---- queries -----------------------------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, filters: Mapping[str, Any] | None = None) -> list[Hit]:
        """The k chunks most similar to `query` whose document matches every `filters` field (== or any-of a list)."""
        if k < 1 or self._index.ntotal == 0:
            return []
        return self.search_vector(self.embedder.encode([query], batch_size=1)[0], k, filters)

    def search_vector(self, vector: np.ndarray, k: int, filters: Mapping[str, Any] | None = None) -> list[Hit]:
        """Search with a precomputed query vector (benchmarks, or callers that embed many queries at once)."""
        total = self._index.ntotal
        if k < 1 or total == 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, self.dim)
        where, params = store_db.filter_sql(filters or {})
        nlist = vector_index.nlist_of(self._index) or 1
        if filters:
            # A selective filter would need many widening rounds: search exactly among the matching chunks instead.
            limit = self.config.filter_exact_limit
            allowed = store_db.matching_vids(self._db, where, params, limit + 1)
            if len(allowed) == 0:
                return []
            if len(allowed) <= limit:
                scores, vids = vector_index.search(self._index, query, k, nprobe=nlist, allowed=allowed)
                return self._hits(scores[0], vids[0], "1", ())[:k]
        fetch = min(total, k * (self.config.filter_overfetch if filters else 1))
        nprobe = self.nprobe
        while True:
            scores, vids = vector_index.search(self._index, query, fetch, nprobe=nprobe)
            hits = self._hits(scores[0], vids[0], where, params)
            if len(hits) >= k or (fetch >= total and nprobe >= nlist):
                return hits[:k]
            fetch = min(total, fetch * 4)  # widen: the filter (or a sparse IVF probe) removed too many
            nprobe = nlist if fetch >= total else min(nlist, nprobe * 4)

    def _hits(self, scores: np.ndarray, vids: np.ndarray, where: str, params: Sequence[Any]) -> list[Hit]:
        order = [int(v) for v in vids if v >= 0]
        rows = store_db.chunk_rows(self._db, order, where, params)
        score_of = {int(v): float(s) for v, s in zip(vids, scores, strict=True) if v >= 0}
        return [
            Hit(id=r[1], title=r[3], text=r[4], score=score_of[v], metadata={**json.loads(r[5]), "doc_id": r[2]})
            for v in order
            if (r := rows.get(v)) is not None
        ]

    def get(self, id: str) -> Document:
        """A document by id, or one chunk by its `docid#n` id (metadata then carries `doc_id`)."""
        found = store_db.get_document(self._db, id)
        if found is None:
            raise DocumentNotFound("id", id, store_db.close_ids(self._db, id))
        return found

    def get_by_title(self, title: str) -> Document:
        """Case-insensitive exact title match (smallest id when titles repeat); a miss suggests close titles."""
        doc_id = store_db.id_by_title(self._db, title)
        if doc_id is None:
            raise DocumentNotFound("title", title, store_db.close_titles(self._db, title))
        return self.get(doc_id)

    def documents(self) -> Iterator[Document]:
        for row in self._db.execute("SELECT doc_id, title, text, metadata FROM documents ORDER BY doc_id"):
            yield Document(row[0], row[1], row[2], json.loads(row[3]))

    def __len__(self) -> int:
        return store_db.count(self._db, "documents")

    def chunk_count(self) -> int:
        return store_db.count(self._db, "chunks")

    @property
    def nprobe(self) -> int:
        """IVF lists each query scans now (1 for flat): fixed by config, or sized to scan ~ivf_scan vectors."""
        return vector_index.nprobe_for(self._index, nprobe=self.config.ivf_nprobe, scan=self.config.ivf_scan)

    @property
    def index_kind(self) -> str:
        return vector_index.kind_of(self._index)

    # ---- persistence -------------------------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        created = (self._manifest or {}).get("created") or datetime.now(UTC).isoformat(timespec="seconds")
        return {
            "format_version": store_files.FORMAT_VERSION,
            "name": self.name,
            "created": created,
            "documents": len(self),
            "chunks": self.chunk_count(),
            "vectors": int(self._index.ntotal),
            "dim": self.dim,
            "embedder": {"name": self.embedder_name, "spec": self.embedder_spec},
            "index": {
                "kind": self.index_kind,
                "nlist": vector_index.nlist_of(self._index),
                "nprobe": self.nprobe if self.index_kind == vector_index.IVF else None,
            },
            "config": dataclasses.asdict(self.config),
        }

    def save(self) -> Path:
        """Write a new generation and switch to it atomically; returns the generation directory."""
        gen = store_files.write_generation(
            store_dir(self.root, self.name),
            self.manifest(),
            write_index=lambda path: vector_index.write(self._index, path),
            write_db=self._backup_to,
            based_on=self._manifest["generation"] if self._manifest else None,  # refuse to drop a concurrent save
        )
        self._manifest = json.loads((gen / store_files.MANIFEST).read_text(encoding="utf-8"))
        return gen

    def _backup_to(self, path: Path) -> None:
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
        finally:
            target.close()

    def info(self) -> StoreInfo:
        """Counts, dimension, embedder, index kind and size on disk (0 before the first save)."""
        directory = store_dir(self.root, self.name)
        gen_dir = directory / self._manifest["generation"] if self._manifest else None
        live = {**self.manifest(), "saved": (self._manifest or {}).get("saved")}
        return StoreInfo.from_manifest(
            live, path=directory, generation=gen_dir if gen_dir and gen_dir.is_dir() else None
        )

    def close(self) -> None:
        self._db.close()
