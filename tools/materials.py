"""The materials store as tools a model calls: look records up by formula, elements, property or id, and compute
composition, elastic moduli and unit conversions exactly (`tools/materials_calc.py`), never by the model.

Every result is compact text citing the record ids it came from. Faults the model can fix (a malformed formula,
an unknown element, unit or property, an id that does not exist) come back as `Error: ...` text with the closest
valid values; a search that finds nothing is an answer, not an error, and says so with a "did you mean".
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from agentdistill.memory.materials import (
    PROPERTIES,
    InvalidMaterialsQuery,
    MaterialNotFound,
    MaterialRecord,
    MaterialsApiError,
)
from agentdistill.memory.materials.queries import element_symbols, property_column
from agentdistill.tools import materials_calc as calc
from agentdistill.tools.base import Tool

# The units of the record fields (MP names) shown with their values; "" = dimensionless.
UNITS: Mapping[str, str] = {
    "band_gap": "eV",
    "formation_energy_per_atom": "eV/atom",
    "energy_above_hull": "eV/atom",
    "decomposition_enthalpy": "eV/atom",
    "total_magnetization": "μB",
    "total_magnetization_normalized_formula_units": "μB/f.u.",
    "bulk_modulus": "GPa",
    "bulk_modulus_vrh": "GPa",
    "homogeneous_poisson": "",
    "universal_anisotropy": "",
    "density": "g/cm³",
    "volume": "Å³",
    "nsites": "",
    "nelements": "",
}
_FIELD_OF = {"magnetization": "total_magnetization_normalized_formula_units", "bulk_modulus_vrh": "bulk_modulus"}
_HIDDEN = {"id", "material_id", "formula_pretty", "llamp_sources"}  # shown in the header, or provenance only
# Shown on every listed record, so one search answers the usual questions: Qwen2.5-Coder-0.5B, given only the
# ordering, repeated the same search until max_steps instead of fetching the record's magnetization.
LINE_FIELDS = (
    "ordering",
    "total_magnetization_normalized_formula_units",
    "energy_above_hull",
    "formation_energy_per_atom",
    "band_gap",
    "bulk_modulus",
)
_LINE_LABELS = {"total_magnetization_normalized_formula_units": "magnetization"}
_MAX_LINES = 15  # records listed per answer: more would crowd a small model's context
_MATERIAL_ID = re.compile(r"^(?:mp|mvc)-\d+$")


class MaterialsLookup(Protocol):
    """The store methods the tools need (agentdistill.memory.materials.MaterialsStore provides them)."""

    def by_formula(self, formula: str) -> Sequence[MaterialRecord]:
        """Records whose formula or reduced formula is `formula`, most stable first."""

    def by_elements(self, elements: Sequence[str], *, exact: bool = False) -> Sequence[MaterialRecord]:
        """Records containing all `elements` (exact: made of exactly them)."""

    def by_property(
        self, name: str, min: float | None = None, max: float | None = None, k: int = 20, *, equals: str | None = None
    ) -> Sequence[MaterialRecord]:
        """Up to k records whose property `name` lies in [min, max] (ordering: equals="FM"); InvalidMaterialsQuery
        for a property it does not know."""

    def get(self, material_id: str) -> MaterialRecord:
        """The record with this id; MaterialNotFound when there is none."""

    def suggest_formulas(self, formula: str, n: int = 3) -> list[str]:
        """Up to n stored formulas closest to `formula`."""


def make_materials_tools(store: MaterialsLookup) -> list[Tool]:
    """search_formula, search_elements, search_property, get_record, composition, elastic_moduli and
    convert_units over `store`, in that order."""

    def search_formula(formula: str) -> str:
        """Materials Project records with this chemical formula (Fe2O3; Fe4O6 finds Fe2O3 too), polymorphs
        listed most stable first with id, magnetic ordering and energy above hull."""
        text = formula.strip()
        if not text or _MATERIAL_ID.match(text):
            what = "formula is empty" if not text else f"{text!r} is a material id, not a formula"
            return f"Error: {what}: pass a formula like 'Fe2O3', or use get_record(material_id=...) for an id."
        records, problem = store.by_formula(text), None
        if not records:
            try:
                reduced = calc.composition_info(text).reduced_formula
                records = store.by_formula(reduced) if reduced != text else []
            except calc.BadFormula as exc:
                problem = exc
        if records:  # the molar mass too: a search is how a small model starts any question about a formula
            try:
                mass = calc.composition_info(text).molar_mass
            except calc.BadFormula:  # a stored formula the parser does not take: that of the record
                mass = calc.composition_info(records[0].formula).molar_mass
            return _listing(f"{text} (molar mass {mass:.4f} g/mol): {len(records)} record(s), most stable first",
                            records)  # fmt: skip
        guesses = _formula_guesses(store, text)  # stored formulas beat calc's generic guesses ('FePo4' for fepo4)
        hint = f"did you mean {', '.join(map(repr, guesses))}?" if guesses else ""
        if problem is not None:
            return f"Error: {problem.problem}; {hint}" if guesses else f"Error: {problem}"
        return f"No record for {text}. {hint[:1].upper()}{hint[1:]}".strip()

    def search_elements(elements: list[str], exact: bool = False) -> str:
        """Records containing all these elements (["Fe", "O"]; symbols or names); exact=true keeps only records
        made of exactly these elements (the Fe-O chemical system)."""
        try:
            fixed = element_symbols([s for item in elements for s in re.split(r"[-,;\s]+", item) if s])
        except InvalidMaterialsQuery as exc:
            return f"Error: {exc}"
        which = f"made of exactly {'-'.join(fixed)}" if exact else f"containing {', '.join(fixed)}"
        records = store.by_elements(fixed, exact=exact)
        if not records:
            return f"No record {which}." + ("" if exact else " Try fewer elements.")
        return _listing(f"{len(records)} record(s) {which}", records)

    def search_property(
        property: str, min: float | None = None, max: float | None = None, equals: str | None = None
    ) -> str:
        """Records whose numeric property lies between min and max (either may be omitted), lowest first, e.g.
        property="band_gap", min=1, max=2 (eV); or property="ordering", equals="FM" (NM, FM, FiM, AFM). Properties:"""
        if min is not None and max is not None and min > max:
            return f"Error: min ({min}) is greater than max ({max}); swap them."
        try:
            column = property_column("_".join(property.split()))  # "band gap" -> band_gap
            records = store.by_property(column, min=min, max=max, k=_MAX_LINES + 5, equals=equals)
        except InvalidMaterialsQuery as exc:
            return f"Error: {exc}"
        name = _FIELD_OF.get(column, column)
        unit = f" {UNITS[name]}" if UNITS.get(name) else ""
        if equals is not None:
            bounds = f"{column} = {equals}"
        elif min is None or max is None:
            bounds = f"{column} >= {min}{unit}" if max is None else f"{column} <= {max}{unit}"
            bounds = bounds if (min, max) != (None, None) else f"a {column} value"
        else:
            bounds = f"{min} <= {column} <= {max}{unit}"
        if not records:
            return f"No record with {bounds}."
        return _listing(f"{len(records)} record(s) with {bounds}", records, extra=name)

    def get_record(material_id: str, fields: list[str] | None = None) -> str:
        """One record by material id (mp-...): the fields asked for (e.g. ["band_gap", "ordering"]), or a
        summary of every recorded field when fields is omitted."""
        record = _record(store, material_id)
        if isinstance(record, str):
            return record
        head = f"{record.material_id} {record.formula} (chemsys {record.chemsys})"
        data = {k: v for k, v in record.fields.items() if k not in _HIDDEN}
        if not fields:
            return "\n".join([head, *(f"{k}: {_value(k, v)}" for k, v in data.items())])
        lines, unknown = [head], []
        for name in fields:
            if name in data:
                lines.append(f"{name}: {_value(name, data[name])}")
            elif name in UNITS or name in ("ordering", "is_stable", "symmetry", "elastic_tensor"):
                lines.append(f"{name}: not recorded for {record.material_id}")
            else:
                guess = difflib.get_close_matches(name, [*data, *UNITS], n=1)
                unknown.append(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
        if unknown and len(lines) == 1:
            return f"Error: unknown field(s) {', '.join(unknown)}. {record.material_id} has: {', '.join(data)}."
        return "\n".join(lines + ([f"unknown field(s): {', '.join(unknown)}"] if unknown else []))

    def composition(formula: str) -> str:
        """Exact composition of a formula: reduced formula, atoms per element, molar mass in g/mol, and atomic
        and weight fractions, plus the ids of records with that formula."""
        try:
            info = calc.composition_info(formula)
        except calc.BadFormula as exc:
            return f"Error: {exc}"
        lines = [f"{formula.strip()} (reduced {info.reduced_formula}): {_num(info.n_atoms)} atoms, "
                 f"molar mass {info.molar_mass:.4f} g/mol"]  # fmt: skip
        for el in info.elements:
            lines.append(
                f"{el}: {_num(info.amounts[el])} atoms, atomic fraction {info.atomic_fractions[el]:.4f}, "
                f"weight fraction {info.weight_fractions[el]:.4f} ({100 * info.weight_fractions[el]:.2f} wt%)"
            )
        ids = [r.material_id for r in store.by_formula(info.reduced_formula)]
        lines.append(f"records: {', '.join(ids[:8])}" if ids else "records: none with this formula")
        return "\n".join(lines)

    def elastic_moduli(material_id: str = "", tensor: list[float] | None = None) -> str:
        """Voigt, Reuss and Hill bulk and shear moduli, Young's modulus and Poisson ratio (GPa) from a record's
        elastic tensor (material_id), or from a tensor you give: 36 numbers in GPa, the 6x6 Voigt matrix row
        by row."""
        if bool(material_id.strip()) == (tensor is not None):
            return "Error: pass exactly one of material_id (e.g. 'mp-13') or tensor (36 numbers, row by row)."
        if tensor is not None:
            if len(tensor) != 36:
                return f"Error: tensor has {len(tensor)} numbers; a 6x6 Voigt matrix needs 36, row by row."
            return _moduli_text("the given tensor", [tensor[i : i + 6] for i in range(0, 36, 6)])
        record = _record(store, material_id)
        if isinstance(record, str):
            return record
        name, data = f"{record.material_id} {record.formula}", record.fields
        tensors = data.get("elastic_tensor") or {}
        tensors = tensors if isinstance(tensors, Mapping) else {"raw": tensors}  # a bare 6x6 list is the tensor
        key = next((k for k in ("raw", "ieee_format") if tensors.get(k)), None)
        if key is not None:
            text = _moduli_text(f"{name} (elastic_tensor.{key}, GPa)", tensors[key])
            recorded = data.get("bulk_modulus")
            return text + (f"\nrecorded bulk_modulus: {_value('bulk_modulus', recorded)}" if recorded else "")
        if data.get("bulk_modulus"):
            bulk = _value("bulk_modulus", data["bulk_modulus"])
            return f"{name} has no elastic tensor, only its bulk modulus: {bulk}. Shear moduli etc. need the tensor."
        others = [r.material_id for r in store.by_formula(record.formula) if (r.fields.get("elastic_tensor") or {})]
        hint = f" Records of {record.formula} with one: {', '.join(others[:5])}." if others else ""
        return f"{name} has no elastic tensor or bulk modulus recorded.{hint}"

    def convert_units(value: float, from_unit: str, to_unit: str) -> str:
        """Convert a value between units of energy (eV, meV, J, kJ/mol, kcal/mol; eV/atom <-> kJ/mol), pressure
        (GPa, MPa, Pa, bar, atm, psi), length (Å, nm, pm, m, bohr) or molar mass (g/mol, amu)."""
        try:
            result = calc.convert(value, from_unit, to_unit)
        except calc.BadUnit as exc:
            return f"Error: {exc}"
        return f"{_num(value)} {from_unit.strip()} = {result:.10g} {to_unit.strip()}"

    search_property.__doc__ = f"{search_property.__doc__} {', '.join(PROPERTIES)}."
    functions = (search_formula, search_elements, search_property, get_record, composition, elastic_moduli)
    return [Tool.from_function(_api_faults_as_text(fn)) for fn in (*functions, convert_units)]


def _api_faults_as_text(fn: Callable[..., str]) -> Callable[..., str]:
    """`fn`, with a live Materials Project lookup's failures (no network, a refused key) returned as `Error:` text:
    the model can say the records are unavailable instead of the run crashing."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> str:
        try:
            return fn(*args, **kwargs)
        except MaterialsApiError as exc:
            return f"Error: the Materials Project records are unavailable: {exc}"

    return guarded


def _record(store: MaterialsLookup, material_id: str) -> MaterialRecord | str:
    """The record, or `Error: ...` text: not an id (with the ids of a formula given instead), or no such id."""
    text = material_id.strip()
    if not _MATERIAL_ID.match(text):
        ids = [r.material_id for r in store.by_formula(text)] if text else []
        hint = f" Records of {text}: {', '.join(ids[:8])}." if ids else " Find ids with search_formula."
        return f"Error: {text!r} is not a material id (like 'mp-13').{hint}"
    try:
        return store.get(text)
    except MaterialNotFound as exc:
        return f"Error: {exc} Find ids with search_formula or search_elements."


def _formula_guesses(store: MaterialsLookup, text: str) -> list[str]:
    """Stored formulas `text` may have meant: case fixes that the store holds first, then its own suggestions."""
    fixed = [f for f in calc.suggest_formulas(text) if store.by_formula(f)]
    return list(dict.fromkeys([*fixed, *store.suggest_formulas(text, n=3)]))[:3]


def _listing(title: str, records: Sequence[MaterialRecord], *, extra: str | None = None) -> str:
    lines = [f"{title}:"] + [f"- {_line(r, extra)}" for r in records[:_MAX_LINES]]
    if len(records) > _MAX_LINES:
        lines.append(f"... and {len(records) - _MAX_LINES} more; narrow the search.")
    return "\n".join(lines)


def _line(record: MaterialRecord, extra: str | None) -> str:
    data = record.fields
    parts = [f"{record.material_id} {record.formula}"]
    if isinstance(symmetry := data.get("symmetry"), Mapping) and symmetry.get("symbol"):
        parts.append(str(symmetry["symbol"]))
    for name in dict.fromkeys(((extra,) if extra else ()) + LINE_FIELDS):  # the searched property first
        value = data.get(name)
        if isinstance(value, Mapping) and name == "bulk_modulus":  # {voigt, reuss, vrh}: the line shows vrh
            name, value = "bulk_modulus_vrh", value.get("vrh")
        if value is not None:
            parts.append(f"{_LINE_LABELS.get(name, name)}={_value(name, value)}")
    if data.get("is_stable") is not None:
        parts.append("stable" if data["is_stable"] else "unstable")
    return " | ".join(parts)


def _value(name: str, value: Any) -> str:
    """A field's value as short text with its unit."""
    unit = f" {UNITS[name]}" if UNITS.get(name) else ""
    if name == "elastic_tensor":
        return "6x6 stiffness tensor in GPa (use elastic_moduli for its averages)"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none recorded"
    if isinstance(value, int | float):
        return f"{_num(value)}{unit}"
    if isinstance(value, Mapping):
        if name == "symmetry":
            return f"{value.get('crystal_system', '?')} {value.get('symbol', '?')} (#{value.get('number', '?')})"
        return ", ".join(f"{k}={_value('', v)}" for k, v in value.items()) + unit
    if isinstance(value, list | tuple):
        shown = ", ".join(_value("", v) for v in value[:8])
        return f"[{shown}{f', ... ({len(value)} in all)' if len(value) > 8 else ''}]"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _moduli_text(source: str, tensor: Any) -> str:
    try:
        m = calc.elastic_moduli(tensor)
    except calc.BadTensor as exc:
        return f"Error: {source}: {exc}"
    lines = [
        f"{source}, Voigt / Reuss / Hill averages:",
        f"bulk modulus K: {m.k_voigt:.3f} / {m.k_reuss:.3f} / {m.k_hill:.3f} GPa",
        f"shear modulus G: {m.g_voigt:.3f} / {m.g_reuss:.3f} / {m.g_hill:.3f} GPa",
        f"Young's modulus (Hill) {m.young_modulus:.3f} GPa; Poisson ratio (Hill) {m.poisson_ratio:.3f}; "
        f"universal anisotropy {m.universal_anisotropy:.3f}",
    ]
    if not m.mechanically_stable:
        lines.append("note: not mechanically stable (C has a non-positive eigenvalue): the averages are formal.")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.6g}"
