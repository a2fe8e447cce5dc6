"""Knowledge store benchmarks: indexing overhead against raw sentence-transformers, and search at 100k-1M vectors.

    python benchmarks/perf/bench_kb.py                       # both parts, sizes 100k and 1M
    python benchmarks/perf/bench_kb.py --sizes 100000 --passages 600 --json

(1) Indexing: the same passages go through `build_store` (chunk, embed, SQLite, FAISS, fsynced save) and through the
very same loaded SentenceTransformer's `encode` on exactly the texts the store embeds; runs interleave after a warm-up,
and the ratio of medians is the store's overhead. Goal: ratio >= 0.95.
(2) Search: synthetic 384-d vectors with real-embedding-like structure (a Gaussian mixture in a 32-d latent space,
projected to 384-d plus isotropic noise: nearest neighbours sit near cosine 0.6-0.7, random pairs near 0 +- 0.17), so an
IVF partition means something. The index is the one the store picks automatically for that size, built by the store's
own code; recall@10 is against exact flat search on the same vectors. Goal at 1M: >= 1000 qps with recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from agentdistill.memory import vector_index
from agentdistill.memory.documents import Document, chunk_spans
from agentdistill.memory.knowledge_bases import build_store, sample_kb_path
from agentdistill.memory.knowledge_types import KnowledgeConfig

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DIM, LATENT, CLUSTERS, SPREAD, NOISE = 384, 32, 1000, 1.0, 0.3  # see the module docstring


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=800, help="real passages for the indexing part (0 = skip)")
    parser.add_argument("--repeats", type=int, default=2, help="measured runs per side, after one warm-up")
    parser.add_argument("--embedder", default="minilm", help="embedder spec for the indexing part")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated vector counts ('' = skip search)")
    parser.add_argument("--queries", type=int, default=1000, help="queries per size")
    parser.add_argument(
        "--nprobe",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="extra nprobe values to sweep for IVF sizes, e.g. 16,24,48 (the automatic one always runs)",
    )
    parser.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0 = FAISS default)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="shared/data folder with hotpotqa/dev_shared.jsonl")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    return parser.parse_args(argv)


def machine_summary() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "faiss": faiss.__version__,
    }


def rss_bytes() -> int:
    """Current resident set size (Linux /proc); falls back to the peak where /proc is absent."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def real_passages(shared: Path, n: int) -> list[Document]:
    """The first n distinct HotpotQA context paragraphs (the sample KB when shared data is absent)."""
    source = shared / "hotpotqa" / "dev_shared.jsonl"
    docs: dict[str, Document] = {}
    if source.is_file():
        with source.open(encoding="utf-8") as handle:
            for line in handle:
                for title, sentences in json.loads(line)["context"]:
                    if title not in docs and len(docs) < n:
                        docs[title] = Document(f"p{len(docs)}", title, "".join(sentences).strip())
                if len(docs) >= n:
                    break
    else:
        with sample_kb_path().open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                docs[row["title"]] = Document(row["id"], row["title"], row["text"])
    return list(docs.values())[:n]


def bench_indexing(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    from agentdistill.memory.embedders import make_embedder

    docs = real_passages(args.shared, args.passages)
    embedder = make_embedder(args.embedder)
    config = KnowledgeConfig()
    texts = [  # exactly what the store embeds: the title on every chunk
        f"{d.title}\n{d.text[s:e]}"
        for d in docs
        for s, e in chunk_spans(d.text, config.chunk_size, config.chunk_overlap)
    ]
    raw_encode = getattr(embedder, "model", None)

    def run_store() -> float:
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            build_store("bench", root, docs, embedder=embedder, config=config, progress=False)
            return time.perf_counter() - start

    def run_raw() -> float:
        start = time.perf_counter()
        if raw_encode is not None:
            raw_encode.encode(texts, batch_size=config.batch_size, show_progress_bar=False)
        else:
            embedder.encode(texts, batch_size=config.batch_size)
        return time.perf_counter() - start

    embedder.encode(texts[:64], batch_size=config.batch_size)  # warm-up: first calls allocate and tune kernels
    times: dict[str, list[float]] = {"store": [], "raw": []}
    for rep in range(args.repeats):
        for side, run in (
            (("store", run_store), ("raw", run_raw)) if rep % 2 == 0 else (("raw", run_raw), ("store", run_store))
        ):
            seconds = run()
            times[side].append(seconds)
            log(f"  indexing rep {rep} {side}: {len(docs) / seconds:.1f} passages/s")
    store_rate = len(docs) / statistics.median(times["store"])
    raw_rate = len(docs) / statistics.median(times["raw"])
    return {
        "passages": len(docs),
        "chunks": len(texts),
        "embedder": embedder.name,
        "store_passages_per_s": round(store_rate, 2),
        "raw_passages_per_s": round(raw_rate, 2),
        "ratio": round(store_rate / raw_rate, 3),
        "runs_s": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
    }


def synthetic(n: int, rng: np.random.Generator, centers: np.ndarray, proj: np.ndarray) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000  # in slices, so a 1M build does not hold several temporaries of 1.5 GB each
    for start in range(0, n, step):
        m = min(step, n - start)
        z = centers[rng.integers(0, len(centers), m)] + SPREAD * rng.standard_normal((m, LATENT), dtype=np.float32)
        x = z @ proj + (NOISE * np.sqrt(LATENT / DIM)) * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def qps(fn: Callable[[], Any], count: int, repeats: int = 3) -> float:
    best = min(_timed(fn) for _ in range(repeats))
    return count / best


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_search(n: int, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    config = KnowledgeConfig()
    rng = np.random.default_rng(n)
    centers = rng.standard_normal((CLUSTERS, LATENT), dtype=np.float32)
    proj = np.linalg.qr(rng.standard_normal((DIM, LATENT)))[0].T.astype(np.float32)
    vectors, queries = synthetic(n, rng, centers, proj), synthetic(args.queries, rng, centers, proj)
    ids = np.arange(n, dtype=np.int64)

    # Build first, while the heap holds nothing freed, so the RSS delta is this index's own memory.
    kind = vector_index.choose_kind(n, setting=config.index, threshold=config.ivf_threshold)
    rss_before, start = rss_bytes(), time.perf_counter()
    if kind == vector_index.IVF:
        index = vector_index.build_ivf(vectors, ids, vector_index.IvfParams(config.ivf_nlist, config.ivf_train_size))
    else:
        index = vector_index.new_flat(DIM)
        index.add_with_ids(vectors, ids)
    build_s, rss_delta = time.perf_counter() - start, rss_bytes() - rss_before
    index_bytes = len(faiss.serialize_index(index))
    log(
        f"  {n}: built {kind} in {build_s:.1f} s, RSS +{rss_delta / 2**20:.0f} MiB, {index_bytes / 2**20:.0f} MiB saved"
    )

    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    start = time.perf_counter()
    true_scores, truth = exact.search(queries, 10)
    flat_qps = args.queries / (time.perf_counter() - start)
    del exact
    log(f"  {n}: exact flat {flat_qps:.0f} qps (ground truth)")

    auto = vector_index.nprobe_for(index, nprobe=config.ivf_nprobe, scan=config.ivf_scan)
    sweep = [] if kind == vector_index.FLAT else sorted({auto, *args.nprobe})
    singles = queries[: min(200, len(queries))]

    def measure(nprobe: int) -> dict[str, Any]:
        def batch() -> np.ndarray:
            return vector_index.search(index, queries, 10, nprobe=nprobe)[1]

        def one_by_one() -> None:
            for q in singles:
                vector_index.search(index, q[None], 10, nprobe=nprobe)

        found = batch()
        recall = float(np.mean([len(set(truth[i]) & set(found[i])) / 10 for i in range(len(queries))]))
        row = {"nprobe": nprobe, "batch_qps": round(qps(batch, len(queries))), "recall_at_10": round(recall, 4)}
        row["single_query_qps"] = round(qps(one_by_one, len(singles)))
        log(f"  {n}: {row}")
        return row

    chosen = measure(auto)
    result = {
        "vectors": n,
        "index": kind,
        "nlist": vector_index.nlist_of(index),
        **chosen,
        "nprobe": auto if kind == vector_index.IVF else None,
        "build_s": round(build_s, 1),
        "rss_delta_mib": round(rss_delta / 2**20),
        "index_mib": round(index_bytes / 2**20),
        "exact_flat_batch_qps": round(flat_qps),
        "mean_top1_cos": round(float(true_scores[:, 0].mean()), 3),
        "sweep": [chosen if p == auto else measure(p) for p in sweep],
    }
    log(f"  {n}: {json.dumps(result)}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"machine": machine_summary()}
    if args.passages:
        report["indexing"] = bench_indexing(args, log)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    report["search"] = [bench_search(n, args, log) for n in sizes]
    report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']}")
    if "indexing" in report:
        ix = report["indexing"]
        print(
            f"indexing {ix['passages']} passages ({ix['chunks']} chunks, {ix['embedder']}): store "
            f"{ix['store_passages_per_s']}/s | raw encode {ix['raw_passages_per_s']}/s | ratio {ix['ratio']}"
        )
    for row in report["search"]:
        print(
            f"search {row['vectors']:>9,} vectors: {row['index']} (nlist {row['nlist']}, nprobe {row['nprobe']}) "
            f"build {row['build_s']} s, RSS +{row['rss_delta_mib']} MiB | {row['batch_qps']} qps batched, "
            f"{row['single_query_qps']} qps one at a time | recall@10 {row['recall_at_10']} "
            f"(exact flat {row['exact_flat_batch_qps']} qps)"
        )


if __name__ == "__main__":
    main()
