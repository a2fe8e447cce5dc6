"""One line of text per material: what the semantic index embeds and what a tool can show a model.

"Fe2O3 (mp-19770): iron, oxygen (Fe-O); ferrimagnetic (FiM), 4 muB/f.u.; band gap 2.1 eV; ..." names the
elements in words as well as symbols, so "an iron oxide that is magnetic" finds it by meaning; numbers are
rounded to three significant digits with their units, which is all a reader needs to tell records apart.
"""

from __future__ import annotations

from functools import cache

from pymatgen.core import Element

from agentdistill.memory.materials.checks import ORDERING_WORDS
from agentdistill.memory.materials.records import MaterialRecord


def summary(record: MaterialRecord) -> str:
    """The record in one line: formula, id, elements, then every known headline property."""
    names = ", ".join(element_name(e) for e in record.elements)
    parts = [f"{record.formula} ({record.material_id}): {names} ({record.chemsys})"]
    parts.extend(property_phrases(record))
    return "; ".join(parts)


def property_phrases(record: MaterialRecord) -> list[str]:
    """Short phrases for the properties the record has, in a fixed order (magnetism, electronic, energy, ...)."""
    phrases: list[str] = []
    ordering = record.get("ordering")
    magnetization = record.number("total_magnetization_normalized_formula_units")
    if ordering is not None or magnetization is not None:
        magnetic = f"{ORDERING_WORDS.get(ordering, ordering)} ({ordering})" if ordering else "magnetization"
        phrases.append(magnetic + (f", {_num(magnetization)} muB/f.u." if magnetization is not None else ""))
    if (gap := record.number("band_gap")) is not None:
        phrases.append("metallic, band gap 0 eV" if gap == 0 else f"band gap {_num(gap)} eV")
    if (formation := record.number("formation_energy_per_atom")) is not None:
        phrases.append(f"formation energy {_num(formation)} eV/atom")
    if (hull := record.number("energy_above_hull")) is not None:
        stable = " (stable)" if hull <= 0 or record.get("is_stable") is True else ""
        phrases.append(f"{_num(hull)} eV/atom above hull{stable}")
    elif record.get("is_stable") is not None:
        phrases.append("stable" if record.get("is_stable") else "not stable")
    if (decomposition := record.number("decomposition_enthalpy")) is not None:
        phrases.append(f"decomposition enthalpy {_num(decomposition)} eV/atom")
    if (bulk := record.bulk_modulus_vrh) is not None:
        phrases.append(f"bulk modulus {_num(bulk)} GPa (VRH)")
    if record.get("elastic_tensor") is not None:
        phrases.append("elastic tensor known")
    symmetry = record.get("symmetry")
    if isinstance(symmetry, dict) and (symmetry.get("crystal_system") or symmetry.get("symbol")):
        words = [str(symmetry.get(k)) for k in ("crystal_system", "symbol") if symmetry.get(k)]
        phrases.append(" ".join(words).lower() if len(words) == 1 else f"{words[0].lower()} {words[1]}")
    if (density := record.number("density")) is not None:
        phrases.append(f"density {_num(density)} g/cm^3")
    return phrases


@cache
def element_name(symbol: str) -> str:
    """'Fe' -> 'iron'; the symbol itself if pymatgen does not know it."""
    try:
        return Element(symbol).long_name.lower()
    except ValueError:
        return symbol


def _num(value: float) -> str:
    return f"{value:.3g}"
