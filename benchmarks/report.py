"""Reports over benchmark run directories: one run (`write_report`) or several side by side (`compare_runs`).

Both only read: a run directory is opened without repair, so a report can be made while the runner is still
writing (a torn last line is skipped) and never changes what a later `--resume` sees. Every figure comes from
`report_stats`, so the report, the JSON and `bench run`'s closing line agree; `report_text` writes the markdown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentdistill.benchmarks import plots
from agentdistill.benchmarks.report_stats import breakdown, paired_counts, summary_dict, wilson_interval
from agentdistill.benchmarks.report_text import compare_md, report_md
from agentdistill.benchmarks.results import ItemResult, RunDir
from agentdistill.benchmarks.suites.rec_metrics import transcripts
from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write

FORMAT_VERSION = 1
STATUSES = ("ok", "max_steps", "error", "timeout")
SLOWEST, WRONG_SAMPLE = 10, 10


class ReportError(AgentDistillError):
    """A report cannot be made from what was given (e.g. a compare with fewer than two runs)."""


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write report.md, report.json and PNG plots for one run into `out_dir` (default RUN/report); returns report.md."""
    run = RunDir.open(run_dir)  # read-only: never cut a line a live runner may still be completing
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    results = _in_spec_order(run)
    summary = summary_dict(results)
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "run": {"name": run.spec.name, "path": str(run.path.resolve()), "spec": run.spec.to_dict()},
        "planned": len(run.spec.item_ids),
        "finished": len(results),
        "summary": summary,
        "status_counts": _status_counts(results),
        "breakdown": breakdown(results),
        "slowest": [_brief(r) for r in sorted(results, key=lambda r: -r.latency_s)[:SLOWEST]],
        "wrong_sample": [_brief(r, answers=True) for r in results if not r.correct][:WRONG_SAMPLE],
        "transcripts": transcripts(results) if "violation_rate" in summary else [],
        "plots": _run_plots(out, run.spec.name, results, summary=summary) if results else {},
    }
    with atomic_write(out / "report.json") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    path = out / "report.md"
    with atomic_write(path) as f:
        f.write(report_md(data))
    return path


def compare_runs(run_dirs: Sequence[Path], out_dir: Path) -> Path:
    """Write compare.md, compare.json and plots for two or more runs side by side; returns compare.md.

    Runs of one suite are compared on the items finished in all of them (a half-done student is not
    measured on easier items than its teacher); each run's full figures are shown too.
    """
    if len(run_dirs) < 2:
        raise ReportError(
            "compare needs at least two run directories; for one run use `agentdistill bench report RUN`."
        )
    out = Path(out_dir)
    runs = [RunDir.open(p) for p in run_dirs]
    full = [_in_spec_order(r) for r in runs]
    names = _unique([r.spec.name for r in runs])
    suites = sorted({r.spec.suite for r in runs})
    warnings: list[str] = []
    shared: set[str] | None = None
    compared = full
    if len(suites) == 1:
        shared = set.intersection(*({r.item_id for r in results} for results in full))
        compared = [[r for r in results if r.item_id in shared] for results in full]
        if not shared:
            warnings.append("no item is finished in all runs: the compared columns are empty; see the full figures.")
    else:
        warnings.append(
            f"runs are on different suites ({', '.join(suites)}): each is measured on its own items, "
            "so differences mix model quality with question difficulty."
        )
    paired = paired_counts(compared[0], compared[1]) if shared and len(runs) == 2 else None
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "runs": [
            {"name": n, "path": str(r.path.resolve()), "spec": r.spec.to_dict()}
            for n, r in zip(names, runs, strict=True)
        ],
        "same_suite": shared is not None,
        "shared_items": None if shared is None else len(shared),
        "warnings": warnings,
        "compared": [summary_dict(c) for c in compared],
        "full": [summary_dict(f) for f in full],
        "breakdown": [breakdown(c) for c in compared],
        "paired": paired,
    }
    data["plots"] = _compare_plots(out, names, data)
    with atomic_write(out / "compare.json") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    path = out / "compare.md"
    with atomic_write(path) as f:
        f.write(compare_md(data))
    return path


def _in_spec_order(run: RunDir) -> list[ItemResult]:
    """Results in the run's item order (completion order depends on concurrency; reports should not)."""
    order = {item_id: i for i, item_id in enumerate(run.spec.item_ids)}
    return sorted(run.results(), key=lambda r: order.get(r.item_id, len(order)))


def _status_counts(results: Sequence[ItemResult]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _brief(r: ItemResult, *, answers: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "item_id": r.item_id,
        "status": r.status,
        "correct": r.correct,
        "latency_s": r.latency_s,
        "steps": r.steps,
        "tokens": r.tokens,
    }
    if answers:
        row.update(answer=r.answer, gold=list(r.gold), f1=float(r.metrics.get("f1", 0.0)), error=r.error)
    return row


def _point(label: str, s: Mapping[str, Any]) -> plots.RunPoint:
    if not s["n"]:
        return plots.RunPoint(label, None, None, None, None, None)
    ci = s.get("accuracy_ci95")
    return plots.RunPoint(
        label,
        s["accuracy"],
        None if ci is None else (ci[0], ci[1]),
        s["tokens_mean"],
        s["latency_p50"],
        s["cost_usd"] / s["n"],
    )


def _group_points(label: str, groups: Mapping[str, Mapping[str, Any]]) -> dict[str, plots.RunPoint]:
    return {
        value: plots.RunPoint(label, g["accuracy"], wilson_interval(g["correct"], g["n"]), None, None, None)
        for value, g in groups.items()
    }


def _run_plots(out: Path, name: str, results: Sequence[ItemResult], *, summary: Mapping[str, Any]) -> dict[str, str]:
    point = _point(name, summary)
    groups: dict[str, list[plots.RunPoint]] = {"all items": [point]}
    split = breakdown(results)
    if "type" in split:  # per-type bars; levels and hops stay in the tables
        groups.update({value: [p] for value, p in _group_points(name, split["type"]).items()})
    plots.accuracy_bars(out / "accuracy.png", groups, title=f"Accuracy: {name}")
    plots.tradeoff_scatter(out / "tradeoffs.png", [point], title=f"Accuracy vs tokens, latency, cost: {name}")
    plots.steps_histogram(
        out / "steps.png",
        [r.steps for r in results if r.correct],
        [r.steps for r in results if not r.correct],
        title=f"Model calls per item: {name}",
    )
    return {"accuracy": "accuracy.png", "tradeoffs": "tradeoffs.png", "steps": "steps.png"}


def _compare_plots(out: Path, names: Sequence[str], data: Mapping[str, Any]) -> dict[str, str]:
    points = [_point(n, s) for n, s in zip(names, data["compared"], strict=True)]
    groups: dict[str, list[plots.RunPoint]] = {"all items": points}
    splits = [b.get("type", {}) for b in data["breakdown"]]
    if data["same_suite"] and all(splits):
        for value in splits[0]:
            if all(value in s for s in splits):
                groups[value] = [_group_points(n, s)[value] for n, s in zip(names, splits, strict=True)]
    plots.accuracy_bars(out / "accuracy.png", groups, title="Accuracy by run")
    plots.tradeoff_scatter(out / "tradeoffs.png", points, title="Accuracy vs tokens, latency, cost (one point per run)")
    made = {"accuracy": "accuracy.png", "tradeoffs": "tradeoffs.png"}
    if data["paired"] is not None:
        p = data["paired"]
        plots.paired_outcomes(out / "paired.png", p, labels=(names[0], names[1]), p_value=p["mcnemar_p"])
        made["paired"] = "paired.png"
    return made


def _unique(names: Sequence[str]) -> list[str]:
    """Two runs with the same label (same agent and model, say) still need two distinct column names."""
    return [f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
