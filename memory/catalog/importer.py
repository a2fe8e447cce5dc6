"""Read catalog items from someone else's CSV or JSONL, with a field mapping; errors name file:line:field.

`mapping` is ours -> theirs: `{"countries": "country", "genres": "listed_in"}` reads our `countries` from their
`country` column. Unmapped fields are read from a column of the same name, and columns nobody asked for are
ignored. Values are taken in the shapes real exports use: lists as JSON lists or comma-separated text, years as
numbers or digit strings, and an optional `duration` column like "94 min" / "2 Seasons" that fills
`duration_min` or `seasons`. The packaged catalog's own format (CatalogItem.to_dict per line) needs no mapping.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agentdistill.errors import InputDataError
from agentdistill.jsonl import json_objects
from agentdistill.memory.catalog.items import MOVIE, SHOW, CatalogItem, InvalidCatalogValue

ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(CatalogItem))
IMPORT_FIELDS = (*ITEM_FIELDS, "duration")  # `duration`: "94 min" or "2 Seasons", as the Netflix export has it
REQUIRED = ("id", "title", "type", "release_year")
LIST_FIELDS = ("director", "cast", "countries", "genres")
_TYPE_WORDS = {"movie": MOVIE, "film": MOVIE, "tv show": SHOW, "tv": SHOW, "show": SHOW, "series": SHOW}
_DURATION = re.compile(r"\s*(\d+)\s*(min|mins|minutes|season|seasons)\.?\s*", re.IGNORECASE)


def import_catalog(path: Path, mapping: Mapping[str, str] | None = None) -> list[CatalogItem]:
    """Items from a `.csv` (header row) or `.jsonl` file; ids must be unique. Raises InputDataError on bad data."""
    path = Path(path)
    mapping = dict(mapping or {})
    for ours in mapping:
        if ours not in IMPORT_FIELDS:
            guess = difflib.get_close_matches(ours, IMPORT_FIELDS, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else f"known fields: {', '.join(IMPORT_FIELDS)}"
            raise InputDataError(path, 0, f"the mapping names unknown field {ours!r}: {hint}", field=ours)
    if not path.is_file():
        raise InputDataError(path, 0, "no such file: pass a .csv or .jsonl file of catalog items")
    items: list[CatalogItem] = []
    first_line: dict[str, int] = {}
    checked_columns = False
    for line, record in _records(path):
        if not checked_columns:
            _check_columns(path, line, record, mapping)
            checked_columns = True
        item = _item(path, line, record, mapping)
        if item.id in first_line:
            raise InputDataError(
                path,
                line,
                f"id {item.id!r} was already used on line {first_line[item.id]}",
                field=mapping.get("id", "id"),
            )
        first_line[item.id] = line
        items.append(item)
    if not items:
        raise InputDataError(path, 0, "the file holds no items")
    return items


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        yield from json_objects(path)
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for record in reader:
                yield reader.line_num, {k: v for k, v in record.items() if k is not None}
    else:
        raise InputDataError(path, 0, f"unknown file type {suffix or '(none)'!r}: use .csv, .tsv or .jsonl")


def _check_columns(path: Path, line: int, record: Mapping[str, Any], mapping: Mapping[str, str]) -> None:
    """A mapped column missing from the first record is a typo in the mapping, not missing data: say so early."""
    for ours, theirs in mapping.items():
        if theirs not in record:
            guess = difflib.get_close_matches(theirs, list(record), n=1)
            hint = f" Did you mean {guess[0]!r}?" if guess else f" Columns: {', '.join(map(str, record))}."
            raise InputDataError(path, line, f"mapped column {theirs!r} (for {ours!r}) is not in the file.{hint}")


def _item(path: Path, line: int, record: Mapping[str, Any], mapping: Mapping[str, str]) -> CatalogItem:
    def raw(ours: str) -> Any:
        value = record.get(mapping.get(ours, ours))
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    def fail(ours: str, problem: str) -> InputDataError:
        return InputDataError(path, line, problem, field=mapping.get(ours, ours))

    for ours in REQUIRED:
        if raw(ours) is None:
            raise fail(ours, "is missing or empty" + (f" (our field {ours!r})" if ours in mapping else ""))
    values: dict[str, Any] = {}
    for ours in ("id", "title", "rating", "description"):
        value = raw(ours)
        if isinstance(value, dict | list):
            raise fail(ours, f"must be text, got {type(value).__name__}")
        values[ours] = "" if value is None else str(value).strip()
    kind = str(raw("type")).strip()
    values["type"] = _TYPE_WORDS.get(kind.casefold(), kind)
    for ours in LIST_FIELDS:
        values[ours] = _as_list(raw(ours), fail, ours)
    values["release_year"] = _as_int(raw("release_year"), fail, "release_year")
    for ours in ("duration_min", "seasons"):
        value = raw(ours)
        values[ours] = None if value is None else _as_int(value, fail, ours)
    duration = raw("duration")
    if duration is not None and values["duration_min"] is None and values["seasons"] is None:
        match = _DURATION.fullmatch(str(duration))
        if match is None:
            raise fail("duration", f"{duration!r} is not a duration like '94 min' or '2 Seasons'")
        target = "duration_min" if match.group(2).lower().startswith("min") else "seasons"
        values[target] = int(match.group(1))
    try:
        return CatalogItem(**values)
    except InvalidCatalogValue as exc:
        raise fail(exc.field, str(exc)) from exc


def _as_list(value: Any, fail: Any, ours: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            raise fail(ours, "must be a list of strings")
        return tuple(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    raise fail(ours, f"must be a list or comma-separated text, got {type(value).__name__}")


def _as_int(value: Any, fail: Any, ours: str) -> int:
    if isinstance(value, bool):
        raise fail(ours, f"must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.0+)?\s*", value):
        return int(float(value))
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        return int(match.group(1))  # "94 min" in a duration_min column
    raise fail(ours, f"must be a whole number, got {value!r}")
