"""MaterialsStore on real SQLite files and FAISS indexes with the hashing embedder: build/open, queries, errors."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.materials import (
    CorruptMaterialsStore,
    InvalidMaterialsQuery,
    InvalidMaterialsStore,
    MaterialNotFound,
    MaterialRecord,
    MaterialsEmbedderMismatch,
    MaterialsStore,
    MaterialsStoreNotFound,
    UnknownElement,
    UnknownMaterialProperty,
    default_materials_store,
    make_record,
    sample_records_path,
)

EMBEDDER = HashingEmbedder(256)
TENSOR = [[100.0 if i == j else 0.0 for j in range(6)] for i in range(6)]
RECORDS = [
    make_record("mp-2657", "TiO2", {"formation_energy_per_atom": -3.31, "band_gap": 1.8, "ordering": "NM"}),
    make_record("mp-390", "TiO2", {"formation_energy_per_atom": -3.32, "energy_above_hull": 0.0, "band_gap": 2.1}),
    make_record("mp-1041565", "TiO2", {"formation_energy_per_atom": -3.47}),
    make_record("mp-9999", "TiO2", {}),
    make_record("mp-554278", "TiO2", {"energy_above_hull": 0.04, "formation_energy_per_atom": -3.28}),
    make_record("mp-19770", "Fe2O3", {"ordering": "FiM", "total_magnetization_normalized_formula_units": 4.0,
                                       "band_gap": 2.0, "energy_above_hull": 0.0}),
    make_record("mp-24972", "Fe4O6", {"ordering": "AFM", "energy_above_hull": 0.1}),
    make_record("mp-13", "Fe", {"ordering": "FM", "elastic_tensor": {"raw": TENSOR},
                                "bulk_modulus": {"vrh": 187.5}, "total_magnetization_normalized_formula_units": 2.2}),
    make_record("mp-30", "Cu", {"ordering": "NM", "bulk_modulus": {"vrh": 140.0}, "band_gap": 0.0}),
    make_record("mp-19017", "LiFePO4", {"band_gap": 3.7, "ordering": "FM"}),
    make_record("mp-1", "Cs", {}),
]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MaterialsStore]:
    built = MaterialsStore.build(tmp_path / "store", RECORDS, EMBEDDER)
    yield built
    built.close()


def ids(records: list[MaterialRecord]) -> list[str]:
    return [r.material_id for r in records]


def test_build_and_reopen_round_trip(store: MaterialsStore, tmp_path: Path) -> None:
    assert len(store) == len(RECORDS) and store.embedder_name == "hashing-256"
    assert store.generation.name == "gen-0001" and not list(store.directory.glob(".tmp-*"))
    reopened = MaterialsStore.open(tmp_path / "store")  # no embedder: the recorded spec is used on first search
    assert reopened.records() == RECORDS and reopened.get("mp-13").fields == RECORDS[7].fields
    assert reopened.search("ferrimagnetic iron oxide", k=1)[0][0].material_id == "mp-19770"
    reopened.close()
    rebuilt = MaterialsStore.build(tmp_path / "store", RECORDS[:3], EMBEDDER)  # a new generation replaces the old
    assert rebuilt.generation.name == "gen-0002" and len(rebuilt) == 3
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [".lock", "CURRENT", "gen-0002"]
    rebuilt.close()


def test_by_formula_orders_polymorphs_and_matches_reduced_formulas(store: MaterialsStore) -> None:
    assert ids(store.by_formula("TiO2")) == ["mp-390", "mp-554278", "mp-1041565", "mp-2657", "mp-9999"]
    assert ids(store.by_formula("Ti2O4")) == ids(store.by_formula("TiO2"))  # same reduced formula
    assert ids(store.by_formula("Fe2O3")) == ["mp-19770", "mp-24972"]  # Fe4O6 reduces to Fe2O3
    assert ids(store.by_formula(" Fe4O6 ")) == ["mp-19770", "mp-24972"]
    assert store.by_formula("fe2o3") == [] and store.by_formula("NaCl") == [] and store.by_formula("") == []


def test_suggest_formulas_for_did_you_mean(store: MaterialsStore) -> None:
    assert store.suggest_formulas("fe2o3")[0] == "Fe2O3"
    assert store.suggest_formulas("O3Fe2")[0] == "Fe2O3"  # pymatgen reads another element order
    assert "TiO2" in store.suggest_formulas("TiO3") and len(store.suggest_formulas("TiO3", n=1)) == 1
    assert store.suggest_formulas("Zz9") == []


def test_by_elements(store: MaterialsStore) -> None:
    assert ids(store.by_elements(["Fe", "O"], exact=True)) == ["mp-19770", "mp-24972"]
    assert ids(store.by_elements("O-Fe")) == ["mp-19770", "mp-24972", "mp-19017"]  # fewest elements first
    assert ids(store.by_elements(["iron"])) == ["mp-13", "mp-19770", "mp-24972", "mp-19017"]
    assert ids(store.by_elements("fe", exact=True)) == ["mp-13"] and store.by_elements(["Na"]) == []
    assert len(store.by_elements(["O"], k=2)) == 2
    with pytest.raises(UnknownElement, match=r"'Irn' is not a chemical element.*Did you mean 'Fe \(iron\)'"):
        store.by_elements(["Irn"])
    with pytest.raises(InvalidMaterialsQuery, match="no elements given"):
        store.by_elements([])


def test_by_property(store: MaterialsStore) -> None:
    assert ids(store.by_property("band_gap", min=1.9, max=3)) == ["mp-19770", "mp-390"]
    assert ids(store.by_property("band_gap", max=0)) == ["mp-30"]
    assert ids(store.by_property("band_gap", k=2, descending=True)) == ["mp-19017", "mp-390"]
    assert ids(store.by_property("bulk_modulus", min=150)) == ["mp-13"]  # alias of bulk_modulus_vrh
    assert ids(store.by_property("total_magnetization_normalized_formula_units", min=3)) == ["mp-19770"]
    assert ids(store.by_property("nelements", min=3)) == ["mp-19017"]
    assert ids(store.by_property("ordering", equals="ferromagnetic")) == ["mp-13", "mp-19017"]
    assert ids(store.by_property("ordering", equals="FiM")) == ["mp-19770"] and store.by_property("band_gap", k=0) == []
    with pytest.raises(UnknownMaterialProperty, match=r"valid names are nelements, .* Did you mean 'band_gap'"):
        store.by_property("bandgap")
    with pytest.raises(InvalidMaterialsQuery, match="swap them"):
        store.by_property("band_gap", min=3, max=1)
    with pytest.raises(InvalidMaterialsQuery, match="pass equals='FM'"):
        store.by_property("ordering", min=1)
    with pytest.raises(InvalidMaterialsQuery, match="unknown magnetic ordering 'weird'"):
        store.by_property("ordering", equals="weird")


def test_get_and_material_not_found(store: MaterialsStore) -> None:
    assert store.get("mp-390").formula == "TiO2" and store.get(" mp-13 ").formula == "Fe"
    with pytest.raises(MaterialNotFound, match=r"no material with id 'mp-391'.*Did you mean 'mp-390'") as caught:
        store.get("mp-391")
    assert isinstance(caught.value, LookupError)
    with pytest.raises(MaterialNotFound, match=r"Did you mean 'mp-19770', 'mp-24972'"):
        store.get("Fe2O3")  # a formula where an id belongs
    assert store.suggest_ids("19770")[0] == "mp-19770"


def test_search_ranks_by_summary(store: MaterialsStore) -> None:
    hits = store.search("antiferromagnetic", k=3)
    assert hits[0][0].material_id == "mp-24972" and hits[0][1] >= hits[1][1] >= hits[2][1]
    assert store.search("elastic tensor bulk modulus", k=2)[0][0].material_id == "mp-13"
    assert len(store.search("anything", k=100)) == len(RECORDS)
    assert store.search("   ") == [] and store.search("iron", k=0) == []


def test_build_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidMaterialsStore, match="at least one record"):
        MaterialsStore.build(tmp_path / "empty", [], EMBEDDER)
    with pytest.raises(InvalidMaterialsStore, match="'mp-390' appears twice"):
        MaterialsStore.build(tmp_path / "dup", [RECORDS[1], RECORDS[0], RECORDS[1]], EMBEDDER)
    assert not (tmp_path / "dup" / "CURRENT").exists()


def test_missing_and_corrupt_stores(store: MaterialsStore, tmp_path: Path) -> None:
    directory = store.directory
    store.close()
    with pytest.raises(MaterialsStoreNotFound, match="no materials store in"):
        MaterialsStore.open(tmp_path / "nowhere")
    with pytest.raises(MaterialsEmbedderMismatch, match="embedded with 'hashing-256'"):
        MaterialsStore.open(directory, HashingEmbedder(64))
    generation = directory / "gen-0001"
    index = (generation / "index.faiss").read_bytes()
    (generation / "index.faiss").write_bytes(index[: len(index) // 2])
    with pytest.raises(CorruptMaterialsStore, match=r"index\.faiss is damaged: FAISS cannot read it"):
        MaterialsStore.open(directory)
    (generation / "index.faiss").write_bytes(index)
    db = sqlite3.connect(generation / "materials.db")
    with db:
        db.execute("DELETE FROM records WHERE material_id = 'mp-1'")
    db.close()
    with pytest.raises(CorruptMaterialsStore, match=r"materials\.db is damaged: holds 10 records, the manifest says"):
        MaterialsStore.open(directory)
    (generation / "materials.db").write_bytes(b"not a database" * 100)
    with pytest.raises(CorruptMaterialsStore, match="SQLite cannot read it"):
        MaterialsStore.open(directory)
    (generation / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(CorruptMaterialsStore, match=r"manifest\.json is damaged: not valid JSON"):
        MaterialsStore.open(directory)
    (directory / "CURRENT").write_text("gen-0009\n", encoding="utf-8")
    with pytest.raises(CorruptMaterialsStore, match="names 'gen-0009'"):
        MaterialsStore.open(directory)


def test_failed_build_keeps_the_previous_store(store: MaterialsStore) -> None:
    class Broken(HashingEmbedder):
        def encode(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
            raise RuntimeError("embedder died")

    with pytest.raises(RuntimeError, match="embedder died"):
        MaterialsStore.build(store.directory, RECORDS[:2], Broken(256))
    assert not list(store.directory.glob(".tmp-*")) and not (store.directory / "gen-0002").exists()
    assert len(MaterialsStore.open(store.directory)) == len(RECORDS)


def test_default_store_builds_the_packaged_sample_once(home: Path) -> None:
    store = default_materials_store(home, EMBEDDER)
    assert len(store) == 80 and store.directory.parent == home / "materials"
    first = json.loads(sample_records_path().read_text(encoding="utf-8").splitlines()[0])
    assert store.records()[0].material_id == first["material_id"]
    titania = store.by_formula("TiO2")
    energies = [r.number("formation_energy_per_atom") for r in titania]
    assert len(titania) >= 3 and energies == sorted(energies)
    built = os.stat(store.generation).st_mtime_ns
    again = default_materials_store(home, EMBEDDER)  # reopened, not rebuilt
    assert again.generation == store.generation and os.stat(again.generation).st_mtime_ns == built
    (store.generation / "manifest.json").unlink()  # damaged: rebuilt on the next use
    assert len(default_materials_store(home, EMBEDDER)) == 80
