"""Reading JSONL input files line by line, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentdistill.errors import InputDataError


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of `path`.

    A line that is not valid JSON, or is JSON but not an object, raises InputDataError naming path:line, so a
    caller can validate a whole file before doing any work with it.
    """
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputDataError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(row, dict):
                raise InputDataError(path, number, f"expected a JSON object, got {type(row).__name__}")
            yield number, row
