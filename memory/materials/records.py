"""Materials Project records: the `MaterialRecord` type and a strict JSONL loader whose errors name file:line:field.

A line is one JSON object in the shape the Materials Project API returns (`material_id`, `formula_pretty`,
`ordering`, `band_gap`, `elastic_tensor`, ...; fields vary per record). pymatgen parses the formula, so the
reduced formula, elements and chemical system are computed the same way MP computes them. The packaged sample
(`sample_records_path`) lets the materials agent work with no data directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pymatgen.core import Composition

from agentdistill.errors import InputDataError
from agentdistill.jsonl import text_lines
from agentdistill.memory.materials.checks import check_field, is_number

ID_FIELD, FORMULA_FIELD = "material_id", "formula_pretty"
_ID_NUMBER = re.compile(r"([A-Za-z]+)-(\d+)")


class InvalidMaterialRecord(InputDataError):
    """A line of a materials file that cannot be a record; the message names file:line:field and the fix."""


@dataclass(frozen=True)
class MaterialRecord:
    """One material. `fields` holds every other property exactly as the record had it (do not mutate it)."""

    material_id: str
    formula: str  # formula_pretty as given, e.g. "Fe2O3"
    reduced_formula: str  # pymatgen's reduced formula: polymorphs and "Fe4O6" share "Fe2O3"
    elements: tuple[str, ...]  # sorted symbols
    chemsys: str  # "Fe-O": the sorted elements joined by "-", as MP writes it
    fields: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def nelements(self) -> int:
        return len(self.elements)

    def get(self, name: str, default: Any = None) -> Any:
        """A property by its MP field name, or `default` when the record has none (or it is null)."""
        value = self.fields.get(name)
        return default if value is None else value

    def number(self, name: str) -> float | None:
        """A numeric property as a float, or None when missing, null or not a number."""
        value = self.fields.get(name)
        return float(value) if is_number(value) else None

    @property
    def bulk_modulus_vrh(self) -> float | None:
        """The Voigt-Reuss-Hill bulk modulus in GPa (`bulk_modulus.vrh`, or a bare number), if recorded."""
        value = self.fields.get("bulk_modulus")
        if isinstance(value, dict):
            value = value.get("vrh")
        return float(value) if is_number(value) else None

    def to_dict(self) -> dict[str, Any]:
        """The record as MP-shaped JSON: material_id and formula_pretty first, then the other fields as given."""
        return {ID_FIELD: self.material_id, FORMULA_FIELD: self.formula, **self.fields}


def parse_formula(formula: str) -> Composition:
    """pymatgen's Composition of `formula`; ValueError for text that is not a formula of real elements."""
    try:
        composition = Composition(formula)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"pymatgen cannot parse {formula!r} ({exc})") from exc
    if not composition.valid or composition.num_atoms <= 0:
        raise ValueError(f"{formula!r} names no real element (symbols are case-sensitive: 'Fe', not 'fe' or 'FE')")
    return composition


def make_record(material_id: str, formula: str, fields: Mapping[str, Any] | None = None) -> MaterialRecord:
    """A record with its derived formula attributes; ValueError when pymatgen cannot parse `formula`."""
    composition = parse_formula(formula)
    elements = tuple(sorted({e.symbol for e in composition.elements}))
    return MaterialRecord(
        material_id=material_id,
        formula=formula,
        reduced_formula=composition.reduced_formula,
        elements=elements,
        chemsys="-".join(elements),
        fields=dict(fields or {}),
    )


def record_from_dict(
    data: Mapping[str, Any], *, path: str | Path = "<record>", line: int = 0, derive_formula: bool = True
) -> MaterialRecord:
    """Validate one MP-shaped object. Raises InvalidMaterialRecord naming path:line:field and the fix.

    A record without `formula_pretty` takes its reduced formula from `composition` when `derive_formula`.
    """
    material_id = data.get(ID_FIELD)
    if not isinstance(material_id, str) or not material_id.strip():
        problem = "is missing" if material_id is None else f"is {material_id!r}"
        raise InvalidMaterialRecord(
            path, line, f'{problem}: every record needs a non-empty string id such as "mp-19770"', field=ID_FIELD
        )
    for name, value in data.items():
        if name not in (ID_FIELD, FORMULA_FIELD) and (problem := check_field(name, value)) is not None:
            raise InvalidMaterialRecord(path, line, f"{problem}; fix the value or remove the field", field=name)
    formula, where = data.get(FORMULA_FIELD), FORMULA_FIELD
    if formula is None and derive_formula and isinstance(data.get("composition"), dict):
        formula, where = _formula_of_composition(data["composition"], path, line), "composition"
    if formula is None:
        raise InvalidMaterialRecord(
            path,
            line,
            f'{material_id} has no formula: add "formula_pretty" (e.g. "Fe2O3") or a "composition" object '
            '(e.g. {"Fe": 2, "O": 3}); request those fields when you download records from the MP API',
            field=FORMULA_FIELD,
        )
    if not isinstance(formula, str) or not formula.strip():
        raise InvalidMaterialRecord(
            path, line, f'is {formula!r}: expected a chemical formula string such as "Fe2O3"', field=FORMULA_FIELD
        )
    fields = {k: v for k, v in data.items() if k not in (ID_FIELD, FORMULA_FIELD)}
    try:
        return make_record(material_id, formula, fields)
    except ValueError as exc:
        raise InvalidMaterialRecord(
            path, line, f'{exc}: write a formula of element symbols and amounts, e.g. "Fe2O3"', field=where
        ) from None


def load_records(path: str | Path, *, missing_formula: Literal["error", "skip"] = "error") -> list[MaterialRecord]:
    """Every record of an MP-shaped JSONL file (blank lines are skipped), in file order.

    Raises InvalidMaterialRecord naming file:line:field for bad JSON, a missing id, an unparsable formula, a
    value of the wrong type, or a material_id seen before. A record with neither formula_pretty nor composition
    is an error; `missing_formula="skip"` drops such records instead (MP answers only the fields a query asked
    for, so a raw API dump may hold some).
    """
    if missing_formula not in ("error", "skip"):
        raise ValueError(f"missing_formula must be 'error' or 'skip', got {missing_formula!r}")
    path = Path(path)
    if not path.is_file():
        raise InvalidMaterialRecord(path, 0, "no such file: pass a JSONL file with one MP record per line")
    records: list[MaterialRecord] = []
    first_line: dict[str, int] = {}
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        data = _json_object(raw, path, number)
        try:
            record = record_from_dict(data, path=path, line=number)
        except InvalidMaterialRecord as exc:
            if missing_formula == "skip" and exc.field == FORMULA_FIELD and data.get(FORMULA_FIELD) is None:
                continue
            raise
        if record.material_id in first_line:
            raise InvalidMaterialRecord(
                path,
                number,
                f"{record.material_id!r} already appeared on line {first_line[record.material_id]}: each material "
                "must appear once; merge the two lines or delete one",
                field=ID_FIELD,
            )
        first_line[record.material_id] = number
        records.append(record)
    return records


def sample_records_path() -> Path:
    """The shipped materials sample (Materials Project, CC BY 4.0; see MATERIALS_SAMPLE_LICENSE.md)."""
    return Path(str(resources.files("agentdistill") / "data" / "materials_sample.jsonl"))


def stability_key(record: MaterialRecord) -> tuple[Any, ...]:
    """Polymorph order, most stable first: energy above hull, then formation energy, then id; missing values last."""
    hull = record.number("energy_above_hull")
    formation = record.number("formation_energy_per_atom")
    return (hull is None, hull or 0.0, formation is None, formation or 0.0, id_key(record.material_id))


def id_key(material_id: str) -> tuple[str, int, str]:
    """Sort ids by prefix and number, so mp-13 comes before mp-1008728."""
    match = _ID_NUMBER.fullmatch(material_id)
    return (match.group(1), int(match.group(2)), "") if match else (material_id, -1, material_id)


def _formula_of_composition(composition: dict[str, Any], path: str | Path, line: int) -> str:
    try:
        return parse_formula(_formula_text(composition)).reduced_formula
    except ValueError as exc:
        raise InvalidMaterialRecord(
            path, line, f'{exc}: write element -> amount, e.g. {{"Fe": 2, "O": 3}}', field="composition"
        ) from None


def _formula_text(composition: dict[str, Any]) -> str:
    # Composition({...}) would accept unknown keys as dummy species; a text formula goes through the same check
    return "".join(f"{element}{amount:g}" for element, amount in composition.items())


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        yield from text_lines(path)
    except InvalidMaterialRecord:
        raise
    except InputDataError as exc:  # not UTF-8: the same message, as the error callers of this module catch
        raise InvalidMaterialRecord(path, exc.line, str(exc)[len(f"{path}:{exc.line}: ") :]) from None


def _json_object(raw: str, path: Path, line: int) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidMaterialRecord(
            path, line, f"not valid JSON ({exc.msg} at column {exc.colno}): each line must be one JSON object"
        ) from None
    except RecursionError:
        raise InvalidMaterialRecord(path, line, "JSON nested too deeply: each line must be one flat record") from None
    if not isinstance(data, dict):
        raise InvalidMaterialRecord(
            path, line, f"expected a JSON object (one MP record per line), got {type(data).__name__}"
        )
    return data
