"""suite_kb on real FAISS stores with the hashing embedder: pooled contexts cached by content hash, named stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.benchmarks.datasets import passage
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.suites.kb_cache import (
    KbRequired,
    NoPassages,
    SuiteKbMissing,
    cache_name,
    pooled_documents,
    suite_kb,
)
from agentdistill.benchmarks.suites.registry import get_suite, load_items, user_suite
from agentdistill.memory.knowledge_bases import build_store
from agentdistill.memory.store_files import CURRENT, list_stores, store_dir

EMB = "hashing:64"
GUAM = passage("Battle of Guam (1944)", "The Battle of Guam was fought in July 1944 in the Pacific.", "t")
MANILA = passage("Battle of Manila (1945)", "The Battle of Manila was fought in February 1945.", "t")
PARIS = passage("Paris", "Paris is the capital of France.", "t")


def items(*contexts: tuple) -> list[Item]:
    return [Item(id=f"q{n}", question="q", answers=("a",), contexts=c) for n, c in enumerate(contexts)]


def test_pooled_passages_are_deduplicated_and_order_independent() -> None:
    pool = pooled_documents(items((GUAM, MANILA), (MANILA, PARIS)))
    assert sorted(d.title for d in pool) == ["Battle of Guam (1944)", "Battle of Manila (1945)", "Paris"]
    suite = get_suite("hotpotqa")
    reordered = pooled_documents(items((PARIS, MANILA), (GUAM,)))
    assert cache_name(suite, pool, EMB) == cache_name(suite, reordered, EMB)
    assert cache_name(suite, pool, EMB) != cache_name(suite, pool, "hashing:32")  # embedder is part of the key
    assert cache_name(suite, pool, "hashing") == cache_name(suite, pool, "hashing:64")
    assert cache_name(suite, pool[:2], EMB) != cache_name(suite, pool, EMB)
    assert cache_name(suite, pool, EMB).startswith("hotpotqa-") and len(cache_name(suite, pool, EMB)) == 21


def test_contexts_store_is_built_once_then_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, data = get_suite("hotpotqa"), items((GUAM, MANILA), (MANILA, PARIS))
    store = suite_kb(suite, data, tmp_path, embedder=EMB, progress=False)
    assert store is not None and len(store) == 3
    assert store.search("capital of France", k=1)[0].title == "Paris"
    current = store_dir(tmp_path, store.name) / CURRENT
    generation, mtime = current.read_text(), current.stat().st_mtime_ns
    assert "building knowledge store" in capsys.readouterr().err
    again = suite_kb(suite, data, tmp_path, embedder=EMB, progress=False)
    assert again is not None and again.name == store.name and len(again) == 3
    assert (current.read_text(), current.stat().st_mtime_ns) == (generation, mtime)  # nothing rebuilt
    assert "building" not in capsys.readouterr().err
    changed = suite_kb(suite, items((GUAM,), (PARIS,)), tmp_path, embedder=EMB, progress=False)
    assert changed is not None and changed.name != store.name and len(changed) == 2
    assert {store.name, changed.name} <= set(list_stores(tmp_path))


def test_a_damaged_cached_store_is_rebuilt(tmp_path: Path) -> None:
    suite, data = get_suite("2wiki"), items((GUAM, PARIS))
    store = suite_kb(suite, data, tmp_path, embedder=EMB, progress=False)
    assert store is not None
    gen = store_dir(tmp_path, store.name) / (store_dir(tmp_path, store.name) / CURRENT).read_text().strip()
    (gen / "index.faiss").write_bytes(b"garbage")
    rebuilt = suite_kb(suite, data, tmp_path, embedder=EMB, progress=False)
    assert rebuilt is not None and rebuilt.name == store.name and len(rebuilt) == 2
    assert rebuilt.search("Guam 1944", k=1)[0].title == "Battle of Guam (1944)"


def test_real_hotpotqa_items_share_one_pooled_store(tmp_path: Path, shared_data: Path) -> None:
    suite = get_suite("hotpotqa")
    data = load_items(suite, shared_data, limit=20)
    store = suite_kb(suite, data, tmp_path, embedder=EMB, progress=False)
    assert store is not None
    assert len(store) == len({(d.title, d.text) for item in data for d in item.contexts}) > 150


def test_named_stores_open_the_sample_is_built_from_the_package_and_a_missing_one_names_the_command(
    tmp_path: Path,
) -> None:
    sample = get_suite("sample")
    store = suite_kb(sample, load_items(sample, None), tmp_path, embedder=EMB, progress=False)
    assert store is not None and store.name == "sample" and len(store) == 477
    assert suite_kb(sample, [], tmp_path, embedder=EMB) is not None  # second time: opened, not rebuilt
    build_store("wiki", tmp_path, [PARIS], embedder=EMB)
    bamboogle = get_suite("bamboogle")
    opened = suite_kb(bamboogle, [], tmp_path, kb_name="wiki")
    assert opened is not None and opened.name == "wiki"
    with pytest.raises(KbRequired, match="--kb NAME"):
        suite_kb(bamboogle, [], tmp_path)
    with pytest.raises(SuiteKbMissing) as err:
        suite_kb(user_suite(tmp_path / "x.jsonl", kb_name="encyclopedia"), [], tmp_path)
    assert "agentdistill kb build encyclopedia --from FILE" in str(err.value)


def test_kb_none_gives_none_unless_a_kb_is_named_and_contexts_need_passages(tmp_path: Path) -> None:
    gsm8k = get_suite("gsm8k")
    assert suite_kb(gsm8k, items(()), tmp_path) is None
    build_store("wiki", tmp_path, [PARIS], embedder=EMB)
    store = suite_kb(gsm8k, [], tmp_path, kb_name="wiki")
    assert store is not None and store.name == "wiki"
    with pytest.raises(NoPassages):
        suite_kb(get_suite("musique"), items((), ()), tmp_path, embedder=EMB)
