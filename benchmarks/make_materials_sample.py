"""Regenerate the shipped materials sample from the shared MP records file (reproducible: same input, same bytes).

    python -m agentdistill.benchmarks.make_materials_sample --shared ../shared/data

Takes records of materials/mp_records_shared.jsonl that have a formula and at least one headline property
(magnetic ordering, magnetization, elastic tensor, formation energy, band gap), in this order until TARGET:
every record with an elastic tensor; every record with a band gap or an energy above hull; every record with a
rare magnetic ordering (AFM, FiM), so each ordering is represented; up to POLYMORPHS records of each formula
that has several (lowest ids first: the longest-known structures, e.g. rutile and anatase TiO2); then records
with a magnetic ordering, lowest ids first. Each chosen line is copied unchanged to
agentdistill/data/materials_sample.jsonl, sorted by id. Materials Project data is CC BY 4.0, and so is the
file written here (see MATERIALS_SAMPLE_LICENSE.md).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from agentdistill.memory.materials.records import MaterialRecord, id_key, load_records
from agentdistill.paths import atomic_write

TARGET = 80
POLYMORPHS = 5  # per formula: enough to show ordering by stability without one formula filling the sample
RARE_ORDERINGS = ("AFM", "FiM")
HEADLINE = (
    "ordering",
    "total_magnetization_normalized_formula_units",
    "elastic_tensor",
    "formation_energy_per_atom",
    "band_gap",
)
SOURCE = Path("materials") / "mp_records_shared.jsonl"
DATA_DIR = Path(__file__).resolve().parents[1] / "agentdistill" / "data"


def has_any(record: MaterialRecord, names: Sequence[str]) -> bool:
    return any(record.get(name) is not None for name in names)


def select(records: Sequence[MaterialRecord], target: int = TARGET) -> list[MaterialRecord]:
    """The sample: the tiers of the module docstring, in order, until `target` records; sorted by id."""
    eligible = sorted((r for r in records if has_any(r, HEADLINE)), key=lambda r: id_key(r.material_id))
    by_formula: dict[str, list[MaterialRecord]] = defaultdict(list)
    for record in eligible:
        by_formula[record.formula].append(record)
    tiers = [
        [r for r in eligible if r.get("elastic_tensor") is not None],
        [r for r in eligible if has_any(r, ("band_gap", "energy_above_hull"))],
        [r for r in eligible if r.get("ordering") in RARE_ORDERINGS],
        [r for group in by_formula.values() if len(group) > 1 for r in group[:POLYMORPHS]],
        [r for r in eligible if r.get("ordering") is not None],
    ]
    chosen: dict[str, MaterialRecord] = {}
    for tier in tiers:
        for record in tier:
            if len(chosen) < target:
                chosen.setdefault(record.material_id, record)
    return sorted(chosen.values(), key=lambda r: id_key(r.material_id))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--target", type=int, default=TARGET)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    source = args.shared / SOURCE
    records = load_records(source, missing_formula="skip")  # formula-less records cannot be looked up: left out
    lines = {}
    for raw in source.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            lines[json.loads(raw)["material_id"]] = raw
    chosen = select(records, args.target)
    out = args.out / "materials_sample.jsonl"
    with atomic_write(out) as handle:
        for record in chosen:
            handle.write(lines[record.material_id] + "\n")
    formulas = len({r.reduced_formula for r in chosen})
    print(f"{len(chosen)} records ({formulas} formulas) from {source} -> {out} ({out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
