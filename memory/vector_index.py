"""FAISS indexes for the knowledge store: exact flat below a size threshold, IVF above it; both add/remove by id.

Vectors are unit length and compared by inner product (= cosine). Flat is an `IndexIDMap2(IndexFlatIP)`: exact, and its
vectors can be read back, which is how a store that outgrows the threshold is converted to IVF without re-embedding.
IVF is an `IndexIVFScalarQuantizer` holding fp16 copies of the vectors: IVF search is memory-bound, and half the bytes
per scanned vector gave ~1.5x the queries/s of IndexIVFFlat at 1M vectors with the same recall@10 (scores differ by
~1e-3). It stores ids itself and supports `remove_ids`, which HNSW does not, so HNSW is not offered: a store must
support delete and upsert. Centroids are trained once, when the store crosses the threshold; `kb build` retrains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

FLAT, IVF = "flat", "ivf"
INDEX_KINDS = ("auto", FLAT, IVF)


@dataclass(frozen=True)
class IvfParams:
    """How an IVF index is trained (see KnowledgeConfig for the defaults and why)."""

    nlist: int  # coarse clusters; 0 picks auto_nlist(n)
    train_size: int  # vectors sampled to train the centroids: k-means cost grows with it
    seed: int = 0  # sampling seed, so two builds of the same data give the same index


def auto_nlist(n: int) -> int:
    """A power of two near 2*sqrt(n), at least 39 training points per list (FAISS's own floor), at least 1."""
    target = 2 * math.sqrt(max(n, 1))
    nlist = 2 ** round(math.log2(max(target, 1)))
    return max(1, min(nlist, n // 39))


def choose_kind(n: int, *, setting: str, threshold: int) -> str:
    """`auto` means exact flat until `threshold` vectors, then IVF."""
    if setting != "auto":
        return setting
    return IVF if n >= threshold else FLAT


def nprobe_for(index: faiss.Index, *, nprobe: int, scan: int) -> int:
    """Lists to scan per query: `nprobe` when set, else enough lists to cover about `scan` vectors.

    A fixed scan size keeps the cost per query constant as a store grows, and gives smaller IVF stores a larger share
    of their vectors, which they need: their neighbours are sparser and spread over more lists.
    """
    nlist = nlist_of(index)
    if nlist is None:
        return 1
    if nprobe:
        return min(nprobe, nlist)
    per_list = max(index.ntotal / nlist, 1.0)
    return max(1, min(nlist, math.ceil(scan / per_list)))


def new_flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def kind_of(index: faiss.Index) -> str:
    return IVF if isinstance(faiss.downcast_index(index), faiss.IndexIVF) else FLAT


def nlist_of(index: faiss.Index) -> int | None:
    return faiss.extract_index_ivf(index).nlist if kind_of(index) == IVF else None


def build_ivf(vectors: np.ndarray, ids: np.ndarray, params: IvfParams) -> faiss.Index:
    """Train IVF centroids on a seeded sample, then add every vector under its id."""
    n, dim = vectors.shape
    nlist = params.nlist or auto_nlist(n)
    quantizer = faiss.IndexFlatIP(dim)
    fp16 = faiss.ScalarQuantizer.QT_fp16
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, fp16, faiss.METRIC_INNER_PRODUCT, False)
    index.cp.niter = 10  # k-means rounds: faiss's IVF default too; training is the slowest part of a 1M build
    index.cp.min_points_per_centroid = 1  # auto_nlist already keeps >= 39 points per list; silence FAISS's warning
    index.cp.seed = params.seed
    rng = np.random.default_rng(params.seed)
    sample = vectors if n <= params.train_size else vectors[np.sort(rng.choice(n, params.train_size, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    _keep_alive(index, quantizer)
    return index


def flat_contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """All (vectors, ids) of a flat IDMap2 index, in storage order."""
    inner = faiss.downcast_index(index.index)
    vectors = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, index.d), np.float32)
    return vectors, faiss.vector_to_array(index.id_map).astype(np.int64)


def convert_to_ivf(index: faiss.Index, params: IvfParams) -> faiss.Index:
    vectors, ids = flat_contents(index)
    return build_ivf(vectors, ids, params)


def search(
    index: faiss.Index, queries: np.ndarray, k: int, *, nprobe: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) per query; ids are -1 past the end. `allowed` restricts the search to those ids.

    Search parameters are passed per call instead of set on the index, so concurrent searches never race.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, index.ntotal))
    selector = faiss.IDSelectorBatch(allowed.astype(np.int64)) if allowed is not None else None
    if kind_of(index) == IVF:
        params = faiss.SearchParametersIVF()
        params.nprobe = min(nprobe, nlist_of(index) or 1)
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    scores, ids = index.search(queries, k, params=params)
    return scores, ids


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    if not len(ids):
        return 0
    return int(index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))


def read(path: Path) -> faiss.Index:
    """Raises RuntimeError from FAISS on a truncated or foreign file; the caller names the file in its error."""
    return faiss.read_index(str(path))


def write(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def _keep_alive(index: faiss.Index, quantizer: faiss.Index) -> None:
    # SWIG does not tie the quantizer's lifetime to the IVF index; hold a reference so it is not freed under it.
    index.referenced_objects = [quantizer]
