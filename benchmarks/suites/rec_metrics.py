"""Recommendation metrics: hit@k, constraint violations, parse accuracy, and their aggregates over a run.

Per session (rec_episode) these become an ItemResult's `metrics`; `rec_summary` aggregates them for
`bench run`, `bench report` and `bench compare`, so a figure means the same in all three:
- hit@k: share of sessions where the target was among the first k recommendations at some turn;
- turns to hit: mean turn of the first hit, over the sessions with a hit;
- violation rate: recommended titles breaking the session's hidden constraints, over all titles recommended
  (pooled, so a session that recommends more weighs more, as a user reading them would);
- stated violation rate: the same against only what the user had said by then (the agent's own fault);
- parse accuracy: mean over sessions of the per-turn mean field agreement between the agent's parsed
  preference and what the user had stated (sets by Jaccard, numbers exactly; fields set on either side).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentdistill.benchmarks.results import ItemResult
    from agentdistill.memory.catalog import CatalogItem, CatalogQuery

IGNORED_FIELDS = frozenset({"exclude_ids"})  # which titles were shown is the agent's bookkeeping, not a wish


def hit_at_k(recommended: Sequence[str], target_id: str, k: int) -> bool:
    return target_id in list(recommended)[:k]


def violates(query: CatalogQuery, item: CatalogItem | None) -> bool:
    """An unknown id (None) is a violation: the agent recommended something the catalog does not hold."""
    return item is None or bool(query.violations(item))


def violation_count(query: CatalogQuery, items: Sequence[CatalogItem | None]) -> int:
    return sum(violates(query, item) for item in items)


def field_agreement(stated: CatalogQuery, parsed: CatalogQuery) -> dict[str, float]:
    """Agreement in [0, 1] for every field set in either query: Jaccard for sets (any case), equality for numbers."""
    out: dict[str, float] = {}
    for f in dataclasses.fields(stated):
        if f.name in IGNORED_FIELDS:
            continue
        want, got = getattr(stated, f.name), getattr(parsed, f.name)
        if want in ((), None) and got in ((), None):
            continue
        if isinstance(want, tuple) or isinstance(got, tuple):
            a, b = {str(v).lower() for v in want or ()}, {str(v).lower() for v in got or ()}
            out[f.name] = len(a & b) / len(a | b)
        else:
            out[f.name] = float(want == got)
    return out


def parse_accuracy(stated: CatalogQuery, parsed: CatalogQuery) -> float:
    """Mean field agreement; 1.0 when neither side constrains anything (nothing said, nothing invented)."""
    agreement = field_agreement(stated, parsed)
    return sum(agreement.values()) / len(agreement) if agreement else 1.0


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def is_rec(results: Sequence[ItemResult]) -> bool:
    """Results from a recommendation suite carry `recommended` in their metrics."""
    return any("recommended" in r.metrics for r in results)


def rec_summary(results: Sequence[ItemResult]) -> dict[str, Any]:
    """The recommendation figures of a run (empty for other suites); None where nothing was measured."""
    if not is_rec(results):
        return {}
    # a session that crashed or timed out has no "hit" but is a miss all the same
    sessions = list(results) if any("hit" in r.metrics for r in results) else []
    hits = [r for r in sessions if r.metrics.get("hit")]
    shown = sum(float(r.metrics.get("recommended", 0.0)) for r in results)
    out: dict[str, Any] = {
        "hit_at_k": mean([float(r.metrics.get("hit", 0.0)) for r in sessions]),
        "turns_to_hit": mean([float(r.metrics["hit_turn"]) for r in hits]),
        "turns_mean": mean([float(r.metrics["turns"]) for r in sessions if "turns" in r.metrics]),
        "violation_rate": _pooled(results, "violating", shown),
        "stated_violation_rate": _pooled(results, "stated_violating", shown),
        "parse_accuracy": mean([float(r.metrics["parse_accuracy"]) for r in results if "parse_accuracy" in r.metrics]),
        "recommended_mean": shown / len(results) if results else None,
        "answered": mean([float(r.metrics.get("answered", 0.0)) for r in results]),
    }
    turns = sorted({int(k.removeprefix("hit_by_t")) for r in sessions for k in r.metrics if k.startswith("hit_by_t")})
    out["hit_by_turn"] = {str(t): mean([float(r.metrics.get(f"hit_by_t{t}", 0.0)) for r in sessions]) for t in turns}
    return out


def _pooled(results: Sequence[ItemResult], key: str, shown: float) -> float | None:
    return sum(float(r.metrics.get(key, 0.0)) for r in results) / shown if shown else None


def transcripts(results: Sequence[ItemResult], limit: int | None = None) -> list[dict[str, Any]]:
    """Each result's conversation as the episode kept it in meta, for the report (first `limit`)."""
    rows = []
    for r in results[:limit] if limit is not None else results:
        rows.append(
            {
                "item_id": r.item_id,
                "status": r.status,
                "correct": r.correct,
                "target": r.meta.get("target_title"),
                "request": r.meta.get("request"),
                "turns": list(r.meta.get("transcript", [])),
                "recommended": list(r.meta.get("recommended_titles", [])),
                "answer": r.answer,
                "error": r.error,
            }
        )
    return rows


# (label, rec_summary key, format) for the summary tables of recommendation runs
REC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("hit@k", "hit_at_k", "pct"),
    ("turns to hit", "turns_to_hit", "f2"),
    ("turns per session", "turns_mean", "f2"),
    ("violation rate", "violation_rate", "pct"),
    ("stated violation rate", "stated_violation_rate", "pct"),
    ("parse accuracy", "parse_accuracy", "pct"),
    ("answered", "answered", "pct"),
)


def rec_rows(rec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """REC_ROWS as printable cells; "—" for what the run did not measure (e.g. hit@k of the request set)."""
    rows = []
    for label, key, kind in REC_ROWS:
        value = rec.get(key)
        rows.append((label, "—" if value is None else f"{value:.1%}" if kind == "pct" else f"{value:.2f}"))
    return rows
