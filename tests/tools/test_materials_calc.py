"""The exact materials calculators against hand-computed values, the shared MP records and every error case."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from agentdistill.tools.materials_calc import (
    SYMMETRY_RTOL,
    BadFormula,
    BadTensor,
    BadUnit,
    composition_info,
    convert,
    elastic_moduli,
    known_units,
    suggest_formulas,
)


def cubic(c11: float, c12: float, c44: float) -> list[list[float]]:
    """A cubic crystal's 6x6 Voigt stiffness tensor."""
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    np.fill_diagonal(c[:3, :3], c11)
    np.fill_diagonal(c[3:, 3:], c44)
    return c.tolist()


def mp_elastic_records(shared_data: Path) -> list[dict]:
    lines = (shared_data / "materials" / "mp_records_shared.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("elastic_tensor")]


def test_a_cubic_crystal_matches_the_closed_forms() -> None:
    # C11=250, C12=150, C44=100 GPa. Cubic: K_V = K_R = (C11 + 2 C12)/3 = 550/3; G_V = (C11 - C12 + 3 C44)/5 = 80;
    # G_R = 5 (C11 - C12) C44 / (4 C44 + 3 (C11 - C12)) = 50000/700.
    m = elastic_moduli(cubic(250, 150, 100))
    assert m.k_voigt == pytest.approx(550 / 3) and m.k_reuss == pytest.approx(550 / 3)
    assert m.k_hill == pytest.approx(550 / 3)
    assert m.g_voigt == pytest.approx(80) and m.g_reuss == pytest.approx(500 / 7)
    g_hill = (80 + 500 / 7) / 2
    assert m.g_hill == pytest.approx(g_hill)
    assert m.young_modulus == pytest.approx(9 * (550 / 3) * g_hill / (550 + g_hill))  # 199.658 GPa
    assert m.young_modulus == pytest.approx(199.658, abs=1e-3)
    assert m.poisson_ratio == pytest.approx((550 - 2 * g_hill) / (2 * (550 + g_hill)))  # 0.318493
    assert m.poisson_ratio == pytest.approx(0.318493, abs=1e-6)
    assert m.universal_anisotropy == pytest.approx(5 * 80 / (500 / 7) - 5)  # 0.6
    assert m.mechanically_stable


def test_an_isotropic_solid_has_lame_moduli_and_no_anisotropy() -> None:
    lam, mu = 100.0, 50.0  # C11 = lambda + 2 mu, C12 = lambda, C44 = mu
    m = elastic_moduli(np.array(cubic(lam + 2 * mu, lam, mu)))  # an ndarray works too
    assert m.k_voigt == pytest.approx(lam + 2 * mu / 3) and m.k_reuss == pytest.approx(lam + 2 * mu / 3)
    assert m.g_voigt == pytest.approx(mu) and m.g_reuss == pytest.approx(mu)
    assert m.young_modulus == pytest.approx(mu * (3 * lam + 2 * mu) / (lam + mu))
    assert m.poisson_ratio == pytest.approx(lam / (2 * (lam + mu)))
    assert m.universal_anisotropy == pytest.approx(0, abs=1e-12)


def test_every_shared_mp_tensor_gives_the_recorded_moduli(shared_data: Path) -> None:
    records = mp_elastic_records(shared_data)
    assert len(records) >= 20
    for r in records:
        m = elastic_moduli(r["elastic_tensor"]["raw"])
        recorded = r["bulk_modulus"]  # MP rounds to 3 decimals
        assert m.k_voigt == pytest.approx(recorded["voigt"], abs=1e-3), r["material_id"]
        assert m.k_reuss == pytest.approx(recorded["reuss"], abs=1e-3), r["material_id"]
        assert m.k_hill == pytest.approx(recorded["vrh"], abs=1e-3), r["material_id"]
        assert m.poisson_ratio == pytest.approx(r["homogeneous_poisson"], abs=1e-3), r["material_id"]
        assert m.universal_anisotropy == pytest.approx(r["universal_anisotropy"], abs=1e-3), r["material_id"]
    unstable = {r["material_id"] for r in records if not elastic_moduli(r["elastic_tensor"]["raw"]).mechanically_stable}
    assert "mp-1008728" in unstable and "mp-102" not in unstable  # Ni with C11 < C12 fails the Born criterion


def test_the_ni_tensor_agrees_with_pymatgen_elastic_tensor(shared_data: Path) -> None:
    elasticity = pytest.importorskip("pymatgen.analysis.elasticity")  # not shipped in pymatgen-core
    raw = next(r for r in mp_elastic_records(shared_data) if r["material_id"] == "mp-1008728")["elastic_tensor"]["raw"]
    ours, theirs = elastic_moduli(raw), elasticity.ElasticTensor.from_voigt(raw)
    assert ours.k_voigt == pytest.approx(theirs.k_voigt) and ours.k_reuss == pytest.approx(theirs.k_reuss)
    assert ours.g_voigt == pytest.approx(theirs.g_voigt) and ours.g_reuss == pytest.approx(theirs.g_reuss)
    assert ours.poisson_ratio == pytest.approx(theirs.homogeneous_poisson)
    assert ours.universal_anisotropy == pytest.approx(theirs.universal_anisotropy)


def test_near_symmetric_tensors_pass_and_bad_tensors_say_what_is_wrong() -> None:
    good = cubic(250, 150, 100)
    nearly = [row[:] for row in good]
    nearly[0][1] += 0.5 * SYMMETRY_RTOL * 250  # within the stated tolerance: averaged away
    assert elastic_moduli(nearly).k_voigt == pytest.approx(elastic_moduli(good).k_voigt, rel=1e-5)
    asymmetric = [row[:] for row in good]
    asymmetric[0][1] = 151.0
    cases = {
        "6 rows of 6 numbers": good[:5],
        "row 3 of the tensor must hold 6 numbers; got 5": [*good[:2], good[2][:5], *good[3:]],
        "got a str.": "not a tensor",
        "got a float.": [*good[:5], 1.0],
        "C[2][3] is 'x'": [good[0], [*good[1][:2], "x", *good[1][3:]], *good[2:]],
        "C[1][1] is nan": [[math.nan, *good[0][1:]], *good[1:]],
        "C[6][6] is True": [*good[:5], [*good[5][:5], True]],
        "not symmetric: C12 = 151 but C21 = 150": asymmetric,
        "singular": [[0.0] * 6 for _ in range(6)],
    }
    for expected, tensor in cases.items():
        with pytest.raises(BadTensor, match="tolerance" if "symmetric" in expected else None) as caught:
            elastic_moduli(tensor)  # type: ignore[arg-type]
        assert expected in str(caught.value), (expected, str(caught.value))
    with pytest.raises(BadTensor, match="singular"):
        elastic_moduli(cubic(250, 150, 0))  # no shear stiffness: C is not invertible


def test_fe2o3_composition_by_hand() -> None:
    info = composition_info("Fe2O3")
    fe, o = 55.845, 15.9994  # IUPAC standard atomic weights, as pymatgen uses them
    assert round(info.molar_mass, 2) == 159.69 and info.molar_mass == pytest.approx(2 * fe + 3 * o)
    assert info.reduced_formula == "Fe2O3" and info.elements == ("Fe", "O") and info.n_atoms == 5
    assert info.amounts == {"Fe": 2.0, "O": 3.0}
    assert info.weight_fractions["Fe"] == pytest.approx(2 * fe / (2 * fe + 3 * o))  # 0.6994
    assert info.weight_fractions["O"] == pytest.approx(0.300574, abs=1e-6)
    assert info.atomic_fractions == pytest.approx({"Fe": 0.4, "O": 0.6})
    doubled = composition_info(" Fe4O6 ")
    assert doubled.reduced_formula == "Fe2O3" and doubled.n_atoms == 10
    assert doubled.molar_mass == pytest.approx(2 * info.molar_mass)
    sulfate = composition_info("NaFe(SO4)2")
    assert sulfate.reduced_formula == "NaFe(SO4)2" and sulfate.amounts["O"] == 8
    assert sum(sulfate.weight_fractions.values()) == pytest.approx(1)


def test_bad_formulas_name_the_problem_and_a_fix() -> None:
    cases = {
        "": "formula is empty",
        "   ": "formula is empty",
        "x" * 101: "at most 100",
        "mp-13": "is a material id",
        "fe2o3": "did you mean 'Fe2O3'",
        "FE2O3": "unknown element(s) 'E'; did you mean 'Fe2O3'",
        "Xx2O3": "unknown element(s) 'Xx'",
        "Fe0O": "gives Fe an amount of 0",
        "Fe2O3)": "is not a chemical formula",
        "Fe2O-3": "is not a chemical formula",
        "iron": "did you mean 'Fe'",
    }
    for formula, expected in cases.items():
        with pytest.raises(BadFormula) as caught:
            composition_info(formula)
        assert expected in str(caught.value), (formula, str(caught.value))
    with pytest.raises(BadFormula, match="not text"):
        composition_info(123)  # type: ignore[arg-type]
    with pytest.raises(BadFormula) as caught:
        composition_info("co2")
    assert caught.value.problem.startswith("'co2' is not a chemical formula")
    assert caught.value.suggestions == suggest_formulas("co2") == ["Co2", "CO2"]
    assert suggest_formulas("Fe2O3") == []


def test_unit_conversions() -> None:
    assert convert(1, "eV/atom", "kJ/mol") == pytest.approx(96.48533212)
    assert convert(96.48533212, "kJ/mol", "eV/atom") == pytest.approx(1)
    assert convert(-250, "meV/atom", "kJ/mol") == pytest.approx(-24.12133303)
    assert convert(1, "kcal/mol", "kJ/mol") == pytest.approx(4.184)
    assert convert(1, "eV", "kcal/mol") == pytest.approx(23.0605478)
    assert convert(1, "eV", "J") == pytest.approx(1.602176634e-19, rel=1e-12)
    assert convert(1500, "meV", "eV") == pytest.approx(1.5)
    assert convert(1, "GPa", "MPa") == pytest.approx(1000) and convert(1, "GPa", "Pa") == pytest.approx(1e9)
    assert convert(1, "GPa", "bar") == pytest.approx(1e4) and convert(1, "GPa", "kbar") == pytest.approx(10)
    assert convert(1, "GPa", "psi") == pytest.approx(145037.738, rel=1e-8)
    assert convert(1, "atm", "bar") == pytest.approx(1.01325)
    assert convert(1, "nm", "Å") == pytest.approx(10) and convert(1, "Å", "pm") == pytest.approx(100)
    assert convert(1, "Å", "m") == pytest.approx(1e-10) and convert(1, "bohr", "Å") == pytest.approx(0.529177210903)
    assert convert(1, "amu", "g/mol") == pytest.approx(1, rel=1e-9) and convert(1, "kg/mol", "g/mol") == 1000
    assert convert(2, "angstrom", " nm ") == pytest.approx(0.2) and convert(1, "A", "Å") == 1
    assert {"eV", "kJ/mol", "GPa", "psi", "Å", "amu"} <= set(known_units())


def test_unit_errors_are_clear() -> None:
    cases = {
        ("MeV", "eV"): "unknown unit 'MeV'. Did you mean 'eV', 'meV'",
        ("mev", "eV"): "unknown unit 'mev'",  # mega or milli: refused, never guessed
        ("eV", "furlong"): "Known units: eV",
        ("GPa", "nm"): "cannot convert 'GPa' (pressure) to 'nm' (length)",
        ("eV/atom", "eV"): "(energy per atom) to 'eV' (energy)",
    }
    for (source, target), expected in cases.items():
        with pytest.raises(BadUnit) as caught:
            convert(1, source, target)
        assert expected in str(caught.value), str(caught.value)
    for bad in ("1", math.inf, True, None):
        with pytest.raises(BadUnit, match="finite number"):
            convert(bad, "eV", "meV")  # type: ignore[arg-type]
