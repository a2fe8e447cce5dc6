"""`agentdistill materials ...`: import Materials Project records into a store, see what a store holds, search it.

`materials import` reads MP-shaped records (one JSON object per line, as the MP API returns them, or one JSON array)
from one or more files, merges them (a later file's record replaces an earlier one with the same material_id) and
builds a store directory that `ask/chat --agent materials --materials DIR` answers from. Bad input stops the import
with a file:line:field message before anything is written, so a previous store in DIR stays as it was.
`materials info` and `materials search` read such a directory, or without `--dir` the shipped sample (built on
first use under the home). Search prints the lines the agent's tools show the model. Heavy imports (pymatgen,
FAISS, sentence-transformers) happen inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.errors import AgentDistillError

if TYPE_CHECKING:
    from agentdistill.memory.embedders import Embedder
    from agentdistill.memory.materials import MaterialRecord, MaterialsStore

SEARCH_KINDS = ("auto", "formula", "elements", "text", "id")
_MATERIAL_ID = re.compile(r"^(?:mp|mvc)-\d+$")  # what the tools take as an id
_ELEMENT_LIST = re.compile(r"[-,;/]")  # "Fe-O", "Fe,O": an element set, not a formula
_WHITESPACE = re.compile(r"\s*")
_MAGNETIZATION = ("total_magnetization_normalized_formula_units", "total_magnetization")

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store directory (`materials import`); default: the shipped sample, built on first use under the home.",
)
embedder_option = click.option(
    "--embedder",
    default=None,
    help="`minilm` (default), a local sentence-transformers dir, or `hashing:DIM`. With --dir: default the "
    "embedder the store was built with.",
)


class EmptyMaterialsImport(AgentDistillError):
    def __init__(self, files: Sequence[Path]) -> None:
        super().__init__(
            f"{', '.join(map(str, files))} hold no materials records: give files with one MP record (a JSON object "
            "with material_id and formula_pretty) per line; with --skip-missing-formula every record lacked a formula"
        )


class MaterialsSearchFailed(AgentDistillError):
    """A search argument the store cannot answer (an unknown id, a malformed formula); the message says the fix."""


@click.group("materials")
def materials() -> None:
    """Materials Project records: import MP-shaped JSONL into a store, inspect it, search it."""


@materials.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Store directory to build; a store already there is replaced atomically (readers keep the old one).",
)
@embedder_option
@click.option(
    "--skip-missing-formula",
    is_flag=True,
    help="Drop records with neither formula_pretty nor composition (raw API dumps) instead of failing.",
)
@json_option
def import_(
    files: tuple[Path, ...], directory: Path, embedder: str | None, skip_missing_formula: bool, as_json: bool
) -> None:
    """Build a store in DIR from MP-shaped FILES (JSONL, or a JSON array); a later file's record replaces an
    earlier one with the same material_id. A bad record stops the import with file:line:field, writing nothing."""
    from agentdistill.memory.materials import MaterialsStore

    records, replaced, counts = merge_files(files, "skip" if skip_missing_formula else "error")
    for path, count in counts.items():
        click.echo(f"{path}: {count} records", err=True)
    chosen = _embedder(embedder)
    click.echo(f"embedding {len(records)} records with {chosen.name} into {directory}...", err=True)
    store = MaterialsStore.build(directory, records, chosen)
    data = {**store_info(store), "files": {str(p): n for p, n in counts.items()}, "replaced": replaced}
    store.close()
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"imported {data['records']} records into {directory} ({replaced} replaced by a later file): "
        f"{data['formulas']} formulas, {data['elements']} elements, "
        f"{data['with_elastic_tensor']} with an elastic tensor"
    )


@materials.command("info")
@dir_option
@embedder_option
@json_option
def info(directory: Path | None, embedder: str | None, as_json: bool) -> None:
    """Where a store is, its embedder, and what it holds: records, formulas, chemical systems, magnetic orderings,
    and how many records have an elastic tensor, a band gap or a magnetization."""
    with _open(directory, embedder) as store:
        data = store_info(store)
    if as_json:
        emit_json(data)
        return
    rows = [(k, _cell(v)) for k, v in data.items() if k != "directory"]
    table(f"materials {data['directory']}", ["field", "value"], rows)


@materials.command("search")
@click.argument("query")
@click.option(
    "--by",
    type=click.Choice(SEARCH_KINDS),
    default="auto",
    show_default=True,
    help="formula (Fe2O3), elements (Fe-O or Fe,O), text (by meaning) or id (mp-...). auto: id when QUERY looks "
    "like mp-N, elements when it lists elements, formula when it parses as one, else text.",
)
@click.option("--exact", is_flag=True, help="elements: only records made of exactly these elements.")
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Hits of a text search, and records in --json output (formula and element lists show the tools' 15).",
)
@dir_option
@embedder_option
@json_option
def search(
    query: str, by: str, exact: bool, k: int, directory: Path | None, embedder: str | None, as_json: bool
) -> None:
    """Look records up by formula, elements, meaning or id, printing the lines the materials agent's tools show
    the model (or, with --json, the records: material_id, formula and the headline fields)."""
    kind = by if by != "auto" else guess_kind(query)
    with _open(directory, embedder) as store:
        if as_json:
            emit_json({"query": query, "by": kind, **_json_hits(store, kind, query, exact, k)})
            return
        click.echo(_text_hits(store, kind, query, exact, k))


def guess_kind(query: str) -> str:
    """What `--by auto` searches: an id (mp-N), an element set ("Fe-O", "Fe,O"), a formula pymatgen reads
    (no spaces: "Fe O" would parse as FeO), else free text."""
    from agentdistill.memory.materials import InvalidMaterialsQuery, parse_formula
    from agentdistill.memory.materials.queries import element_symbols

    text = query.strip()
    if _MATERIAL_ID.match(text):
        return "id"
    if _ELEMENT_LIST.search(text) and not re.search(r"\s", text):
        try:
            element_symbols(text)
            return "elements"
        except InvalidMaterialsQuery:
            pass
    if text and not re.search(r"\s", text):
        try:
            parse_formula(text)
            return "formula"
        except ValueError:
            pass
    return "text"


def _text_hits(store: MaterialsStore, kind: str, query: str, exact: bool, k: int) -> str:
    """The tools' text for formula, elements and id; for text, one summary line per hit with its score."""
    from agentdistill.memory.materials import summary
    from agentdistill.tools.materials import make_materials_tools

    if kind == "text":
        hits = store.search(query, k=k)
        if not hits:
            return f"no records match {query!r}"
        lines = [f"{len(hits)} record(s) closest in meaning to {query!r}, best first:"]
        return "\n".join(lines + [f"{score:.3f}  {summary(record)}" for record, score in hits])
    tools = {tool.name: tool for tool in make_materials_tools(store)}
    if kind == "formula":
        text = tools["search_formula"](formula=query)
    elif kind == "elements":
        text = tools["search_elements"](elements=[query], exact=exact)
    else:
        record = store.get(query)  # MaterialNotFound names close ids (or a formula's ids), in words for a person
        text = tools["get_record"](material_id=record.material_id)
        if text.startswith("Error: "):  # an imported id the tools do not take as one (not mp-N): its summary
            return summary(record)
    if text.startswith("Error: "):  # a fault the model would fix by calling again: for a person, exit 2
        raise MaterialsSearchFailed(text.removeprefix("Error: "))
    return text


def _json_hits(store: MaterialsStore, kind: str, query: str, exact: bool, k: int) -> dict[str, Any]:
    """{"count": all matches, "records": the first k as {material_id, formula, reduced_formula, chemsys, fields}}."""
    scores: list[float] = []
    if kind == "text":
        hits = store.search(query, k=k)
        found, scores = [r for r, _ in hits], [s for _, s in hits]
    elif kind == "formula":
        found = store.by_formula(query)
    elif kind == "elements":
        found = store.by_elements(query, exact=exact)
    else:
        found = [store.get(query)]  # MaterialNotFound names close ids
    rows = [_json_record(record, full=kind == "id") for record in found[:k]]
    for row, score in zip(rows, scores, strict=False):
        row["score"] = round(score, 4)
    return {"count": len(found), "records": rows}


def _json_record(record: MaterialRecord, *, full: bool) -> dict[str, Any]:
    from agentdistill.tools.materials import LINE_FIELDS  # here: it loads pymatgen, which `--help` does not need

    # a --json search shows the fields of the tools' record lines; --by id shows them all
    shown = (*LINE_FIELDS, "is_stable", "symmetry")
    fields = dict(record.fields) if full else {f: record.fields[f] for f in shown if f in record.fields}
    if not full:
        fields["has_elastic_tensor"] = record.get("elastic_tensor") is not None
    head = {"material_id": record.material_id, "formula": record.formula}
    return {**head, "reduced_formula": record.reduced_formula, "chemsys": record.chemsys, "fields": fields}


def store_info(store: MaterialsStore) -> dict[str, Any]:
    """Where the store is, its embedder, and `record_stats` over its records."""
    return {
        "directory": str(store.directory),
        "generation": store.generation.name,
        "embedder": store.embedder_name,
        "built": store.manifest.get("built"),
        **record_stats(store.records()),
    }


def record_stats(records: Sequence[MaterialRecord]) -> dict[str, Any]:
    """Counts over records: distinct (reduced) formulas, elements and chemical systems, the orderings
    histogram, and how many have an elastic tensor, a band gap or a magnetization."""
    orderings = Counter(str(r.get("ordering", "unknown")) for r in records)
    return {
        "records": len(records),
        "formulas": len({r.reduced_formula for r in records}),
        "elements": len({e for r in records for e in r.elements}),
        "chemical_systems": len({r.chemsys for r in records}),
        "orderings": dict(orderings.most_common()),
        "with_elastic_tensor": sum(r.get("elastic_tensor") is not None for r in records),
        "with_band_gap": sum(r.number("band_gap") is not None for r in records),
        "with_magnetization": sum(any(r.number(f) is not None for f in _MAGNETIZATION) for r in records),
    }


def merge_files(
    files: Sequence[Path], missing_formula: Literal["error", "skip"]
) -> tuple[list[MaterialRecord], int, dict[Path, int]]:
    """Every file's records, merged by material_id (a later file's record replaces the earlier, in its place):
    (records, how many were replaced, records per file). Reads everything before anything is written."""
    merged: dict[str, MaterialRecord] = {}
    replaced, counts = 0, {}
    for path in files:
        records = read_records(path, missing_formula)
        counts[path] = len(records)
        for record in records:
            replaced += record.material_id in merged
            merged[record.material_id] = record
    if not merged:
        raise EmptyMaterialsImport(files)
    return list(merged.values()), replaced, counts


def read_records(path: Path, missing_formula: Literal["error", "skip"]) -> list[MaterialRecord]:
    """The records of one file: a JSON array when its first character is "[", else JSONL (load_records)."""
    from agentdistill.memory.materials import load_records

    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"\xef\xbb\xbf"):  # a BOM: the text decides, not it
        head = head[3:].lstrip()
    if head.startswith(b"["):
        return _array_records(path, missing_formula)
    return load_records(path, missing_formula=missing_formula)


def _array_records(path: Path, missing_formula: Literal["error", "skip"]) -> list[MaterialRecord]:
    """load_records for a file holding one JSON array of records; errors name the line each record starts on."""
    from agentdistill.memory.materials import InvalidMaterialRecord, record_from_dict

    records: list[MaterialRecord] = []
    first_line: dict[str, int] = {}
    for line, item in _array_items(path):
        if not isinstance(item, dict):
            problem = f"expected a JSON object (one MP record), got {type(item).__name__}"
            raise InvalidMaterialRecord(path, line, problem)
        try:
            record = record_from_dict(item, path=path, line=line)
        except InvalidMaterialRecord as exc:
            if missing_formula == "skip" and exc.field == "formula_pretty" and item.get("formula_pretty") is None:
                continue
            raise
        if record.material_id in first_line:
            raise InvalidMaterialRecord(
                path, line, f"{record.material_id!r} already appeared on line {first_line[record.material_id]}: each "
                "material must appear once; merge the two records or delete one", field="material_id",
            )  # fmt: skip
        first_line[record.material_id] = line
        records.append(record)
    return records


def _array_items(path: Path) -> Iterator[tuple[int, Any]]:
    """(line the item starts on, item) for each item of the JSON array in `path`, decoded one at a time so an
    error can name its line."""
    from agentdistill.memory.materials import InvalidMaterialRecord

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidMaterialRecord(
            path, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        ) from None
    decoder, line, counted = json.JSONDecoder(), 1, 0

    def at(pos: int) -> int:  # the line of `pos`, counting newlines only once (files may be large)
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, pos), pos
        return line

    pos = _WHITESPACE.match(text, _WHITESPACE.match(text).end() + 1).end()  # past "[" and the spaces after it
    closed = text.startswith("]", pos)
    if closed:
        pos = _WHITESPACE.match(text, pos + 1).end()
    while not closed:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidMaterialRecord(
                path, exc.lineno, f"not valid JSON ({exc.msg} at column {exc.colno}): the file must be one JSON "
                "array of MP records (or one record per line)",
            ) from None  # fmt: skip
        except RecursionError:
            raise InvalidMaterialRecord(path, at(pos), "JSON nested too deeply: each item must be one record") from None
        yield at(pos), item
        pos = _WHITESPACE.match(text, end).end()
        closed = text.startswith("]", pos)
        if not closed and not text.startswith(",", pos):
            raise InvalidMaterialRecord(path, at(pos), "expected ',' or ']' after a record: fix the JSON array")
        pos = _WHITESPACE.match(text, pos + 1).end()
    if pos < len(text):
        raise InvalidMaterialRecord(path, at(pos), "text after the array's closing ']': remove it")


def _embedder(spec: str | None) -> Embedder:
    from agentdistill.memory.embedders import make_embedder

    return make_embedder(spec, device=settings(click.get_current_context()).torch_device)


def _open(directory: Path | None, embedder: str | None) -> MaterialsStore:
    """The store in `directory` (its recorded embedder unless one is given), else the shipped sample."""
    from agentdistill.memory.agent_sources import NoImportedMaterials
    from agentdistill.memory.materials import MaterialsStore, MaterialsStoreNotFound, default_materials_store

    if directory is None:
        home = settings(click.get_current_context()).home
        click.echo(f"opening the shipped materials records in {home / 'materials'} (built on first use)...", err=True)
        return default_materials_store(home, _embedder(embedder))
    try:  # a given embedder must match the recorded one (MaterialsEmbedderMismatch says so)
        return MaterialsStore.open(directory, _embedder(embedder) if embedder else None)
    except MaterialsStoreNotFound:
        raise NoImportedMaterials(directory) from None


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return "" if value is None else str(value)
