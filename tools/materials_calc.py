"""Exact materials arithmetic for the materials tools: composition, elastic moduli, unit conversion.

Nothing here asks a model: composition arithmetic comes from pymatgen's `Composition` (IUPAC atomic masses),
the Voigt-Reuss-Hill averages from the closed formulas on a 6x6 Voigt stiffness tensor in GPa, and unit
conversions from fixed CODATA 2018 factors. Bad input raises a specific error (`BadFormula`, `BadTensor`,
`BadUnit`) whose message names what is wrong and a fix, so the tools can hand it to the model as it is.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element

from agentdistill.errors import AgentDistillError

SYMMETRY_RTOL = 1e-4  # |C_ij - C_ji| may be this fraction of the largest |C_kl| (DFT tensors are symmetric to ~1e-13)
SYMMETRY_ATOL_GPA = 1e-6  # ... or this many GPa, so an all-zero tensor is judged singular, not asymmetric
_MAX_CONDITION = 1e12  # above this condition number the compliance S = C^-1 is numerical noise
_MAX_FORMULA_CHARS = 100
_SYMBOLS = frozenset(e.symbol for e in Element)
_BY_NAME = {e.long_name.lower(): e.symbol for e in Element}  # "iron" -> Fe
_MATERIAL_ID = re.compile(r"^(?:mp|mvc)-\d+$", re.I)
_SYMBOL_IN_TEXT = re.compile(r"[A-Z][a-z]?")
_EXAMPLE = "write a formula like 'Fe2O3' or 'NaFe(SO4)2'."


class MaterialsCalcError(AgentDistillError):
    """Input a materials calculation cannot use; the message says what is wrong and how to fix it."""


class BadFormula(MaterialsCalcError):
    """A chemical formula pymatgen cannot read, or one naming an element that does not exist."""

    def __init__(self, problem: str, suggestions: Sequence[str] = (), fix: str = _EXAMPLE) -> None:
        hint = f"did you mean {', '.join(map(repr, suggestions))}?" if suggestions else fix
        super().__init__(f"{problem}; {hint}")
        self.problem, self.suggestions = problem, list(suggestions)


class BadTensor(MaterialsCalcError):
    """A stiffness tensor that is not a symmetric, invertible 6x6 matrix of numbers."""


class BadUnit(MaterialsCalcError):
    """A unit this module does not know, or a conversion between different dimensions."""


@dataclass(frozen=True)
class CompositionInfo:
    """A formula's composition; `amounts` and `molar_mass` are for the formula as written (Fe4O6 counts 10 atoms)."""

    formula: str  # pymatgen's normalised form of the input, e.g. "Fe2 O3"
    reduced_formula: str  # e.g. "Fe2O3" for Fe4O6
    elements: tuple[str, ...]  # in the order the formula names them
    amounts: Mapping[str, float]  # atoms of each element in the formula as written
    n_atoms: float
    molar_mass: float  # g/mol of the formula as written
    weight_fractions: Mapping[str, float]  # mass fraction of each element; sums to 1
    atomic_fractions: Mapping[str, float]  # fraction of the atoms; sums to 1


@dataclass(frozen=True)
class ElasticModuli:
    """Voigt, Reuss and Hill averages of a stiffness tensor, all in GPa except the dimensionless ones."""

    k_voigt: float
    k_reuss: float
    k_hill: float
    g_voigt: float
    g_reuss: float
    g_hill: float
    young_modulus: float  # E = 9 K G / (3K + G) from the Hill values
    poisson_ratio: float  # nu = (3K - 2G) / (2 (3K + G)) from the Hill values
    universal_anisotropy: float  # A_U = 5 G_V / G_R + K_V / K_R - 6; 0 for an isotropic crystal
    mechanically_stable: bool  # every eigenvalue of C positive (Born criterion); if not, the averages are formal


def composition_info(formula: str) -> CompositionInfo:
    """Reduced formula, elements, amounts, molar mass (g/mol) and weight and atomic fractions of `formula`.

    Raises BadFormula for an empty or malformed formula, a material id, a zero or negative amount, or an unknown
    element, with a corrected formula when one is likely (fe2o3 -> Fe2O3).
    """
    text = formula.strip() if isinstance(formula, str) else ""
    if not text:
        raise BadFormula(f"formula is empty or not text ({formula!r})")
    if len(text) > _MAX_FORMULA_CHARS:
        raise BadFormula(f"formula is {len(text)} characters", fix=f"at most {_MAX_FORMULA_CHARS} are accepted.")
    if _MATERIAL_ID.match(text):
        raise BadFormula(f"{text!r} is a material id, not a formula", fix="look the record up to get its formula.")
    try:
        comp = Composition(text, strict=True)  # strict: an unknown symbol raises instead of becoming a dummy
    except (ValueError, KeyError, AttributeError) as exc:
        raise BadFormula(_formula_problem(text, exc), suggest_formulas(text)) from exc
    amounts = {el.symbol: float(n) for el, n in comp.items()}
    dropped = [s for s in dict.fromkeys(_SYMBOL_IN_TEXT.findall(text)) if s in _SYMBOLS and s not in amounts]
    if dropped:
        raise BadFormula(f"{text!r} gives {', '.join(dropped)} an amount of 0", fix="leave absent elements out.")
    if comp.num_atoms <= 0:
        raise BadFormula(f"{text!r} has no atoms")
    return CompositionInfo(
        formula=comp.formula,
        reduced_formula=comp.reduced_formula,
        elements=tuple(amounts),
        amounts=amounts,
        n_atoms=float(comp.num_atoms),
        molar_mass=float(comp.weight),
        weight_fractions={s: float(comp.get_wt_fraction(s)) for s in amounts},
        atomic_fractions={s: float(comp.get_atomic_fraction(s)) for s in amounts},
    )


def suggest_formulas(text: str, n: int = 3) -> list[str]:
    """Up to `n` valid formulas `text` may have meant, by re-reading its letters with element-symbol case
    ("fe2o3" -> Fe2O3, "co2" -> Co2 or CO2), an element's name ("iron" -> Fe), or the closest real symbol."""
    text = text.strip()
    if text.lower() in _BY_NAME:
        return [_BY_NAME[text.lower()]]
    pieces = re.split(r"([A-Za-z]+)", text)
    choices = [_segmentations(p) if i % 2 else [p] for i, p in enumerate(pieces)]
    if all(choices):
        found = ["".join(c) for c in itertools.islice(itertools.product(*choices), 20)]
    else:
        fixed = text
        for token in _SYMBOL_IN_TEXT.findall(text):
            if token not in _SYMBOLS and (close := difflib.get_close_matches(token, sorted(_SYMBOLS), n=1)):
                fixed = fixed.replace(token, close[0], 1)
        found = [fixed]
    return [f for f in dict.fromkeys(found) if f != text and _valid(f)][:n]


def elastic_moduli(tensor: Sequence[Sequence[float]]) -> ElasticModuli:
    """Voigt, Reuss and Hill bulk and shear moduli, Young's modulus and Poisson ratio of a 6x6 Voigt-notation
    stiffness tensor in GPa. Raises BadTensor if it is not 6x6, not numbers, not symmetric within
    SYMMETRY_RTOL of its largest entry (or SYMMETRY_ATOL_GPA), or singular."""
    c = _as_matrix(tensor)
    c = (c + c.T) / 2  # symmetric within tolerance: average away the rounding noise
    condition = np.linalg.cond(c)
    if not math.isfinite(condition) or condition > _MAX_CONDITION:
        raise BadTensor(f"the tensor is singular (condition number {condition:.3g}): it has no compliance S = C^-1.")
    s = np.linalg.inv(c)
    c_axial, c_off, c_shear = _sums(c)
    s_axial, s_off, s_shear = _sums(s)
    k_voigt = (c_axial + 2 * c_off) / 9
    g_voigt = (c_axial - c_off + 3 * c_shear) / 15
    k_reuss = 1 / (s_axial + 2 * s_off)
    g_reuss = 15 / (4 * s_axial - 4 * s_off + 3 * s_shear)
    k_hill, g_hill = (k_voigt + k_reuss) / 2, (g_voigt + g_reuss) / 2
    return ElasticModuli(  # _sums returns Python floats, so every average here is one
        *(k_voigt, k_reuss, k_hill, g_voigt, g_reuss, g_hill),
        young_modulus=9 * k_hill * g_hill / (3 * k_hill + g_hill),
        poisson_ratio=(3 * k_hill - 2 * g_hill) / (2 * (3 * k_hill + g_hill)),
        universal_anisotropy=5 * g_voigt / g_reuss + k_voigt / k_reuss - 6,
        mechanically_stable=bool(np.all(np.linalg.eigvalsh(c) > 0)),
    )


# unit -> (dimensions it belongs to, size in the dimension's base unit: eV per particle, Pa, Å, g/mol).
# kJ/mol and kcal/mol are per mole of whatever the energy is per (a formula, an atom), so they join both
# energy dimensions: 1 eV/atom = 96.485 kJ/mol (of atoms), while eV/atom -> eV is refused as mixed.
_EV_J = 1.602176634e-19
_AVOGADRO = 6.02214076e23
_ENERGY, _PER_ATOM = "energy", "energy per atom"
_UNITS: dict[str, tuple[frozenset[str], float]] = {
    "eV": (frozenset({_ENERGY}), 1.0),
    "meV": (frozenset({_ENERGY}), 1e-3),
    "J": (frozenset({_ENERGY}), 1 / _EV_J),
    "kJ/mol": (frozenset({_ENERGY, _PER_ATOM}), 1e3 / _AVOGADRO / _EV_J),
    "kcal/mol": (frozenset({_ENERGY, _PER_ATOM}), 4184 / _AVOGADRO / _EV_J),
    "eV/atom": (frozenset({_PER_ATOM}), 1.0),
    "meV/atom": (frozenset({_PER_ATOM}), 1e-3),
    "GPa": (frozenset({"pressure"}), 1e9),
    "MPa": (frozenset({"pressure"}), 1e6),
    "kPa": (frozenset({"pressure"}), 1e3),
    "Pa": (frozenset({"pressure"}), 1.0),
    "bar": (frozenset({"pressure"}), 1e5),
    "kbar": (frozenset({"pressure"}), 1e8),
    "atm": (frozenset({"pressure"}), 101325.0),
    "psi": (frozenset({"pressure"}), 6894.757293168361),  # lbf/in^2 = 4.4482216152605 N / (0.0254 m)^2
    "Å": (frozenset({"length"}), 1.0),
    "nm": (frozenset({"length"}), 10.0),
    "pm": (frozenset({"length"}), 1e-2),
    "m": (frozenset({"length"}), 1e10),
    "bohr": (frozenset({"length"}), 0.529177210903),
    "g/mol": (frozenset({"mass"}), 1.0),
    "kg/mol": (frozenset({"mass"}), 1e3),
    "amu": (frozenset({"mass"}), 1.66053906660e-24 * _AVOGADRO),  # 1 u * N_A = 0.99999999965 g/mol (SI 2019)
}
_ALIASES = {
    "ev": "eV", "ev/atom": "eV/atom", "kj/mol": "kJ/mol",
    "kcal/mol": "kcal/mol", "gpa": "GPa", "kpa": "kPa", "pa": "Pa", "kbar": "kbar", "a": "Å", "å": "Å",
    "angstrom": "Å", "ang": "Å", "Å": "Å", "u": "amu", "da": "amu", "dalton": "amu", "g mol-1": "g/mol",
    "kj mol-1": "kJ/mol", "ev per atom": "eV/atom", "kj/mol-atom": "kJ/mol", "kj/mol/atom": "kJ/mol",
}  # fmt: skip
# No lower-case alias where case changes the unit (MeV vs meV, mPa vs MPa): "mev" is refused, not guessed.


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit` expressed in `to_unit` (energy, energy per atom, pressure, length, molar mass).

    Raises BadUnit for an unknown unit (with the closest known ones) or for units of different dimensions.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadUnit(f"value must be a finite number, got {value!r}.")
    (source_dims, source), (target_dims, target) = _unit(from_unit), _unit(to_unit)
    if not source_dims & target_dims:
        raise BadUnit(
            f"cannot convert {from_unit!r} ({'/'.join(sorted(source_dims))}) to {to_unit!r} "
            f"({'/'.join(sorted(target_dims))}): they measure different things."
        )
    return value * source / target


def known_units() -> list[str]:
    """Every unit `convert` accepts, in the canonical spelling."""
    return list(_UNITS)


def _unit(name: str) -> tuple[frozenset[str], float]:
    text = " ".join(str(name).split())
    canonical = text if text in _UNITS else _ALIASES.get(text, _ALIASES.get(text.lower()))
    if canonical is None:
        guesses = difflib.get_close_matches(text, list(_UNITS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, guesses))}?" if guesses else ""
        raise BadUnit(f"unknown unit {name!r}.{hint} Known units: {', '.join(_UNITS)}.")
    return _UNITS[canonical]


def _as_matrix(tensor: object) -> np.ndarray:
    rows = tensor.tolist() if isinstance(tensor, np.ndarray) else tensor
    if not _is_list(rows) or len(rows) != 6:
        got = f"{len(rows)} rows" if _is_list(rows) else f"a {type(rows).__name__}"
        raise BadTensor(f"the tensor must be 6 rows of 6 numbers (Voigt notation, GPa); got {got}.")
    for i, row in enumerate(rows):
        if not _is_list(row) or len(row) != 6:
            got = len(row) if _is_list(row) else f"a {type(row).__name__}"
            raise BadTensor(f"row {i + 1} of the tensor must hold 6 numbers; got {got}.")
        for j, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                raise BadTensor(f"C[{i + 1}][{j + 1}] is {x!r}; every entry must be a finite number in GPa.")
    c = np.array(rows, dtype=float)
    worst = np.unravel_index(np.argmax(np.abs(c - c.T)), c.shape)
    gap, allowed = abs(c[worst] - c.T[worst]), max(SYMMETRY_RTOL * np.abs(c).max(), SYMMETRY_ATOL_GPA)
    if gap > allowed:
        i, j = (int(k) + 1 for k in worst)
        raise BadTensor(
            f"the tensor is not symmetric: C{i}{j} = {c[worst]:g} but C{j}{i} = {c.T[worst]:g} (difference "
            f"{gap:.3g} GPa, tolerance {allowed:.3g} GPa); a stiffness tensor has C_ij = C_ji."
        )
    return c


def _is_list(x: object) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str | bytes)


def _sums(m: np.ndarray) -> tuple[float, float, float]:
    """(M11 + M22 + M33, M12 + M23 + M31, M44 + M55 + M66): the sums the Voigt and Reuss formulas use."""
    return float(np.trace(m[:3, :3])), float(m[0, 1] + m[1, 2] + m[2, 0]), float(np.trace(m[3:, 3:]))


def _formula_problem(text: str, exc: Exception) -> str:
    unknown = [t for t in dict.fromkeys(_SYMBOL_IN_TEXT.findall(text)) if t not in _SYMBOLS]
    if unknown and any(c.isupper() for c in text):
        return f"{text!r} names unknown element(s) {', '.join(map(repr, unknown))}"
    return f"{text!r} is not a chemical formula ({exc})"


def _segmentations(letters: str) -> list[str]:
    """Every way to read a run of letters as element symbols in their proper case: "co" -> ["Co", "CO"]."""
    return list(itertools.islice(_split_symbols(letters.lower()), 6))


def _split_symbols(rest: str) -> Iterator[str]:
    if not rest:
        yield ""
        return
    for size in (2, 1):  # two-letter symbols first: "fe" is iron, not F + e
        head = rest[:size].capitalize()
        if len(head) == size and head in _SYMBOLS:
            for tail in _split_symbols(rest[size:]):
                yield head + tail


def _valid(formula: str) -> bool:
    try:
        return Composition(formula, strict=True).num_atoms > 0
    except (ValueError, KeyError, AttributeError):
        return False
