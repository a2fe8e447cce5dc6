"""Loading MP-shaped JSONL: good records, every kind of bad line (file:line:field in the message), the samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.memory.materials import (
    InvalidMaterialRecord,
    load_records,
    make_record,
    sample_records_path,
    stability_key,
    summary,
)

TENSOR = [[float(i == j) * 100 for j in range(6)] for i in range(6)]
GOOD = [
    {"material_id": "mp-19770", "formula_pretty": "Fe2O3", "ordering": "FiM", "band_gap": 2.1,
     "total_magnetization_normalized_formula_units": 4.0, "energy_above_hull": 0.0},
    {"material_id": "mp-24972", "formula_pretty": "Fe4O6", "ordering": "AFM", "energy_above_hull": 0.05},
    {"material_id": "mp-13", "formula_pretty": "Fe", "elastic_tensor": {"raw": TENSOR, "ieee_format": TENSOR},
     "bulk_modulus": {"voigt": 190.0, "reuss": 185.0, "vrh": 187.5}, "thermal_conductivity": None},
    {"material_id": "mp-1179195", "composition": {"Si": 20.0, "O": 30.0}},
]  # fmt: skip


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_loads_records_with_derived_formula_fields(tmp_path: Path) -> None:
    records = load_records(write(tmp_path / "mp.jsonl", [*GOOD[:2], "   ", *GOOD[2:]]))
    assert [r.material_id for r in records] == ["mp-19770", "mp-24972", "mp-13", "mp-1179195"]
    hematite, fe4o6, iron, silica = records
    assert (hematite.formula, hematite.reduced_formula, hematite.elements, hematite.chemsys) == (
        "Fe2O3", "Fe2O3", ("Fe", "O"), "Fe-O"
    )  # fmt: skip
    assert (fe4o6.formula, fe4o6.reduced_formula) == ("Fe4O6", "Fe2O3")
    assert hematite.fields["band_gap"] == 2.1 and "material_id" not in hematite.fields
    assert hematite.number("total_magnetization_normalized_formula_units") == 4.0 and hematite.nelements == 2
    assert iron.bulk_modulus_vrh == 187.5 and iron.number("band_gap") is None
    assert iron.get("thermal_conductivity") is None and "thermal_conductivity" in iron.fields
    assert silica.formula == "Si2O3" and silica.chemsys == "O-Si"  # derived from composition
    assert hematite.to_dict() == GOOD[0]
    assert len({hematite, make_record("mp-19770", "Fe2O3", hematite.fields)}) == 1  # hashable despite `fields`


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"material_id": "mp-1", "formula_pretty": "Fe2O3",', None, "not valid JSON"),
        ('["mp-1", "Fe2O3"]', None, "expected a JSON object"),
        ({"formula_pretty": "Fe2O3"}, "material_id", "non-empty string id"),
        ({"material_id": "  ", "formula_pretty": "Fe2O3"}, "material_id", "non-empty string id"),
        ({"material_id": "mp-1", "formula_pretty": "Fe2O3("}, "formula_pretty", "pymatgen cannot parse"),
        ({"material_id": "mp-1", "formula_pretty": "Xx2O"}, "formula_pretty", "no real element"),
        ({"material_id": "mp-1", "formula_pretty": "fe2o3"}, "formula_pretty", "Fe2O3"),
        ({"material_id": "mp-1", "formula_pretty": 12}, "formula_pretty", "chemical formula string"),
        ({"material_id": "mp-1", "band_gap": 1.0}, "formula_pretty", 'add "formula_pretty"'),
        ({"material_id": "mp-1", "composition": {"Qq": 1}}, "composition", "no real element"),
        ({"material_id": "mp-1", "composition": []}, "composition", "element -> amount"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "band_gap": "wide"}, "band_gap", "expected a finite number"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "band_gap": True}, "band_gap", "expected a finite number"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "ordering": "ferromagnetic"}, "ordering", "write 'FM'"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "ordering": "Unknown"}, "ordering", "NM, FM, FiM, AFM"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "elastic_tensor": {"raw": TENSOR[:5]}},
         "elastic_tensor", "elastic_tensor.raw is 5 rows: expected a 6x6"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "elastic_tensor": {"raw": [[*r[:5], "x"] for r in TENSOR]}},
         "elastic_tensor", "elastic_tensor.raw[0][5]"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "elastic_tensor": [1, 2]}, "elastic_tensor", "'raw'"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "bulk_modulus": {"vrh": "big"}}, "bulk_modulus", "vrh"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "is_stable": "yes"}, "is_stable", "true, false or null"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "nsites": 2.5}, "nsites", "whole number"),
        ({"material_id": "mp-1", "formula_pretty": "Fe", "magmoms": [1.0, "up"]}, "magmoms", "list of numbers"),
    ],
)  # fmt: skip
def test_bad_line_names_file_line_and_field(tmp_path: Path, line: object, field: str | None, words: str) -> None:
    path = write(tmp_path / "bad.jsonl", [GOOD[0], "", line])
    with pytest.raises(InvalidMaterialRecord) as caught:
        load_records(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: ") and caught.value.line == 3 and caught.value.field == field
    if field is not None:
        assert f"field {field!r}" in message
    assert words in message


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.jsonl", [GOOD[0], GOOD[1], {**GOOD[1], "band_gap": 0.0}])
    with pytest.raises(InvalidMaterialRecord, match=r"dup\.jsonl:3: field 'material_id': 'mp-24972' already appeared "
                       r"on line 2"):  # fmt: skip
        load_records(path)


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + b'{"material_id": "mp-2", "formula_pretty": "Fe\xe9"}\n')
    with pytest.raises(InvalidMaterialRecord, match=r"latin1\.jsonl:2: not UTF-8"):
        load_records(path)
    with pytest.raises(InvalidMaterialRecord, match="no such file"):
        load_records(tmp_path / "nope.jsonl")


def test_skip_drops_only_formulaless_records(tmp_path: Path) -> None:
    rows = [GOOD[0], {"material_id": "mp-2", "decomposition_enthalpy": -0.3}, GOOD[3]]
    path = write(tmp_path / "partial.jsonl", rows)
    with pytest.raises(InvalidMaterialRecord, match=r"partial\.jsonl:2: field 'formula_pretty'"):
        load_records(path)
    assert [r.material_id for r in load_records(path, missing_formula="skip")] == ["mp-19770", "mp-1179195"]
    bad = write(tmp_path / "bad.jsonl", [{"material_id": "mp-3", "formula_pretty": "Q2"}])
    with pytest.raises(InvalidMaterialRecord):  # a formula that is there but wrong is never skipped
        load_records(bad, missing_formula="skip")


def test_stability_key_orders_polymorphs_missing_values_last() -> None:
    records = [
        make_record("mp-9", "TiO2", {"formation_energy_per_atom": -3.5}),
        make_record("mp-1008", "TiO2", {}),
        make_record("mp-20", "TiO2", {"energy_above_hull": 0.1, "formation_energy_per_atom": -3.0}),
        make_record("mp-100", "TiO2", {}),
        make_record("mp-3", "TiO2", {"energy_above_hull": 0.0, "formation_energy_per_atom": -3.2}),
        make_record("mp-4", "TiO2", {"formation_energy_per_atom": -3.6}),
    ]
    ordered = [r.material_id for r in sorted(records, key=stability_key)]
    assert ordered == ["mp-3", "mp-20", "mp-4", "mp-9", "mp-100", "mp-1008"]


def test_summary_names_elements_and_properties() -> None:
    record = make_record("mp-19770", "Fe2O3", GOOD[0])
    text = summary(record)
    assert text.startswith("Fe2O3 (mp-19770): iron, oxygen (Fe-O); ferrimagnetic (FiM), 4 muB/f.u.")
    assert "band gap 2.1 eV" in text and "0 eV/atom above hull (stable)" in text


def test_packaged_sample_is_clean() -> None:
    path = sample_records_path()
    records = load_records(path)  # strict: the packaged sample has no line to skip
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == len(lines) == 80
    elastic = [r for r in records if r.get("elastic_tensor") is not None]
    assert len(elastic) == 20 and all(r.bulk_modulus_vrh for r in elastic)
    assert {r.get("ordering") for r in records} >= {"NM", "FM", "FiM", "AFM"}
    by_formula: dict[str, int] = {}
    for record in records:
        by_formula[record.reduced_formula] = by_formula.get(record.reduced_formula, 0) + 1
    assert by_formula["TiO2"] >= 3 and by_formula["FePO4"] >= 3  # polymorphs to order
    assert (path.parent / "MATERIALS_SAMPLE_LICENSE.md").is_file()


def test_every_line_of_the_shared_file_loads(shared_data: Path) -> None:
    path = shared_data / "materials" / "mp_records_shared.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with_formula = [r["material_id"] for r in rows if r.get("formula_pretty") or r.get("composition")]
    records = load_records(path, missing_formula="skip")
    assert [r.material_id for r in records] == with_formula and len(rows) == 225
    assert all(r.formula == row["formula_pretty"] for r, row in zip(records, (x for x in rows if x.get(
        "formula_pretty") or x.get("composition")), strict=True) if "formula_pretty" in row)  # fmt: skip
    with pytest.raises(InvalidMaterialRecord, match="field 'formula_pretty'"):  # strict: formula-less lines are named
        load_records(path)


def test_the_sample_script_reproduces_the_packaged_file(shared_data: Path, tmp_path: Path) -> None:
    from agentdistill.benchmarks.make_materials_sample import main

    main(["--shared", str(shared_data), "--out", str(tmp_path)])
    assert (tmp_path / "materials_sample.jsonl").read_bytes() == sample_records_path().read_bytes()
