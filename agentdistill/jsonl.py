"""Reading JSONL input files line by line, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentdistill.errors import InputDataError


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of `path`; bytes that are not UTF-8 raise InputDataError naming the
    line and column, where reading the file as text would die with a bare UnicodeDecodeError."""
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputDataError(
                    path, number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): save the"
                    " file as UTF-8",
                ) from None  # fmt: skip


def json_value(raw: str, path: str | Path, line: int) -> Any:
    """One line's JSON value; InputDataError naming path:line (and the column) when it is not JSON."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputDataError(path, line, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError:
        raise InputDataError(path, line, "JSON nested too deeply") from None


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of `path`.

    A line that is not valid JSON, or is JSON but not an object, raises InputDataError naming path:line, so a
    caller can validate a whole file before doing any work with it.
    """
    for number, raw in text_lines(path):
        if not raw.strip():
            continue
        row = json_value(raw, path, number)
        if not isinstance(row, dict):
            raise InputDataError(path, number, f"expected a JSON object, got {type(row).__name__}")
        yield number, row
