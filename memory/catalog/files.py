"""On-disk layout of a catalog: generations, the CURRENT pointer, the manifest, the writer's lock.

    <directory>/CURRENT                  "gen-0003": switched atomically, the only pointer to live data
    <directory>/gen-0003/catalog.db      items + join tables (db.py), read-only once written
    <directory>/gen-0003/kb/items/       KnowledgeStore over "type · genres. description" (one chunk per item)
    <directory>/gen-0003/manifest.json   written last: counts, content hash, embedder
    <directory>/.lock                    flock held while a generation is written

A generation is complete (files fsynced, manifest last) before CURRENT names it, and older ones are deleted only
after the switch, so a build killed at any moment leaves the previous catalog (or none) in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import agentdistill.memory.catalog.db as catalog_db
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory.catalog.items import CatalogItem
from agentdistill.memory.embedders import Embedder, embedder_spec
from agentdistill.memory.knowledge_bases import build_store
from agentdistill.memory.knowledge_types import KnowledgeConfig
from agentdistill.paths import atomic_write, fsync_dir

FORMAT_VERSION = 1
CURRENT, MANIFEST, DB_FILE, KB_DIR, KB_NAME, LOCK = "CURRENT", "manifest.json", "catalog.db", "kb", "items", ".lock"
GEN = re.compile(r"gen-(\d{4,})")
_EMBED_WORDS = 200  # MiniLM reads ~256 word pieces; longer descriptions are cut so every item is exactly one chunk
_KB_CONFIG = KnowledgeConfig(chunk_size=256, chunk_overlap=0)


class CatalogNotFound(StoreError):
    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"no catalog in {directory}: build one with `agentdistill catalog build` (the shipped Netflix titles) "
            "or `agentdistill catalog import FILE --out DIR`."
        )
        self.directory = directory


class CorruptCatalog(StoreError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"catalog file {path} is damaged: {problem}. Rebuild the catalog (`agentdistill catalog build`, or "
            "`agentdistill catalog import FILE --out DIR` for an imported one)."
        )
        self.path = path


class InvalidCatalog(AgentDistillError):
    """Items that cannot form a catalog: none at all, or two with the same id."""


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One writer per catalog directory, across processes (flock is released if the holder dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_generation(directory: Path, items: Sequence[CatalogItem], embedder: Embedder) -> Path:
    """Write a complete generation, switch CURRENT to it, then delete the others. The caller holds the lock."""
    items = list(items)
    if not items:
        raise InvalidCatalog("a catalog needs at least one item; the input had none")
    seen: dict[str, int] = {}
    for n, item in enumerate(items, start=1):
        if item.id in seen:
            raise InvalidCatalog(
                f"item id {item.id!r} appears twice (items {seen[item.id]} and {n}); ids must be unique"
            )
        seen[item.id] = n
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := GEN.fullmatch(p.name))]
    generation = directory / f"gen-{max(numbers, default=0) + 1:04d}"
    generation.mkdir()
    try:
        catalog_db.create(generation / DB_FILE, items)
        with open(generation / DB_FILE, "rb+") as handle:  # the KnowledgeStore fsyncs its own files
            os.fsync(handle.fileno())
        docs = [{"id": it.id, "title": it.title, "text": embed_text(it)} for it in items]
        build_store(KB_NAME, generation / KB_DIR, docs, embedder=embedder, config=_KB_CONFIG)
        manifest = {
            "format_version": FORMAT_VERSION,
            "items": len(items),
            "content_sha256": content_hash(items),
            "embedder": {"name": embedder.name, "dim": embedder.dim, "spec": embedder_spec(embedder)},
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with atomic_write(generation / MANIFEST) as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
    except BaseException:
        shutil.rmtree(generation, ignore_errors=True)  # CURRENT still names the previous generation
        raise
    with atomic_write(directory / CURRENT) as handle:
        handle.write(generation.name + "\n")
    for old in directory.iterdir():
        if old != generation and GEN.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)  # open readers keep their files (POSIX unlink semantics)
    fsync_dir(directory)
    return generation


def embed_text(item: CatalogItem) -> str:
    """What retrieval compares a request with: kind and genres (so 'a scary show' finds TV Horror), then the
    description, cut to fit the embedder. The KnowledgeStore puts the title in front."""
    text = f"{item.type} · {', '.join(item.genres)}. {item.description}"
    words = text.split()
    return " ".join(words[:_EMBED_WORDS])


def content_hash(items: Sequence[CatalogItem]) -> str:
    """sha256 over the items in order: two catalogs with the same hash hold the same data."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorruptCatalog(path, "the file is missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptCatalog(path, f"not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not {"format_version", "items", "embedder"} <= manifest.keys():
        raise CorruptCatalog(path, "not a catalog manifest")
    if manifest["format_version"] > FORMAT_VERSION:
        raise CorruptCatalog(path, f"format {manifest['format_version']} is newer than this agentdistill reads")
    return manifest
