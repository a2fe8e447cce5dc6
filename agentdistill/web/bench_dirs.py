"""Bench run directories as the /bench and /distill pages show them: progress, state, report tables, compare.

Everything here only reads (RunDir.open without repair), so a page may be open while the runner writes; the
figures come from benchmarks/report_stats.py and the tables from report_text.py, as in `bench report`.
A run is `running` while the process named in its lock file is alive (the runner writes `pid N` there while
it holds the lock and empties it when done); a killed run's pid is gone, so it shows as `stopped`.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.benchmarks.report_stats import breakdown, summary_dict
from agentdistill.benchmarks.report_text import compare_rows, summary_rows
from agentdistill.benchmarks.results import LOCK_FILE, ItemResult, RunDir, RunSpec
from agentdistill.web.home_paths import home_relative

MAX_ITEMS = 1000  # item rows on a run's page


@dataclass(frozen=True)
class BenchRunView:
    """One bench run: what it was asked, how far it got, how it scored so far."""

    path: Path
    link: str  # the path relative to the home, as `?dir=` takes it
    spec: RunSpec
    results: list[ItemResult] = field(repr=False)  # finished items, in the spec's item order
    state: str  # running | done | stopped

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def total(self) -> int:
        return len(self.spec.item_ids)

    @property
    def summary(self) -> dict[str, Any]:
        return summary_dict(self.results)

    def brief(self) -> dict[str, Any]:
        """The list's row as JSON."""
        s = self.summary
        return {"dir": self.link, "name": self.spec.name, "suite": self.spec.suite, "agent": self.spec.agent,
                "model": self.spec.model, "done": self.done, "total": self.total, "state": self.state,
                "accuracy": s["accuracy"] if self.done else None, "correct": s["correct"],
                "created_at": self.spec.created_at}  # fmt: skip


def bench_view(home: Path, path: Path) -> BenchRunView:
    """The view of the run in `path`; RunDirError when it is not a readable run directory."""
    run = RunDir.open(path)
    order = {item_id: i for i, item_id in enumerate(run.spec.item_ids)}
    results = sorted(run.results(), key=lambda r: order.get(r.item_id, len(order)))
    state = "running" if lock_holder_alive(path) else "done" if len(results) >= len(run.spec.item_ids) else "stopped"
    return BenchRunView(path, home_relative(home, path), run.spec, results, state)


def lock_holder_alive(path: Path) -> bool:
    """Whether the process named in the run's lock file (`pid N`) is alive; the lock itself is never taken."""
    try:
        text = (path / LOCK_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    pid = text.removeprefix("pid ").strip()
    return pid.isdigit() and os.path.exists(f"/proc/{pid}")


def run_report(view: BenchRunView) -> dict[str, Any]:
    """What a run's page shows: summary and status tables, breakdowns, items, the report's PNGs (paths)."""
    status: dict[str, int] = {}
    for r in view.results:
        status[r.status] = status.get(r.status, 0) + 1
    report = view.path / "report"
    plots = sorted(p.name for p in report.glob("*.png")) if report.is_dir() else []
    items = [{"item_id": r.item_id, "status": r.status, "correct": r.correct, "answer": r.answer, "gold": list(r.gold),
              "f1": r.metrics.get("f1"), "steps": r.steps, "tokens": r.tokens, "latency_s": r.latency_s,
              "run_id": r.run_id, "error": r.error} for r in view.results[:MAX_ITEMS]]  # fmt: skip
    return {
        **view.brief(),
        "spec": view.spec.to_dict(),
        "summary": summary_rows(view.summary) if view.done else [],
        "status_counts": status,
        "breakdown": breakdown(view.results),
        "items": items,
        "items_cut": max(0, view.done - MAX_ITEMS),
        "plots": [f"{view.link}/report/{name}" for name in plots],
    }


def eval_table(views: Sequence[BenchRunView], compare_json: Path | None = None) -> dict[str, Any]:
    """The side-by-side table of several runs: from a `bench compare`'s compare.json when given, else live
    from each run's finished items (each on its own items, as compare does for runs of different suites)."""
    if compare_json is not None and compare_json.is_file():
        data = json.loads(compare_json.read_text(encoding="utf-8"))
        names = [r["name"] for r in data["runs"]]
        return {"names": names, "rows": compare_rows(data), "source": "report", "warnings": data.get("warnings", [])}
    compared = [v.summary for v in views]
    data = {"compared": compared, "full": compared, "same_suite": False}
    return {"names": [v.spec.name for v in views], "rows": compare_rows(data), "source": "live", "warnings": []}


def compare_report(paths: Sequence[Path]) -> dict[str, Any]:
    """`bench compare` of `paths` made in a temporary directory: its table, paired outcomes, warnings, and its
    plots as data: URLs (nothing is written next to the runs, and nothing outside the home is served)."""
    from agentdistill.benchmarks.report import compare_runs  # matplotlib: only when a compare is asked for

    with tempfile.TemporaryDirectory(prefix="agentdistill-compare-") as tmp:
        compare_runs(list(paths), Path(tmp))
        data = json.loads((Path(tmp) / "compare.json").read_text(encoding="utf-8"))
        plots = {name: "data:image/png;base64," + base64.b64encode((Path(tmp) / file).read_bytes()).decode("ascii")
                 for name, file in data["plots"].items()}  # fmt: skip
    return {"names": [r["name"] for r in data["runs"]], "rows": compare_rows(data), "warnings": data["warnings"],
            "paired": data["paired"], "shared_items": data["shared_items"], "plots": plots}  # fmt: skip
