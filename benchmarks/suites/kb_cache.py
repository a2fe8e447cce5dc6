"""The knowledge store a suite's agent searches: pooled item passages (cached by content hash), a named store, or none.

A `contexts` suite pools every item's paragraphs into one store named `<suite>-<hash12>`, where the hash
covers the passages and the embedder spec: a second run over the same data reuses it without embedding
anything, and any change to the data or the embedder gives a new name, so a stale store is never read.
The stores live in the user's kb root beside their own KBs (`kb list` shows them; `kb delete` frees them).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory.documents import Document
from agentdistill.memory.embedders import DEFAULT_EMBEDDER
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.knowledge_bases import build_store, open_named, open_store
from agentdistill.memory.knowledge_types import DocumentNotFound
from agentdistill.memory.store_files import StoreNotFound

_HASH_VERSION = "suite-kb-1"  # bump when what goes into a pooled store changes, so old caches are not reused


class KbRequired(AgentDistillError):
    def __init__(self, suite: Suite) -> None:
        super().__init__(
            f"suite {suite.name!r} has no corpus of its own: pass a knowledge store with --kb NAME "
            "(build one with `agentdistill kb build NAME --from FILE`, JSONL or a folder of .txt/.md files)"
        )


class SuiteKbMissing(StoreError):
    def __init__(self, suite: Suite, name: str, root: Path) -> None:
        super().__init__(
            f"suite {suite.name!r} searches knowledge store {name!r}, which is not under {root}: build it with "
            f"`agentdistill kb build {name} --from FILE` (JSONL or a folder of .txt/.md files), or pass --kb NAME"
        )
        self.name = name


class NoPassages(AgentDistillError):
    def __init__(self, suite: Suite) -> None:
        super().__init__(
            f"suite {suite.name!r} builds its knowledge store from the items' passages, but its items have none: "
            "check the data file, or pass --kb NAME to search an existing store"
        )


def pooled_documents(items: Sequence[Item]) -> list[Document]:
    """Every item's passages once (dedupe by title + text), sorted by id so the store does not depend on order."""
    unique: dict[tuple[str, str], Document] = {}
    for item in items:
        for doc in item.contexts:
            unique.setdefault((doc.title, doc.text), doc)
    by_id: dict[str, Document] = {}
    for doc in unique.values():
        if doc.id in by_id:  # two different passages, one id: suffix the later one so neither is lost
            doc = Document(f"{doc.id}-{len(by_id)}", doc.title, doc.text, doc.metadata)
        by_id[doc.id] = doc
    return [by_id[key] for key in sorted(by_id)]


def normalized_embedder(embedder: str | None) -> str:
    """The spec as a store would record it, so `hashing` and `hashing:64` (or ~/dir and /abs/dir) hash alike."""
    spec = embedder or DEFAULT_EMBEDDER
    if spec == DEFAULT_EMBEDDER or spec.startswith("hashing"):
        return "hashing:64" if spec == "hashing" else spec
    return str(Path(spec).expanduser().resolve())


def content_hash(docs: Sequence[Document], embedder: str | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{_HASH_VERSION}\n{normalized_embedder(embedder)}\n".encode())
    for doc in sorted(docs, key=lambda d: (d.id, d.title, d.text)):
        digest.update(json.dumps([doc.id, doc.title, doc.text], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_name(suite: Suite, docs: Sequence[Document], embedder: str | None) -> str:
    """`<suite>-<hash12>`: store names allow 64 characters, so a long user suite name is cut."""
    return f"{suite.name[:50]}-{content_hash(docs, embedder)[:12]}"


def suite_kb(
    suite: Suite,
    items: Sequence[Item],
    kb_root: Path,
    *,
    kb_name: str | None = None,
    embedder: str | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> KnowledgeStore | None:
    """The store for a run of `suite` over `items`; an explicit `kb_name` (--kb) overrides the suite's mode.

    progress=None shows the embedding bar only on a TTY.
    """
    if kb_name is not None or suite.kb == "named":
        return _named(suite, kb_name or suite.kb_name, Path(kb_root), embedder, device, progress)
    if suite.kb in ("none", "records"):  # records suites search their own store (suites/materials_setup.py)
        return None
    docs = pooled_documents(items)
    if not docs:
        raise NoPassages(suite)
    name = cache_name(suite, docs, embedder)
    cached = _open_cached(name, Path(kb_root), docs, device)
    if cached is not None:
        return cached
    print(
        f"building knowledge store {name!r} from {len(docs)} passages of suite {suite.name!r} "
        f"in {kb_root} (cached for later runs)...",
        file=sys.stderr,
    )
    return build_store(name, kb_root, docs, embedder=embedder, device=device, progress=progress)


def _named(
    suite: Suite, name: str | None, kb_root: Path, embedder: str | None, device: str | None, progress: bool | None
) -> KnowledgeStore:
    if name is None:
        raise KbRequired(suite)
    try:
        return open_named(name, kb_root, embedder=embedder, device=device, progress=progress, say=_stderr)
    except StoreNotFound:
        raise SuiteKbMissing(suite, name, kb_root) from None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _open_cached(name: str, kb_root: Path, docs: Sequence[Document], device: str | None) -> KnowledgeStore | None:
    """The cached store if it opens and holds these passages; None means build it (again)."""
    try:
        store = open_store(name, kb_root, device=device)
    except StoreError:  # missing, or damaged by a crash outside a save: rebuilding is cheap and replaces it
        return None
    try:
        store.get(docs[0].id)
    except DocumentNotFound:
        store.close()
        return None
    if len(store) != len(docs):
        store.close()
        return None
    return store
