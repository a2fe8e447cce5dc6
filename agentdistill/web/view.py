"""How values read on the trajectory, bench and distill pages: the templates call these (as `fmt.<name>`).

Each returns plain text; Jinja2 escapes it, so none of them needs to care what the text holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any


def when(stamp: float | None) -> str:
    """Epoch seconds as a local date and minute ("" when unknown), as `trajectories list` prints them."""
    return "" if stamp is None else dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def short(text: str | None, width: int = 80) -> str:
    """One line of at most `width` characters, with an ellipsis when cut."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def score(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def pretty(value: Any) -> str:
    """A JSON value indented for a <pre>."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def models(roles: Mapping[str, str]) -> str:
    """A run's models: the spec alone for one role, `role=spec` for several."""
    if len(roles) == 1:
        return next(iter(roles.values()))
    return ", ".join(f"{role}={spec}" for role, spec in roles.items())


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


def run_id(value: str) -> str:
    """A run id short enough for a table: uuid-long ids by their first 12 characters (a unique prefix)."""
    return value if len(value) <= 16 else value[:12] + "…"
