"""Knowledge bases by name under a root (`<home>/kb` for the CLI): open, build, add to, and the shipped sample."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from agentdistill.memory import store_files
from agentdistill.memory.documents import Document, load_documents
from agentdistill.memory.embedders import Embedder, make_embedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.knowledge_types import KnowledgeConfig
from agentdistill.memory.store_files import StoreNotFound, store_dir
from agentdistill.paths import home_dir


def sample_kb_path() -> Path:
    """The shipped sample knowledge base (HotpotQA passages, CC BY-SA 4.0; see SAMPLE_KB_LICENSE.md)."""
    return Path(str(resources.files("agentdistill") / "data" / "sample_kb.jsonl"))


def sample_questions_path() -> Path:
    """Questions whose supporting passages are in the sample knowledge base (id, question, answer, ...)."""
    return Path(str(resources.files("agentdistill") / "data" / "sample_questions.jsonl"))


def open_store(
    name: str,
    root: str | Path | None = None,
    *,
    embedder: Embedder | str | None = None,
    config: KnowledgeConfig | None = None,
    device: str | None = None,
) -> KnowledgeStore:
    """Open the current generation, checking manifest, index and database against each other.

    `root=None` is where the CLI keeps knowledge bases: `<home>/kb` (home: $AGENTDISTILL_HOME or ~/.agentdistill).
    `embedder=None` recreates the embedder recorded in the manifest on first search; an explicit one must match it.
    `config=None` reuses the chunking and index settings the store was built with.
    """
    root = default_kb_root() if root is None else Path(root)
    loaded = store_files.load_generation(store_dir(root, name), name=name, root=root)
    manifest = loaded.manifest
    emb = embedder if isinstance(embedder, Embedder) or embedder is None else make_embedder(embedder, device=device)
    store = KnowledgeStore(
        name,
        root,
        db=loaded.db,
        index=loaded.index,
        config=config or KnowledgeConfig.from_dict(manifest.get("config", {})),
        embedder=emb,
        embedder_name=manifest["embedder"]["name"],
        embedder_spec=manifest["embedder"]["spec"],
        dim=int(manifest["dim"]),
        manifest=manifest,
        device=device,
    )
    if emb is not None:  # an explicit embedder must match the one the store was built with
        store.check_embedder(emb)
    return store


def default_kb_root() -> Path:
    """Where the CLI keeps knowledge bases: `<home>/kb`."""
    return home_dir() / "kb"


SAMPLE_KB = "sample"  # the shipped sample knowledge base: built from the package on first use


def sample_store(root: str | Path | None = None, *, device: str | None = None) -> KnowledgeStore:
    """The shipped sample knowledge base (48 HotpotQA questions' passages) under `root` (default `<home>/kb`),
    built from the package on first use."""
    return open_named(SAMPLE_KB, default_kb_root() if root is None else Path(root), device=device)


def open_named(
    name: str,
    root: str | Path,
    *,
    embedder: str | None = None,
    device: str | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> KnowledgeStore:
    """Store `name` under `root`; the sample one is built on first use (`say` hears about it), any other
    missing store raises StoreNotFound naming how to build it."""
    try:
        return open_store(name, root, embedder=embedder, device=device)
    except StoreNotFound:
        if name != SAMPLE_KB:
            raise
    if say is not None:
        say(f"building the sample knowledge base in {root} (first use only)...")
    return build_store(SAMPLE_KB, root, sample_kb_path(), embedder=embedder, device=device, progress=progress)


def add_documents(
    name: str,
    root: str | Path,
    documents: Sequence[Document | Mapping[str, Any]],
    *,
    upsert: bool = False,
    embedder: Embedder | str | None = None,
    progress: bool | None = None,
    retries: int = 5,
) -> tuple[KnowledgeStore, int]:
    """Add documents to store `name` and save: (the saved store, chunks added).

    When another writer saves the store in between (two `kb add` at once), this one's save is refused rather
    than dropping theirs; the store is reopened with their change and the documents are added again.
    """
    for attempt in range(retries + 1):
        store = open_store(name, root, embedder=embedder)
        chunks = store.add(documents, upsert=upsert, progress=progress if attempt == 0 else False)
        try:
            store.save()
            return store, chunks
        except store_files.StoreChanged:
            embedder = store.embedder  # loaded once, reused by the next attempt
            store.close()
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def build_store(
    name: str,
    root: str | Path,
    source: str | Path | Iterable[Document | Mapping[str, Any]],
    *,
    embedder: Embedder | str | None = None,
    config: KnowledgeConfig | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> KnowledgeStore:
    """Build a store from a JSONL file, a folder or documents, and save it (replacing any store of that name)."""
    docs = load_documents(source) if isinstance(source, str | Path) else list(source)
    store = KnowledgeStore.create(name, root, embedder=embedder, config=config, device=device)
    store.add(docs, progress=progress)
    store.save()
    return store
