"""What a knowledge store is built with and returns: KnowledgeConfig, Hit, and the errors of its documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.memory import vector_index


class DocumentNotFound(AgentDistillError):
    """No document with that id or title; the message suggests close matches."""

    def __init__(self, what: str, key: str, suggestions: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"no document with {what} {key!r} in the knowledge store.{hint}")
        self.key, self.suggestions = key, list(suggestions)


class DuplicateDocument(AgentDistillError):
    """Adding documents whose ids already exist; upsert replaces them instead."""


@dataclass(frozen=True)
class KnowledgeConfig:
    """How documents are chunked, embedded and indexed. Stored in the manifest; `kb add` reuses the build's values."""

    chunk_size: int = 150  # words per chunk: MiniLM reads 256 word pieces, ~150 words plus the title fit
    chunk_overlap: int = 30  # words shared by neighbouring chunks, so a fact on a boundary is whole in one of them
    batch_size: int = 64  # texts per embedder call (MODELS.md: 32 and 64 run at the same speed on CPU)
    index: str = "auto"  # "auto" | "flat" | "ivf"; auto = exact flat below ivf_threshold vectors, IVF from there on
    ivf_threshold: int = 50_000  # flat answers a query over 50k 384-d vectors in a few ms; past that IVF pays off
    ivf_nlist: int = 0  # IVF lists; 0 = power of two near 2*sqrt(n) (2048 at 1M vectors), fixed when IVF is built
    ivf_nprobe: int = 0  # IVF lists scanned per query; 0 = as many as cover ivf_scan vectors (33 of 2048 at 1M)
    ivf_scan: int = 16_000  # vectors an auto-nprobe query scans: 1M synthetic -> recall@10 0.96 (bench_kb.py)
    ivf_train_size: int = 50_000  # vectors sampled for k-means; training cost grows linearly with it
    filter_overfetch: int = 4  # filtered search first fetches k * this many hits, then widens 4x until k survive
    filter_exact_limit: int = 20_000  # filters matching at most this many chunks search exactly among just those
    seed: int = 0  # IVF training sample seed: the same data builds the same index

    def __post_init__(self) -> None:
        positive = ("chunk_size", "batch_size", "ivf_threshold", "ivf_scan", "ivf_train_size", "filter_overfetch")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "an integer >= 1")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError("chunk_overlap", self.chunk_overlap, f"0 <= overlap < chunk_size ({self.chunk_size})")
        if self.index not in vector_index.INDEX_KINDS:
            raise ConfigError("index", self.index, " | ".join(vector_index.INDEX_KINDS))
        for name in ("ivf_nlist", "ivf_nprobe", "filter_exact_limit"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "an integer >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KnowledgeConfig:
        """Unknown keys (from a newer version) are dropped so older code still opens the store."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk (`id` is `docid#n`), its document's title and metadata, and the cosine score."""

    id: str
    title: str
    text: str
    score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "score": self.score, "metadata": self.metadata}
