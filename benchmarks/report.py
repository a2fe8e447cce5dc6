"""Reports over benchmark run directories: one run (`write_report`) or several side by side (`compare_runs`).

Both only read: a run directory is opened without repair, so a report can be made while the runner is still
writing (a torn last line is skipped) and never changes what a later `--resume` sees. Every figure comes from
`runner.summarize`, so the report, the JSON and `bench run`'s closing line agree.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentdistill.benchmarks import plots
from agentdistill.benchmarks.results import ItemResult, RunDir
from agentdistill.benchmarks.runner import RunSummary, summarize
from agentdistill.benchmarks.suites.rec_metrics import REC_ROWS, rec_summary, transcripts
from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write

FORMAT_VERSION = 1
BREAKDOWN_KEYS = ("type", "level", "hops")  # item meta fields worth splitting accuracy by
STATUSES = ("ok", "max_steps", "error", "timeout")
SLOWEST, WRONG_SAMPLE = 10, 10
TRANSCRIPTS = 10  # simulated sessions printed turn by turn in report.md (all are in report.json)
_Z95 = 1.959963984540054

# (label, summary key, format) for the summary table in markdown, on the terminal and in compare tables.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("n", "n", "int"),
    ("accuracy", "accuracy", "acc"),
    ("EM", "em", "f3"),
    ("F1", "f1", "f3"),
    ("errors", "errors", "int"),
    ("timeouts", "timeouts", "int"),
    ("max_steps rate", "max_steps_rate", "pct"),
    ("steps mean", "steps_mean", "f2"),
    ("tokens mean", "tokens_mean", "f0"),
    ("latency p50", "latency_p50", "sec"),
    ("latency p95", "latency_p95", "sec"),
    ("cost", "cost_usd", "usd"),
)


class ReportError(AgentDistillError):
    """A report cannot be made from what was given (e.g. a compare with fewer than two runs)."""


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


def format_value(summary: Mapping[str, Any], key: str, kind: str) -> str:
    """One cell of a summary table; "—" where a run has no finished items to measure."""
    value = summary.get(key)
    if value is None or (summary.get("n") == 0 and key != "n"):
        return "—"
    if kind == "int":
        return str(int(value))
    if kind == "acc":
        ci = summary.get("accuracy_ci95")
        return f"{value:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "sec":
        return f"{value:.2f} s"
    if kind == "usd":
        return f"${value:.4f}"
    return f"{value:.{int(kind[1])}f}"


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(label, format_value(summary, key, kind)) for label, key, kind in _rows([summary])]


def _rows(summaries: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, str], ...]:
    """ROWS, plus the recommendation rows when any of the runs is a recommendation run."""
    return ROWS + REC_ROWS if any("violation_rate" in s for s in summaries) else ROWS


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
        f.write(_report_md(data))
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
    paired = _paired(compared[0], compared[1]) if shared and len(runs) == 2 else None
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
        f.write(_compare_md(data))
    return path


def compare_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """The side-by-side table of a compare.json: one row per figure, one column per run."""
    compared = data["compared"]
    rows = [[label, *(format_value(s, key, kind) for s in compared)] for label, key, kind in _rows(compared)]
    if data["same_suite"]:
        rows.append(["n (all finished)", *(str(s["n"]) for s in data["full"])])
        rows.append(["accuracy (all finished)", *(format_value(s, "accuracy", "acc") for s in data["full"])])
    return rows


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


def _paired(a: Sequence[ItemResult], b: Sequence[ItemResult]) -> dict[str, Any]:
    right_b = {r.item_id: r.correct for r in b}
    pairs = [(r.correct, right_b[r.item_id]) for r in a]
    counts = {
        "both_right": sum(x and y for x, y in pairs),
        "only_a": sum(x and not y for x, y in pairs),
        "only_b": sum(y and not x for x, y in pairs),
        "both_wrong": sum(not x and not y for x, y in pairs),
    }
    return {**counts, "n": len(pairs), "mcnemar_p": mcnemar_exact(counts["only_a"], counts["only_b"])}


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


def _report_md(data: Mapping[str, Any]) -> str:
    spec, s = data["run"]["spec"], data["summary"]
    lines = [f"# Benchmark report: {data['run']['name']}", ""]
    created = dt.datetime.fromtimestamp(spec["created_at"], tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for key, value in (
        ("suite", spec["suite"]),
        ("agent", spec["agent"]),
        ("model", spec["model"]),
        ("items", f"{data['finished']} finished of {data['planned']} planned"),
        ("seed", spec["seed"]),
        ("max_steps", spec["max_steps"]),
        ("options", json.dumps(spec["options"])),
        ("label", spec["label"]),
        ("created", created),
        ("run dir", data["run"]["path"]),
    ):
        lines.append(f"- **{key}**: `{value}`")
    if not data["finished"]:
        lines += [
            "",
            f"**No finished items yet** ({data['planned']} planned): nothing to report. Continue the run "
            f"with `agentdistill bench run --resume --run-dir {data['run']['path']}`.",
            "",
        ]
        return "\n".join(lines)
    lines += ["", "## Summary", "", *_md_table(["metric", "value"], summary_rows(s))]
    lines += ["", "## Status", "", *_md_table(["status", "items"], list(data["status_counts"].items()))]
    for key, groups in data["breakdown"].items():
        rows = [(v, g["n"], f"{g['accuracy']:.1%}", f"{g['f1']:.3f}") for v, g in groups.items()]
        lines += ["", f"## By {key}", "", *_md_table([key, "n", "accuracy", "F1"], rows)]
    lines += _rec_md(s, data["transcripts"])
    lines += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in data["plots"].items()]
    rows = [(r["item_id"], f"{r['latency_s']:.2f}", r["status"], r["steps"], r["tokens"]) for r in data["slowest"]]
    lines += [
        "",
        f"## {len(rows)} slowest items",
        "",
        *_md_table(["item", "latency s", "status", "steps", "tokens"], rows),
    ]
    rows = [(r["item_id"], r["status"], r["error"] or r["answer"], " / ".join(r["gold"])) for r in data["wrong_sample"]]
    if rows:
        lines += [
            "",
            f"## Wrong answers (first {len(rows)})",
            "",
            *_md_table(["item", "status", "answer", "gold"], rows),
        ]
    return "\n".join(lines) + "\n"


def _rec_md(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Recommendation runs: hit@k by turn and the sessions, or the responses to the real requests."""
    if not rows:
        return []
    lines: list[str] = []
    if summary.get("hit_by_turn"):
        by_turn = [(t, f"{v:.1%}") for t, v in summary["hit_by_turn"].items()]
        lines += ["", "## Hit@k by turn", "", *_md_table(["turn", "sessions with a hit so far"], by_turn)]
        table = [(r["item_id"], r["target"], r["status"], next((t["turn"] for t in r["turns"] if t["hit"]), "—"),
                  len(r["turns"]), sum(t["violating"] for t in r["turns"])) for r in rows]  # fmt: skip
        lines += ["", "## Sessions", "", *_md_table(["session", "target", "status", "hit turn", "turns", "violating"],
                                                     table)]  # fmt: skip
        lines += ["", f"## Transcripts (first {min(TRANSCRIPTS, len(rows))})"]
        for r in rows[:TRANSCRIPTS]:
            lines += ["", f"### {r['item_id']}: {r['target']}", ""]
            for t in r["turns"]:
                picks = "; ".join(t["recommended"]) or ("(asked to clarify)" if t["clarification"] else "(nothing)")
                mark = " **hit**" if t["hit"] else ""
                lines.append(f"{t['turn']}. user ({t['act']}): {t['user']}  \n   recommended: {picks}{mark}")
            if r["error"]:
                lines.append(f"   error: {r['error']}")
        return lines
    lines += ["", f"## Responses ({len(rows)} requests)", ""]
    for r in rows:
        answer = " ".join((r["answer"] or r["error"] or "").split())
        picks = "; ".join(r["recommended"]) or "(nothing)"
        lines += [f"- **{r['item_id']}** ({r['status']}): {r['request']}", f"  - recommended: {picks}",
                  f"  - reply: {answer}"]  # fmt: skip
    return lines


def _compare_md(data: Mapping[str, Any]) -> str:
    names = [r["name"] for r in data["runs"]]
    lines = [f"# Benchmark comparison: {' vs '.join(names)}", ""]
    for run in data["runs"]:
        spec = run["spec"]
        lines.append(
            f"- **{run['name']}**: suite `{spec['suite']}`, agent `{spec['agent']}`, model `{spec['model']}`, "
            f"run dir `{run['path']}`"
        )
    lines.append("")
    lines += [f"> **Warning:** {w}" for w in data["warnings"]]
    if data["same_suite"]:
        lines.append(
            f"Compared on the **{data['shared_items']} items finished in all runs**; the last two rows give "
            "each run's figures over all its finished items."
        )
    lines += ["", *_md_table(["", *names], compare_rows(data))]
    p = data["paired"]
    if p is not None:
        rows = [
            ("both right", p["both_right"]),
            (f"only {names[0]}", p["only_a"]),
            (f"only {names[1]}", p["only_b"]),
            ("both wrong", p["both_wrong"]),
            ("McNemar exact p", f"{p['mcnemar_p']:.3g}"),
        ]
        lines += ["", f"## Paired outcomes ({p['n']} items)", "", *_md_table(["", "items"], rows)]
    lines += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in data["plots"].items()]
    return "\n".join(lines) + "\n"


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        text = "" if value is None else " ".join(str(value).split()).replace("|", "\\|")
        return text if len(text) <= 120 else text[:119] + "…"

    out = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _unique(names: Sequence[str]) -> list[str]:
    """Two runs with the same label (same agent and model, say) still need two distinct column names."""
    return [f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _natural(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order (hops 2, 3, 10), then words alphabetically."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
