"""The materials store's SQLite side: schema, bulk insert, and the few parameterized selects the store runs.

Searchable scalars are columns (NULL when a record lacks them); the whole record is kept as JSON in `data`.
Every value reaches SQLite as a `?` parameter and lists travel as one JSON text read with `json_each`; the only
SQL text that varies is a column name taken from the fixed `NUMERIC_COLUMNS`, never from user text.
`id_rank` is each record's place in natural id order (mp-13 before mp-1008728), the last tie-breaker of
every ordering, so SQL orders records exactly as `records.stability_key` does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from agentdistill.memory.materials.records import FORMULA_FIELD, ID_FIELD, MaterialRecord, id_key

# the numeric columns by_property can range over: column -> what it holds
NUMERIC_COLUMNS: dict[str, str] = {
    "nelements": "number of elements",
    "nsites": "sites in the unit cell",
    "energy_above_hull": "eV/atom above the convex hull (0 = stable)",
    "formation_energy_per_atom": "eV/atom",
    "decomposition_enthalpy": "eV/atom",
    "band_gap": "eV",
    "magnetization": "total magnetization, muB per formula unit",
    "total_magnetization": "total magnetization, muB per cell",
    "bulk_modulus_vrh": "Voigt-Reuss-Hill bulk modulus, GPa",
    "homogeneous_poisson": "Poisson ratio",
    "universal_anisotropy": "elastic anisotropy index",
    "density": "g/cm^3",
    "volume": "A^3 per cell",
}
_FIELD_OF = {"magnetization": "total_magnetization_normalized_formula_units"}  # column -> MP field, where they differ


def scalar(record: MaterialRecord, column: str) -> float | None:
    """The value of numeric column `column` for `record` (None when the record lacks it)."""
    if column == "nelements":
        return record.nelements
    if column == "bulk_modulus_vrh":
        return record.bulk_modulus_vrh
    return record.number(_FIELD_OF.get(column, column))


SCHEMA = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,               -- build order; also the record's vector id in the FAISS index
    material_id TEXT NOT NULL UNIQUE,
    id_rank INTEGER NOT NULL,              -- natural id order
    formula TEXT NOT NULL,                 -- formula_pretty as given
    reduced_formula TEXT NOT NULL,
    chemsys TEXT NOT NULL,
    elements TEXT NOT NULL,                -- JSON list of sorted symbols
    ordering TEXT,
    {numeric},                             -- NUMERIC_COLUMNS, all REAL
    data TEXT NOT NULL                     -- the whole record as JSON (MaterialRecord.to_dict)
);
CREATE INDEX records_formula ON records(formula);
CREATE INDEX records_reduced ON records(reduced_formula);
CREATE INDEX records_chemsys ON records(chemsys);
CREATE TABLE record_elements (seq INTEGER NOT NULL, element TEXT NOT NULL, PRIMARY KEY (element, seq));
""".replace("{numeric}", ", ".join(f"{c} REAL" for c in NUMERIC_COLUMNS))

_COLUMNS = "seq, material_id, formula, reduced_formula, chemsys, elements, data"
STABLE_ORDER = (
    "energy_above_hull IS NULL, energy_above_hull,"
    " formation_energy_per_atom IS NULL, formation_energy_per_atom, id_rank"
)
Row = tuple[int, str, str, str, str, str, str]  # the `_COLUMNS` of one record


def create(path: Path, records: Sequence[MaterialRecord]) -> None:
    """Write a new database file holding `records` (the caller writes into a fresh generation directory)."""
    ranks = {r.material_id: n for n, r in enumerate(sorted(records, key=lambda r: id_key(r.material_id)))}
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        with db:
            columns = ["seq", "material_id", "id_rank", "formula", "reduced_formula", "chemsys", "elements"]
            columns += ["ordering", *NUMERIC_COLUMNS, "data"]  # the fixed names above, never user text
            db.executemany(
                f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (
                    (
                        seq,
                        r.material_id,
                        ranks[r.material_id],
                        r.formula,
                        r.reduced_formula,
                        r.chemsys,
                        json.dumps(list(r.elements)),
                        r.get("ordering"),
                        *(scalar(r, c) for c in NUMERIC_COLUMNS),
                        json.dumps(r.to_dict(), ensure_ascii=False),
                    )
                    for seq, r in enumerate(records)
                ),
            )
            db.executemany(
                "INSERT INTO record_elements (seq, element) VALUES (?, ?)",
                ((seq, e) for seq, r in enumerate(records) for e in r.elements),
            )
    finally:
        db.close()


def open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only and shareable across threads: graphs query from worker threads (the caller holds a lock)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])


def by_ids(db: sqlite3.Connection, ids: Sequence[str]) -> list[Row]:
    return db.execute(f"SELECT {_COLUMNS} FROM records WHERE material_id IN (SELECT value FROM json_each(?))",
                      (json.dumps(list(ids)),)).fetchall()  # fmt: skip


def by_seqs(db: sqlite3.Connection, seqs: Sequence[int]) -> list[Row]:
    return db.execute(f"SELECT {_COLUMNS} FROM records WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
                      (json.dumps([int(s) for s in seqs]),)).fetchall()  # fmt: skip


def by_formula(db: sqlite3.Connection, formula: str, reduced: str | None) -> list[Row]:
    """Records written as `formula` or with reduced formula `reduced`, most stable first."""
    return db.execute(
        f"SELECT {_COLUMNS} FROM records WHERE formula = ? OR reduced_formula = ? ORDER BY {STABLE_ORDER}",
        (formula, reduced if reduced is not None else formula),
    ).fetchall()


def by_elements(db: sqlite3.Connection, elements: Sequence[str], *, exact: bool, limit: int | None) -> list[Row]:
    """Records of exactly this chemical system, or containing all of `elements`; fewest elements first,
    then by reduced formula, then most stable."""
    wanted = sorted(set(elements))
    if exact:
        where, params = "chemsys = ?", ["-".join(wanted)]
    else:
        where = (
            "seq IN (SELECT seq FROM record_elements WHERE element IN (SELECT value FROM json_each(?))"
            " GROUP BY seq HAVING COUNT(*) = ?)"
        )
        params = [json.dumps(wanted), len(wanted)]
    sql = f"SELECT {_COLUMNS} FROM records WHERE {where} ORDER BY nelements, reduced_formula, {STABLE_ORDER}"
    return db.execute(sql + " LIMIT ?", [*params, -1 if limit is None else limit]).fetchall()


def by_range(
    db: sqlite3.Connection, column: str, low: float | None, high: float | None, *, descending: bool, limit: int
) -> list[Row]:
    """Records whose `column` is known and within [low, high], by value (then natural id order)."""
    if column not in NUMERIC_COLUMNS:
        raise ValueError(f"{column!r} is not a numeric column")  # store.py names the valid ones to the user
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {_COLUMNS} FROM records WHERE {column} IS NOT NULL AND (? IS NULL OR {column} >= ?)"
        f" AND (? IS NULL OR {column} <= ?) ORDER BY {column} {direction}, id_rank LIMIT ?"
    )
    return db.execute(sql, (low, low, high, high, limit)).fetchall()


def by_ordering(db: sqlite3.Connection, ordering: str, limit: int) -> list[Row]:
    """Records with this magnetic ordering code, most stable first."""
    sql = f"SELECT {_COLUMNS} FROM records WHERE ordering = ? ORDER BY {STABLE_ORDER} LIMIT ?"
    return db.execute(sql, (ordering, limit)).fetchall()


def formulas(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(formula, reduced formula) pairs present, in natural id order of their first record."""
    rows = db.execute("SELECT formula, reduced_formula FROM records ORDER BY id_rank").fetchall()
    return list(dict.fromkeys((str(a), str(b)) for a, b in rows))


def material_ids(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT material_id FROM records ORDER BY id_rank")]


def decode(row: Row) -> MaterialRecord:
    """The record a row holds; trusted (validated at build), so pymatgen is not needed to read it back."""
    _, material_id, formula, reduced, chemsys, elements, data = row
    fields = {k: v for k, v in json.loads(data).items() if k not in (ID_FIELD, FORMULA_FIELD)}
    return MaterialRecord(material_id, formula, reduced, tuple(json.loads(elements)), chemsys, fields)
