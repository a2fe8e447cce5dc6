"""Type checks for the property fields of a Materials Project record, each returning the problem and its fix.

The MP API returns a field as null when it has no value, so null passes every check here; a field this module
does not know is kept as given. `check_field` answers None for a good value, else one sentence a user can act
on ("band_gap is 'wide' (str): expected a number (eV) or null"); records.py adds file:line:field in front.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

ORDERINGS = ("NM", "FM", "FiM", "AFM")  # MP's magnetic ordering codes (non-, ferro-, ferri-, antiferromagnetic)
ORDERING_WORDS = {"NM": "non-magnetic", "FM": "ferromagnetic", "FiM": "ferrimagnetic", "AFM": "antiferromagnetic"}
TENSOR_SHAPE = 6  # elastic tensors in Voigt notation: 6x6, GPa

# field -> unit, for the number checks and the summaries (an empty unit: dimensionless)
NUMBER_UNITS: dict[str, str] = {
    "band_gap": "eV",
    "cbm": "eV",
    "vbm": "eV",
    "efermi": "eV",
    "formation_energy_per_atom": "eV/atom",
    "energy_above_hull": "eV/atom",
    "energy_per_atom": "eV/atom",
    "uncorrected_energy_per_atom": "eV/atom",
    "equilibrium_reaction_energy_per_atom": "eV/atom",
    "decomposition_enthalpy": "eV/atom",
    "total_magnetization": "muB/cell",
    "total_magnetization_normalized_formula_units": "muB/f.u.",
    "total_magnetization_normalized_vol": "muB/A^3",
    "density": "g/cm^3",
    "density_atomic": "A^3/atom",
    "volume": "A^3",
    "universal_anisotropy": "",
    "homogeneous_poisson": "",
}
INTEGER_FIELDS = ("nsites", "nelements", "exchange_symmetry", "num_magnetic_sites", "num_unique_magnetic_sites")
BOOL_FIELDS = ("is_stable", "is_magnetic", "is_metal", "is_gap_direct", "theoretical", "deprecated")
MODULUS_FIELDS = ("bulk_modulus", "shear_modulus")  # {"voigt", "reuss", "vrh"} in GPa, or one number
DICT_FIELDS = ("symmetry", "thermal_conductivity")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (JSON true would otherwise pass as 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_field(name: str, value: Any) -> str | None:
    """The problem with `value` for field `name` and how to fix it, or None when it is acceptable."""
    if value is None:
        return None
    check = _CHECKS.get(name)
    if check is None:
        if name in NUMBER_UNITS:
            return _number(name, value)
        return None  # a field we do not interpret: kept verbatim
    return check(name, value)


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def _number(name: str, value: Any) -> str | None:
    if is_number(value):
        return None
    unit = NUMBER_UNITS.get(name, "")
    return f"{name} is {_got(value)}: expected a finite number{f' ({unit})' if unit else ''} or null"


def _integer(name: str, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"{name} is {_got(value)}: expected a whole number or null"


def _bool(name: str, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{name} is {_got(value)}: expected true, false or null"


def _dict(name: str, value: Any) -> str | None:
    return None if isinstance(value, dict) else f"{name} is {_got(value)}: expected a JSON object or null"


def _ordering(name: str, value: Any) -> str | None:
    if value in ORDERINGS:
        return None
    hint = ""
    if isinstance(value, str):
        by_word = {w: code for code, w in ORDERING_WORDS.items()}
        code = by_word.get(value.strip().lower()) or next((c for c in ORDERINGS if c.lower() == value.lower()), None)
        hint = f" (write {code!r} for {value!r})" if code else ""
    return f"{name} is {_got(value)}: expected one of {', '.join(ORDERINGS)} or null{hint}"


def _modulus(name: str, value: Any) -> str | None:
    if is_number(value):
        return None
    if isinstance(value, dict):
        bad = [k for k, v in value.items() if v is not None and not is_number(v)]
        if not bad:
            return None
        return f"{name}.{bad[0]} is {_got(value[bad[0]])}: expected a number (GPa) or null"
    return f'{name} is {_got(value)}: expected {{"voigt", "reuss", "vrh"}} numbers in GPa, one number, or null'


def _tensor(name: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{name} is {_got(value)}: expected an object with 'raw' (and 'ieee_format') 6x6 matrices in GPa"
    for part in ("raw", "ieee_format"):
        matrix = value.get(part)
        if matrix is None:
            continue
        rows_ok = isinstance(matrix, list) and len(matrix) == TENSOR_SHAPE
        if not rows_ok or not all(isinstance(r, list) and len(r) == TENSOR_SHAPE for r in matrix):
            shape = f"{len(matrix)} rows" if isinstance(matrix, list) else type(matrix).__name__
            return f"{name}.{part} is {shape}: expected a 6x6 list of numbers (Voigt notation, GPa)"
        for i, row in enumerate(matrix):
            for j, x in enumerate(row):
                if not is_number(x):
                    return f"{name}.{part}[{i}][{j}] is {_got(x)}: expected a 6x6 list of finite numbers (GPa)"
    return None


def _number_list(name: str, value: Any) -> str | None:
    if isinstance(value, list) and all(is_number(x) for x in value):
        return None
    return f"{name} is {_got(value)}: expected a list of numbers (one per site) or null"


def _string_list(name: str, value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return None
    return f"{name} is {_got(value)}: expected a list of element symbols or null"


def _composition(name: str, value: Any) -> str | None:
    if isinstance(value, dict) and value and all(isinstance(k, str) and is_number(v) for k, v in value.items()):
        return None
    return f'{name} is {_got(value)}: expected an object of element -> amount, e.g. {{"Fe": 2, "O": 3}}'


_CHECKS: dict[str, Callable[[str, Any], str | None]] = {
    "ordering": _ordering,
    "elastic_tensor": _tensor,
    "magmoms": _number_list,
    "types_of_magnetic_species": _string_list,
    "composition": _composition,
    **{f: _integer for f in INTEGER_FIELDS},
    **{f: _bool for f in BOOL_FIELDS},
    **{f: _modulus for f in MODULUS_FIELDS},
    **{f: _dict for f in DICT_FIELDS},
}
