"""Student vs teacher cost per solved item, from the eval runs of a `distill run` output dir.

`distill run` evaluates the teacher, the untrained student and the trained student with the same graph on the
same held-out items (OUT/eval/{teacher,base-student,student}). This reads those three runs, keeps the items
that finished in all of them (so a resumed or cut-short run cannot skew the ratio), and reports seconds and
tokens per item and per *solved* item. Per solved item is the figure a user pays: a fast student that solves
nothing is infinitely expensive, and the ratio says so (`inf`) instead of looking cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agentdistill.benchmarks.results import ItemResult, RunDir
from agentdistill.errors import AgentDistillError

ROLES = ("teacher", "base-student", "student")


class EvalRunsMissing(AgentDistillError):
    """The distill output dir has no finished teacher eval to compare against."""


@dataclass(frozen=True)
class CostRow:
    """One model's cost on the common items of a distill run's eval."""

    role: str
    model: str
    items: int
    solved: int
    seconds_per_item: float
    seconds_per_solved: float  # inf when nothing was solved
    tokens_per_solved: float
    ratio_to_teacher: float  # seconds per solved item, this model / the teacher (< 1: cheaper)


def cost_rows(out: Path) -> list[CostRow]:
    """The three eval runs of `out`, restricted to the items all three finished."""
    runs = {role: RunDir.open(out / "eval" / role) for role in ROLES if (out / "eval" / role).is_dir()}
    if "teacher" not in runs:
        raise EvalRunsMissing(
            f"{out}/eval/teacher is missing: run `agentdistill distill run --out {out}` to the end first."
        )
    results = {role: {r.item_id: r for r in run.results()} for role, run in runs.items()}
    common = set.intersection(*(set(by_id) for by_id in results.values()))
    rows = [_row(role, runs[role].spec.model, [results[role][i] for i in sorted(common)]) for role in runs]
    teacher = rows[0].seconds_per_solved
    # A teacher that solved nothing leaves no baseline: the ratio is undefined (nan), not 0.
    ratio = (lambda s: s / teacher) if math.isfinite(teacher) else (lambda s: math.nan)
    return [CostRow(**{**asdict(row), "ratio_to_teacher": ratio(row.seconds_per_solved)}) for row in rows]


def cost_table(out: Path | str, rows: Sequence[CostRow]) -> str:
    """The rows of one output dir as a plain-text table, headed by the dir and its common item count."""
    lines = [
        f"{out} ({rows[0].items} common eval items)",
        f"{'role':<13} {'solved':>7} {'s/item':>8} {'s/solved':>9} {'tok/solved':>11} {'vs teacher':>11}  model",
    ]
    for r in rows:
        lines.append(
            f"{r.role:<13} {r.solved:>3}/{r.items:<3} {r.seconds_per_item:>8.1f} {r.seconds_per_solved:>9.1f} "
            f"{r.tokens_per_solved:>11.0f} {r.ratio_to_teacher:>10.2f}x  {r.model}"
        )
    return "\n".join(lines)


def _row(role: str, model: str, results: Sequence[ItemResult]) -> CostRow:
    solved = sum(r.correct for r in results)
    seconds = sum(r.latency_s for r in results)
    tokens = sum(r.tokens for r in results)
    return CostRow(
        role=role, model=model, items=len(results), solved=solved,
        seconds_per_item=seconds / max(1, len(results)),
        seconds_per_solved=seconds / solved if solved else math.inf,
        tokens_per_solved=tokens / solved if solved else math.inf, ratio_to_teacher=math.nan,
    )  # fmt: skip
