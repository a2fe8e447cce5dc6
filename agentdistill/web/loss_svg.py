"""The training loss curve as SVG geometry, drawn on the server from the trainer's metrics.jsonl.

Only numbers leave here (polyline points, tick positions and labels made from numbers), so the template can
put them in an <svg> as attributes and text, and the distill page's poller can update them the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 28  # margins for the tick labels


@dataclass(frozen=True)
class LossCurve:
    """What the SVG draws: train and val polylines in pixel space and the axis ticks."""

    width: int
    height: int
    train: str  # "x,y x,y ..." for <polyline points=...>
    val: str
    x_ticks: list[tuple[float, str]]  # (pixel x, label)
    y_ticks: list[tuple[float, str]]  # (pixel y, label)
    last_step: int
    last_loss: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a line cut by a kill (or any unreadable line) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int | float):
            rows.append(row)
    return rows


def loss_curve(rows: Sequence[Mapping[str, Any]]) -> LossCurve | None:
    """The curve of `rows` (step, loss, val_loss); None when no row has a loss."""
    train = [(float(r["step"]), float(r["loss"])) for r in rows if _number(r.get("loss"))]
    val = [(float(r["step"]), float(r["val_loss"])) for r in rows if _number(r.get("val_loss"))]
    points = train + val
    if not points:
        return None
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    x_hi, y_hi = max(x_hi, x_lo + 1), max(y_hi, y_lo + 1e-6)
    pad = (y_hi - y_lo) * 0.05
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def x(step: float) -> float:
        return round(LEFT + (step - x_lo) / (x_hi - x_lo) * (WIDTH - LEFT - RIGHT), 1)

    def y(loss: float) -> float:
        return round(TOP + (y_hi - loss) / (y_hi - y_lo) * (HEIGHT - TOP - BOTTOM), 1)

    def line(series: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{x(s)},{y(v)}" for s, v in series)

    steps = sorted({round(x_lo + (x_hi - x_lo) * i / 4) for i in range(5)})  # whole steps, each once
    x_ticks = [(x(step), str(step)) for step in steps]
    y_ticks = [(y(y_lo + (y_hi - y_lo) * i / 4), f"{y_lo + (y_hi - y_lo) * i / 4:.3g}") for i in range(5)]
    return LossCurve(WIDTH, HEIGHT, line(train), line(val), x_ticks, y_ticks, int(max(p[0] for p in points)),
                     train[-1][1] if train else None)  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)  # no NaN, no inf
