"""The text of reports: summary and compare tables (markdown and the terminal), report.md and compare.md."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentdistill.benchmarks.suites.rec_metrics import REC_ROWS

TRANSCRIPTS = 10  # simulated sessions printed turn by turn in report.md (all are in report.json)

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


def compare_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """The side-by-side table of a compare.json: one row per figure, one column per run."""
    compared = data["compared"]
    rows = [[label, *(format_value(s, key, kind) for s in compared)] for label, key, kind in _rows(compared)]
    if data["same_suite"]:
        rows.append(["n (all finished)", *(str(s["n"]) for s in data["full"])])
        rows.append(["accuracy (all finished)", *(format_value(s, "accuracy", "acc") for s in data["full"])])
    return rows


def report_md(data: Mapping[str, Any]) -> str:
    """report.md from the data of report.json."""
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


def compare_md(data: Mapping[str, Any]) -> str:
    """compare.md from the data of compare.json."""
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
