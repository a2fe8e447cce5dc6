"""The figures of a report: `runner.summarize` with its 95% interval, accuracy by item meta, paired outcomes.

Every figure comes from `runner.summarize`, so the report, the JSON and `bench run`'s closing line agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agentdistill.benchmarks.results import ItemResult
from agentdistill.benchmarks.runner import RunSummary, summarize
from agentdistill.benchmarks.suites.rec_metrics import rec_summary

BREAKDOWN_KEYS = ("type", "level", "hops")  # item meta fields worth splitting accuracy by
_Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = _Z95) -> tuple[float, float] | None:
    """95% interval on an accuracy; unlike p ± z·se it stays inside [0, 1] and is honest at 0/n and n/n."""
    if n <= 0:
        return None
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    # rounding can put a bound a hair past p at 0/n or n/n (3e-17 above 0): that would be a negative error bar
    return max(0.0, min(p, (centre - spread) / scale)), min(1.0, max(p, (centre + spread) / scale))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant item is a fair coin flip."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact big-int division: no overflow at thousands of items


def summary_dict(results: Sequence[ItemResult]) -> dict[str, Any]:
    """`summarize` plus the Wilson interval on accuracy (and the recommendation figures of rec runs), JSON-ready."""
    summary: RunSummary = summarize(results)
    ci = wilson_interval(summary.correct, summary.n)
    return {**summary.as_dict(), **rec_summary(results), "accuracy_ci95": None if ci is None else [ci[0], ci[1]]}


def breakdown(results: Sequence[ItemResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """Accuracy per value of each meta field in BREAKDOWN_KEYS that the items carry (question type, level, hops)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in BREAKDOWN_KEYS:
        groups: dict[str, list[ItemResult]] = {}
        for r in results:
            if r.meta.get(key) is not None:
                groups.setdefault(str(r.meta[key]), []).append(r)
        if groups:
            out[key] = {
                value: {
                    "n": len(g),
                    "correct": sum(r.correct for r in g),
                    "accuracy": sum(r.correct for r in g) / len(g),
                    "f1": sum(float(r.metrics.get("f1", 0.0)) for r in g) / len(g),
                }
                for value, g in sorted(groups.items(), key=lambda kv: _natural(kv[0]))
            }
    return out


def paired_counts(a: Sequence[ItemResult], b: Sequence[ItemResult]) -> dict[str, Any]:
    """Two runs over the same items: how many both, only one or neither got right, with McNemar's p."""
    right_b = {r.item_id: r.correct for r in b}
    pairs = [(r.correct, right_b[r.item_id]) for r in a]
    counts = {
        "both_right": sum(x and y for x, y in pairs),
        "only_a": sum(x and not y for x, y in pairs),
        "only_b": sum(y and not x for x, y in pairs),
        "both_wrong": sum(not x and not y for x, y in pairs),
    }
    return {**counts, "n": len(pairs), "mcnemar_p": mcnemar_exact(counts["only_a"], counts["only_b"])}


def _natural(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order (hops 2, 3, 10), then words alphabetically."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
