"""Questions with exact answers, generated from Materials Project records: the items of the `materials` suites.

For each record (in id order) one question per kind whose data it holds, in this order:
- ordering: LLaMP's own question ("What is the magnetic ordering of X? If there are multiple, give the most stable
  one with its material id ..."), asked once per formula whose most stable polymorph is determined (a single
  record, or stability data on every polymorph); gold: that polymorph's ordering (NM, FM, FiM, AFM);
- magnetization: total magnetization per formula unit (muB/f.u.) of this record, asked by formula and id;
- formation_energy: formation energy per atom (eV/atom); band_gap: band gap (eV);
- bulk_modulus: the Voigt-Reuss-Hill bulk modulus (GPa) computed from the record's elastic tensor;
- molar_mass: of the formula (g/mol, from pymatgen's atomic masses), once per formula.
Then, after every per-record question (so a longer suite keeps the earlier items as its prefix):
- weight_percent: composition arithmetic, the weight percent of a formula's heaviest element (multi-element
  formulas, once each);
- compare_band_gap / compare_formation_energy: which of two records (consecutive in id order among those with
  the property, values at least 5% apart) has the larger band gap / the lower formation energy per atom; the gold
  is the winner's material id, and the answer must name that id and no other.
Numbers are scored within 2% (benchmarks/materials_metric.py). The agent's store is built from the same file, so
every answer is in it; a bare model must know or guess, which is what the suite measures (LLaMP's comparison).
Each item's meta `groups` lists the reduced formulas it asks about: `distill run` keeps a formula's questions on
one side of its train/eval split (distill/workflow/plan.py), so a student cannot learn an eval answer by heart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agentdistill.benchmarks.items import Item
from agentdistill.memory.materials.records import MaterialRecord, load_records, parse_formula, stability_key

KINDS = ("ordering", "magnetization", "formation_energy", "band_gap", "bulk_modulus", "molar_mass")
ORDERING_QUESTION = (
    "What is the magnetic ordering of {formula}? If there are multiple, give the most stable one with its material"
    " id and its magnetization per formula unit."
)
NUMBER_QUESTIONS = {
    "magnetization": ("total_magnetization_normalized_formula_units",
                      "What is the total magnetization per formula unit of {formula} ({id}), in muB/f.u.?"),
    "formation_energy": ("formation_energy_per_atom",
                         "What is the formation energy per atom of {formula} ({id}), in eV/atom?"),
    "band_gap": ("band_gap", "What is the band gap of {formula} ({id}), in eV?"),
}  # fmt: skip
BULK_QUESTION = (
    "What is the Voigt-Reuss-Hill bulk modulus of {formula} ({id}) in GPa, computed from its elastic tensor?"
)
MOLAR_MASS_QUESTION = "What is the molar mass of {formula}, in g/mol?"
WEIGHT_PERCENT_QUESTION = "What is the weight percent of {element} in {formula}?"
COMPARE_QUESTIONS = {
    "compare_band_gap": ("band_gap", max, "Which has the larger band gap: {a} ({a_id}) or {b} ({b_id})? "
                         "Answer with its material id."),
    "compare_formation_energy": ("formation_energy_per_atom", min, "Which has the lower formation energy per atom:"
                                 " {a} ({a_id}) or {b} ({b_id})? Answer with its material id."),
}  # fmt: skip
COMPARE_GAP = 0.05  # relative difference below which a comparison is too close to ask


def materials_items(
    path: Path, *, limit: int | None = None, bulk_modulus: Callable[[Any], float] | None = None
) -> list[Item]:
    """The suite's items from an MP-shaped JSONL file (records without a formula are skipped, not asked about).

    `bulk_modulus(tensor) -> GPa` computes the gold of bulk-modulus questions (default: the exact calculator
    in tools/materials_calc.py).
    """
    if bulk_modulus is None:
        from agentdistill.tools.materials_calc import elastic_moduli

        def bulk_modulus(tensor: Any) -> float:
            return float(elastic_moduli(tensor).k_hill)

    records = sorted(load_records(path, missing_formula="skip"), key=lambda r: stability_key(r)[-1])
    items = [*_items(records, bulk_modulus), *_composition_items(records), *_comparison_items(records)]
    return items[:limit] if limit is not None else items


def most_stable(records: list[MaterialRecord]) -> MaterialRecord | None:
    """The most stable of a formula's polymorphs, or None when that is not determined by the data."""
    if len(records) == 1:
        return records[0]
    if any(r.number("energy_above_hull") is None and r.number("formation_energy_per_atom") is None for r in records):
        return None
    return min(records, key=stability_key)


def _items(records: list[MaterialRecord], bulk_modulus: Callable[[Any], float]) -> Iterator[Item]:
    by_formula: Mapping[str, list[MaterialRecord]] = _group(records)
    asked_formulas: set[str] = set()
    for record in records:
        meta = {"material_id": record.material_id, "formula": record.formula, "groups": [record.reduced_formula]}
        polymorphs = by_formula[record.reduced_formula]
        if record.reduced_formula not in asked_formulas:
            asked_formulas.add(record.reduced_formula)
            stable = most_stable(polymorphs)
            ordering = stable.fields.get("ordering") if stable is not None else None
            if stable is not None and isinstance(ordering, str):
                yield Item(f"ordering:{record.reduced_formula}", ORDERING_QUESTION.format(formula=record.formula),
                           (ordering,), meta={"kind": "ordering", "material_id": stable.material_id,
                                              "formula": record.formula, "polymorphs": len(polymorphs),
                                              "groups": [record.reduced_formula]})  # fmt: skip
            mass = parse_formula(record.formula).weight
            yield Item(f"molar_mass:{record.reduced_formula}", MOLAR_MASS_QUESTION.format(formula=record.formula),
                       (_number(float(mass)),), meta={**meta, "kind": "molar_mass"})  # fmt: skip
        for kind, (field, question) in NUMBER_QUESTIONS.items():
            value = record.number(field)
            if value is not None:
                text = question.format(formula=record.formula, id=record.material_id)
                yield Item(f"{kind}:{record.material_id}", text, (_number(value),), meta={**meta, "kind": kind})
        tensor = _tensor(record)
        if tensor is not None:
            text = BULK_QUESTION.format(formula=record.formula, id=record.material_id)
            yield Item(f"bulk_modulus:{record.material_id}", text, (_number(bulk_modulus(tensor)),),
                       meta={**meta, "kind": "bulk_modulus"})  # fmt: skip


def _composition_items(records: list[MaterialRecord]) -> Iterator[Item]:
    seen: set[str] = set()
    for record in records:
        composition = parse_formula(record.formula)
        if record.reduced_formula in seen or len(composition.elements) < 2:
            continue
        seen.add(record.reduced_formula)
        element = max(composition.elements, key=lambda el: (composition.get_wt_fraction(el), el.symbol))
        percent = 100 * float(composition.get_wt_fraction(element))
        yield Item(f"weight_percent:{record.reduced_formula}",
                   WEIGHT_PERCENT_QUESTION.format(element=element.symbol, formula=record.formula), (_number(percent),),
                   meta={"kind": "weight_percent", "material_id": record.material_id, "formula": record.formula,
                         "element": element.symbol, "groups": [record.reduced_formula]})  # fmt: skip


def _comparison_items(records: list[MaterialRecord]) -> Iterator[Item]:
    for kind, (field, pick, question) in COMPARE_QUESTIONS.items():
        having = [r for r in records if r.number(field) is not None]
        for a, b in zip(having[0::2], having[1::2], strict=False):  # disjoint pairs: each record in one question
            va, vb = a.number(field), b.number(field)
            assert va is not None and vb is not None
            if abs(va - vb) < COMPARE_GAP * max(abs(va), abs(vb), 1e-9):
                continue
            winner = a if pick(va, vb) == va else b
            text = question.format(a=a.formula, a_id=a.material_id, b=b.formula, b_id=b.material_id)
            yield Item(f"{kind}:{a.material_id}:{b.material_id}", text, (winner.material_id,),
                       meta={"kind": kind, "material_id": winner.material_id, "formula": winner.formula,
                             "pair": [a.material_id, b.material_id],
                             "groups": sorted({a.reduced_formula, b.reduced_formula})})  # fmt: skip


def _group(records: list[MaterialRecord]) -> Mapping[str, list[MaterialRecord]]:
    groups: dict[str, list[MaterialRecord]] = defaultdict(list)
    for record in records:
        groups[record.reduced_formula].append(record)
    return groups


def _tensor(record: MaterialRecord) -> Any:
    raw = record.fields.get("elastic_tensor")
    if isinstance(raw, Mapping):
        return raw.get("raw") or raw.get("ieee_format")
    return raw if isinstance(raw, list) else None


def _number(value: float) -> str:
    return f"{value:.6g}"
