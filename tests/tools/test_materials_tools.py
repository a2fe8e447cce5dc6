"""The model-facing materials tools over a small in-test store with the MaterialsStore methods."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import pytest

from agentdistill.memory.materials import MaterialNotFound, MaterialRecord, make_record
from agentdistill.memory.materials.queries import element_symbols, ordering_code, property_column
from agentdistill.tools.base import Tool, ToolCall, run_tool
from agentdistill.tools.materials import MaterialsLookup, make_materials_tools


def cubic(c11: float, c12: float, c44: float) -> list[list[float]]:
    rows = [[c12] * 3 + [0.0] * 3 for _ in range(3)] + [[0.0] * 6 for _ in range(3)]
    for i in range(3):
        rows[i][i], rows[i + 3][i + 3] = c11, c44
    return rows


class FakeStore:
    """The MaterialsStore methods over a list, with the same contracts: most stable first, the store's argument
    readers and errors (UnknownElement, UnknownMaterialProperty, MaterialNotFound)."""

    def __init__(self, records: Sequence[MaterialRecord]) -> None:
        self.records = list(records)

    def by_formula(self, formula: str) -> list[MaterialRecord]:
        hits = [r for r in self.records if formula in (r.formula, r.reduced_formula)]
        return sorted(hits, key=lambda r: r.fields.get("energy_above_hull", float("inf")))

    def by_elements(self, elements: Sequence[str], *, exact: bool = False) -> list[MaterialRecord]:
        wanted = set(element_symbols(elements))
        return [r for r in self.records if (wanted == set(r.elements) if exact else wanted <= set(r.elements))]

    def by_property(
        self, name: str, min: float | None = None, max: float | None = None, k: int = 20, *, equals: str | None = None
    ) -> list[MaterialRecord]:
        column = property_column(name)
        if column == "ordering":
            return [r for r in self.records if r.fields.get("ordering") == ordering_code(equals or "")][:k]

        def value(r: MaterialRecord) -> Any:
            v = r.fields.get("bulk_modulus" if column == "bulk_modulus_vrh" else column)
            return v.get("vrh") if isinstance(v, dict) else v

        hits = [r for r in self.records if isinstance(value(r), int | float)]
        hits = [r for r in hits if (min is None or value(r) >= min) and (max is None or value(r) <= max)]
        return sorted(hits, key=value)[:k]

    def get(self, material_id: str) -> MaterialRecord:
        for r in self.records:
            if r.material_id == material_id:
                return r
        raise MaterialNotFound(material_id, [])

    def search(self, text: str, k: int = 10) -> list[MaterialRecord]:
        return [r for r in self.records if text.lower() in str(r.fields).lower()][:k]

    def suggest_formulas(self, formula: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(formula, sorted({r.formula for r in self.records}), n=n, cutoff=0.5)


RECORDS = [
    make_record(
        "mp-24972",
        "Fe2O3",
        {
            "ordering": "FM",
            "energy_above_hull": 0.052,
            "is_stable": False,
            "total_magnetization_normalized_formula_units": 10.0,
        },
    ),
    make_record(
        "mp-19770",
        "Fe2O3",
        {
            "ordering": "AFM",
            "energy_above_hull": 0.0,
            "is_stable": True,
            "band_gap": 2.0,
            "formation_energy_per_atom": -1.7,
            "symmetry": {"crystal_system": "Trigonal", "symbol": "R-3c", "number": 167},
            "llamp_sources": ["nb.ipynb"],
        },
    ),
    make_record(
        "mp-13",
        "Fe",
        {"elastic_tensor": {"raw": cubic(250, 150, 100)}, "bulk_modulus": {"voigt": 183.333, "vrh": 183.333}},
    ),
    make_record("mp-23", "Ni", {"elastic_tensor": {"ieee_format": cubic(130, 220, 150)}}),
    make_record("mp-24", "Ni", {"bulk_modulus": {"voigt": 190.0, "reuss": 188.0, "vrh": 189.0}}),
    make_record("mp-25", "Ni", {"magmoms": [0.6] * 12, "composition": {"Ni": 4.0}}),
    make_record("mp-30", "Cu", {"elastic_tensor": {"raw": [[1.0] * 6] * 6}}),
]


@pytest.fixture
def tools() -> dict[str, Tool]:
    store: MaterialsLookup = FakeStore(RECORDS)
    return {t.name: t for t in make_materials_tools(store)}


def call(tools: dict[str, Tool], name: str, **args: Any) -> str:
    result = run_tool(tools, ToolCall(name, args))
    assert result.error_kind in (None, "tool_error"), result.text  # the arguments always bind
    return result.text


def test_tools_and_their_schemas(tools: dict[str, Tool]) -> None:
    assert list(tools) == [
        "search_formula",
        "search_elements",
        "search_property",
        "get_record",
        "composition",
        "elastic_moduli",
        "convert_units",
    ]
    assert tools["search_property"].parameters["properties"]["min"] == {
        "type": "number",
        "default": None,
        "nullable": True,
    }
    assert "Properties: nelements, nsites, energy_above_hull," in tools["search_property"].description
    assert tools["elastic_moduli"].parameters["properties"]["tensor"]["items"] == {"type": "number"}
    assert tools["get_record"].parameters["required"] == ["material_id"]


def test_search_formula_lists_polymorphs_most_stable_first(tools: dict[str, Tool]) -> None:
    text = call(tools, "search_formula", formula="Fe2O3")
    lines = text.splitlines()
    assert lines[0] == "Fe2O3 (molar mass 159.6882 g/mol): 2 record(s), most stable first:"
    assert lines[1] == (
        "- mp-19770 Fe2O3 | R-3c | ordering=AFM | energy_above_hull=0 eV/atom | "
        "formation_energy_per_atom=-1.7 eV/atom | band_gap=2 eV | stable"
    )
    assert lines[2] == (
        "- mp-24972 Fe2O3 | ordering=FM | magnetization=10 μB/f.u. | energy_above_hull=0.052 eV/atom | unstable"
    )
    iron = call(tools, "search_formula", formula="Fe")  # one search answers the usual questions, bulk modulus too
    assert iron.splitlines()[1] == "- mp-13 Fe | bulk_modulus_vrh=183.333 GPa"
    fe4o6 = call(tools, "search_formula", formula="Fe4O6")  # found by its reduced formula; the mass is Fe4O6's
    assert "mp-19770" in fe4o6 and fe4o6.startswith("Fe4O6 (molar mass 319.3764 g/mol)")
    assert call(tools, "search_formula", formula="Fe3O4").startswith("No record for Fe3O4. Did you mean 'Fe2O3'")
    lowercase = call(tools, "search_formula", formula="fe2o3")
    assert lowercase == "Error: 'fe2o3' is not a chemical formula (fe2o3 is an invalid formula!); did you mean 'Fe2O3'?"
    unknown = call(tools, "search_formula", formula="Xx2O3")  # the store's own guess replaces "write a formula"
    assert unknown == "Error: 'Xx2O3' names unknown element(s) 'Xx'; did you mean 'Fe2O3'?"
    assert call(tools, "search_formula", formula="Xx2O3 ") == unknown
    assert "is a material id" in call(tools, "search_formula", formula="mp-13")
    assert call(tools, "search_formula", formula=" ").startswith("Error: formula is empty")


def test_search_elements(tools: dict[str, Tool]) -> None:
    text = call(tools, "search_elements", elements=["Fe", "O"])
    assert text.startswith("2 record(s) containing Fe, O:") and "mp-19770" in text and "mp-13" not in text
    assert call(tools, "search_elements", elements=["fe", "o"]) == text  # element case is forgiven
    assert call(tools, "search_elements", elements=["Fe-O"]) == text
    exact = call(tools, "search_elements", elements=["Fe"], exact="true")
    assert exact.startswith("1 record(s) made of exactly Fe:") and "mp-13 Fe" in exact and "mp-19770" not in exact
    assert call(tools, "search_elements", elements=["Cu", "O"]) == "No record containing Cu, O. Try fewer elements."
    assert call(tools, "search_elements", elements=["iron", "oxygen"]) == text  # names too
    assert call(tools, "search_elements", elements=["Xx"]).startswith("Error: 'Xx' is not a chemical element")
    assert call(tools, "search_elements", elements=[]).startswith("Error: no elements given")


def test_search_property(tools: dict[str, Tool]) -> None:
    text = call(tools, "search_property", property="band_gap", min="1", max=3)
    assert text.splitlines()[0] == "1 record(s) with 1.0 <= band_gap <= 3.0 eV:"
    assert "mp-19770 Fe2O3 | R-3c | band_gap=2 eV" in text
    bulk = call(tools, "search_property", property="bulk modulus", min=185)
    assert bulk.startswith("1 record(s) with bulk_modulus_vrh >= 185.0 GPa:")
    assert "mp-24 Ni | bulk_modulus_vrh=189 GPa" in bulk and "mp-13" not in bulk
    assert call(tools, "search_property", property="band_gap", max=0.5) == "No record with band_gap <= 0.5 eV."
    assert call(tools, "search_property", property="band_gap").startswith("1 record(s) with a band_gap value:")
    unknown = call(tools, "search_property", property="bandgap")
    assert unknown.startswith("Error: unknown material property 'bandgap'") and "Did you mean 'band_gap'?" in unknown
    afm = call(tools, "search_property", property="ordering", equals="antiferromagnetic")
    assert afm.splitlines()[0] == "1 record(s) with ordering = antiferromagnetic:" and "mp-19770" in afm
    assert call(tools, "search_property", property="band_gap", min=3, max=1).startswith("Error: min (3.0) is greater")


def test_get_record(tools: dict[str, Tool]) -> None:
    summary = call(tools, "get_record", material_id="mp-19770")
    assert summary.splitlines()[0] == "mp-19770 Fe2O3 (chemsys Fe-O)"
    assert "symmetry: Trigonal R-3c (#167)" in summary and "is_stable: true" in summary
    assert "llamp_sources" not in summary
    asked = call(tools, "get_record", material_id="mp-19770", fields=["band_gap", "ordering", "density", "bandgp"])
    assert asked.splitlines()[1:] == [
        "band_gap: 2 eV",
        "ordering: AFM",
        "density: not recorded for mp-19770",
        "unknown field(s): 'bandgp' (did you mean 'band_gap'?)",
    ]
    assert call(tools, "get_record", material_id="mp-19770", fields=["colour"]).startswith(
        "Error: unknown field(s) 'colour'. mp-19770 has: ordering, energy_above_hull"
    )
    listed = call(tools, "get_record", material_id="mp-25")
    assert "magmoms: [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, ... (12 in all)]" in listed and "Ni=4" in listed
    assert "use elastic_moduli" in call(tools, "get_record", material_id="mp-13", fields=["elastic_tensor"])
    assert call(tools, "get_record", material_id="mp-999") == (
        "Error: no material with id 'mp-999' in the store. Find ids with search_formula or search_elements."
    )
    assert call(tools, "get_record", material_id="Fe2O3") == (
        "Error: 'Fe2O3' is not a material id (like 'mp-13'). Records of Fe2O3: mp-19770, mp-24972."
    )


def test_composition(tools: dict[str, Tool]) -> None:
    assert call(tools, "composition", formula="Fe2O3").splitlines() == [
        "Fe2O3 (reduced Fe2O3): 5 atoms, molar mass 159.6882 g/mol",
        "Fe: 2 atoms, atomic fraction 0.4000, weight fraction 0.6994 (69.94 wt%)",
        "O: 3 atoms, atomic fraction 0.6000, weight fraction 0.3006 (30.06 wt%)",
        "records: mp-19770, mp-24972",
    ]
    assert call(tools, "composition", formula="Fe3O4").endswith("records: none with this formula")
    assert call(tools, "composition", formula="FE2O3") == (
        "Error: 'FE2O3' names unknown element(s) 'E'; did you mean 'Fe2O3'?"
    )


def test_elastic_moduli(tools: dict[str, Tool]) -> None:
    text = call(tools, "elastic_moduli", material_id="mp-13")
    assert text.splitlines() == [
        "mp-13 Fe (elastic_tensor.raw, GPa), Voigt / Reuss / Hill averages:",
        "bulk modulus K: 183.333 / 183.333 / 183.333 GPa",
        "shear modulus G: 80.000 / 71.429 / 75.714 GPa",
        "Young's modulus (Hill) 199.658 GPa; Poisson ratio (Hill) 0.318; universal anisotropy 0.600",
        "recorded bulk_modulus: voigt=183.333, vrh=183.333 GPa",
    ]
    flat = [x for row in cubic(250, 150, 100) for x in row]
    given = call(tools, "elastic_moduli", tensor=[int(x) for x in flat])
    assert given.splitlines()[0] == "the given tensor, Voigt / Reuss / Hill averages:" and "183.333" in given
    unstable = call(tools, "elastic_moduli", material_id="mp-23")
    assert "elastic_tensor.ieee_format" in unstable and "not mechanically stable" in unstable
    assert call(tools, "elastic_moduli", material_id="mp-24") == (
        "mp-24 Ni has no elastic tensor, only its bulk modulus: voigt=190, reuss=188, vrh=189 GPa. "
        "Shear moduli etc. need the tensor."
    )
    assert call(tools, "elastic_moduli", material_id="mp-25") == (
        "mp-25 Ni has no elastic tensor or bulk modulus recorded. Records of Ni with one: mp-23."
    )
    assert call(tools, "elastic_moduli", material_id="mp-30").startswith("Error: mp-30 Cu (elastic_tensor.raw, GPa)")
    assert "singular" in call(tools, "elastic_moduli", material_id="mp-30")
    assert call(tools, "elastic_moduli", material_id="Ni") == (
        "Error: 'Ni' is not a material id (like 'mp-13'). Records of Ni: mp-23, mp-24, mp-25."
    )
    assert call(tools, "elastic_moduli").startswith("Error: pass exactly one of material_id")
    assert call(tools, "elastic_moduli", material_id="mp-13", tensor=flat).startswith("Error: pass exactly one")
    assert call(tools, "elastic_moduli", tensor=flat[:35]).startswith("Error: tensor has 35 numbers")
    asymmetric = flat[:1] + [151.0] + flat[2:]
    assert "not symmetric: C12 = 151 but C21 = 150" in call(tools, "elastic_moduli", tensor=asymmetric)


def test_convert_units(tools: dict[str, Tool]) -> None:
    assert (
        call(tools, "convert_units", value=1, from_unit="eV/atom", to_unit="kJ/mol") == "1 eV/atom = 96.48533212 kJ/mol"
    )
    assert call(tools, "convert_units", value="2.5", from_unit="GPa", to_unit="kbar") == "2.5 GPa = 25 kbar"
    assert call(tools, "convert_units", value=1, from_unit="GPa", to_unit="nm").startswith(
        "Error: cannot convert 'GPa' (pressure) to 'nm' (length)"
    )
    assert "Did you mean 'eV', 'meV'" in call(tools, "convert_units", value=1, from_unit="MeV", to_unit="eV")


def test_a_bad_argument_type_is_caught_before_the_tool(tools: dict[str, Tool]) -> None:
    result = run_tool(tools, ToolCall("convert_units", {"value": "a lot", "from_unit": "eV", "to_unit": "J"}))
    assert result.error_kind == "bad_arguments" and "'value' must be float" in result.text


def test_the_tools_over_the_real_store_of_the_packaged_sample(tmp_path) -> None:  # noqa: ANN001 - pytest's Path
    from agentdistill.memory.embedders import HashingEmbedder
    from agentdistill.memory.materials import MaterialsStore, load_records, sample_records_path

    store = MaterialsStore.build(tmp_path / "m", load_records(sample_records_path()), HashingEmbedder(256))
    by_name = {t.name: t for t in make_materials_tools(store)}
    iron = run_tool(by_name, ToolCall("search_formula", {"formula": "Fe"})).text
    assert "mp-13" in iron and iron.index("mp-13") < iron.index("mp-136")  # the stable bcc iron first
    moduli = run_tool(by_name, ToolCall("elastic_moduli", {"material_id": "mp-13"})).text
    assert "207.09" in moduli or "207.1" in moduli
    missing = run_tool(by_name, ToolCall("get_record", {"material_id": "mp-999999999"}))
    assert missing.text.startswith("Error:") or "no record" in missing.text.lower()
