"""A `distill run` output directory as the /distill pages show it: the plan and each stage's state.

The stages are read from what the pipeline leaves on disk (distill/workflow/pipeline.py), never from a
process: collect/ and eval/*/ are bench runs (their lock file says whether one is running), data/info.json
is the dataset, train/metrics.jsonl the training (running while it grows, done once result.json is written),
student/merged/ the student and report/compare.json the side-by-side report.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.benchmarks.results import RunDirError
from agentdistill.web.bench_dirs import BenchRunView, bench_view, eval_table
from agentdistill.web.home_paths import home_relative
from agentdistill.web.loss_svg import loss_curve, read_metrics

TRAINING_STALE_S = 300.0  # metrics.jsonl untouched this long and no result.json: the training was stopped
EVAL_ORDER = ("teacher", "base-student", "student")


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: pending | running | done | stopped, a line saying how far, its figures."""

    name: str
    state: str
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when missing or unreadable (a page shows what it can)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _bench_stage(name: str, view: BenchRunView | None) -> Stage:
    if view is None:
        return Stage(name, "pending", "not started")
    acc = f", {view.summary['correct']} correct" if view.done else ""
    return Stage(name, view.state, f"{view.done}/{view.total} items{acc}", view.brief())


def _view(home: Path, path: Path) -> BenchRunView | None:
    try:
        return bench_view(home, path) if (path / "run.json").is_file() else None
    except RunDirError:
        return None


def _dataset_stage(out: Path) -> Stage:
    info = read_json(out / "data" / "info.json")
    if info is None:
        return Stage("dataset", "pending", "not built")
    keys = ("considered", "runs", "examples", "train", "val", "negatives", "dropped")
    figures = {key: info.get(key) for key in keys if info.get(key) is not None}
    detail = f"{info.get('train')} train / {info.get('val')} val examples from {info.get('runs')} runs"
    return Stage("dataset", "done", detail, figures)


def _train_stage(name: str, folder: Path, plan: dict[str, Any]) -> tuple[Stage, list[dict[str, Any]]]:
    rows = read_metrics(folder / "metrics.jsonl")
    result = read_json(folder / "result.json")
    total = (result or {}).get("steps") or (plan.get("train") or {}).get("max_steps")
    if result is not None:
        state = "done"
    elif not rows:
        return Stage(name, "pending", "not started"), rows
    else:
        age = time.time() - (folder / "metrics.jsonl").stat().st_mtime
        state = "running" if age < TRAINING_STALE_S else "stopped"
    last = rows[-1] if rows else {}
    step = last.get("step", (result or {}).get("steps"))
    loss = last.get("loss", (result or {}).get("train_loss"))
    detail = f"step {step}" + (f"/{total}" if total else "") + (f", loss {loss:.4f}" if isinstance(loss, float) else "")
    val = next((r["val_loss"] for r in reversed(rows) if r.get("val_loss") is not None), None)
    detail += f", val loss {val:.4f}" if isinstance(val, float) else ""
    return Stage(name, state, detail, {"step": step, "total": total, "loss": loss, "val_loss": val}), rows


def distill_state(home: Path, out: Path) -> dict[str, Any]:
    """Everything the distill run page (and its JSON twin) shows about `out`."""
    plan = read_json(out / "plan.json") or {}
    stages = [_bench_stage("collect", _view(home, out / "collect")), _dataset_stage(out)]
    rows: list[dict[str, Any]] = []
    if (out / "train-sft").is_dir():  # REDI trains twice: SFT first, then REDI on top of it
        stages.append(_train_stage("train (sft)", out / "train-sft", plan)[0])
    train, rows = _train_stage("train", out / "train", plan)
    stages.append(train)
    merged = (out / "student" / "merged").is_dir()
    stages.append(Stage("student", "done" if merged else "pending", "merged" if merged else "not saved"))
    evals = _eval_views(home, out)
    for label, view in evals:
        stages.append(_bench_stage(f"eval {label}", view))
    if not evals:
        stages.append(Stage("eval", "pending", "not started"))
    report = out / "report" / "compare.json"
    reported = report.is_file()
    stages.append(Stage("report", "done" if reported else "pending", "report/compare.md" if reported else "not made"))
    curve = loss_curve(rows)
    png = out / "train" / "loss.png"
    views = [v for _, v in evals]
    return {
        "dir": home_relative(home, out),
        "plan": plan,
        "stages": [asdict(s) for s in stages],
        "active": any(s.state == "running" for s in stages),
        "current": next((s.name for s in stages if s.state != "done"), "finished"),
        "loss_curve": None if curve is None else curve.to_dict(),
        "loss_png": home_relative(home, png) if png.is_file() else None,
        "eval_table": eval_table(views, report) if views or report.is_file() else None,
    }


def _eval_views(home: Path, out: Path) -> list[tuple[str, BenchRunView]]:
    """The eval runs, teacher, base student and student first, then any others (extra students) by name."""
    folder = out / "eval"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    names.sort(key=lambda n: (EVAL_ORDER.index(n) if n in EVAL_ORDER else len(EVAL_ORDER), n))
    found = [(name, _view(home, folder / name)) for name in names]
    return [(name, view) for name, view in found if view is not None]


def distill_brief(home: Path, out: Path) -> dict[str, Any]:
    """The /distill list's row: the plan's main fields and the current stage."""
    state = distill_state(home, out)
    plan = state["plan"]
    keys = ("agent", "suite", "teacher", "student", "method", "train_limit", "eval_limit")
    return {"dir": state["dir"], **{k: plan.get(k) for k in keys}, "current": state["current"],
            "active": state["active"], "stages": state["stages"]}  # fmt: skip
