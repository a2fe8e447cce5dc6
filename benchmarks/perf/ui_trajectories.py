"""Server-side time of the UI's trajectory table on big stores: does a page stay fast at 100k runs?

    python benchmarks/perf/ui_trajectories.py [--runs 10000 100000] [--repeats 7] [--dir DIR] [--json]

For each N a store is filled with N realistic runs of a few steps each (agentdistill.testing.trajectory_fill,
one transaction per 2,000 runs; with --dir the filled store is kept there and reused by the next call), then
the app answers GET requests in-process through FastAPI's TestClient: the route, the SQL (TrajectoryStore.page),
the template and the middleware, without a socket or a browser (a browser's rendering is measured elsewhere,
with the same fill). Each request runs once to warm up, then --repeats times; the table gives median and max ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import machine_summary
from fastapi.testclient import TestClient

from agentdistill.config import Settings
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.testing.trajectory_fill import fill_store
from agentdistill.web.app import create_app
from agentdistill.web.security import UIConfig

CASES = (  # (label, path): pages and their JSON twin, filtered by indexed columns and by the models JSON
    ("first page", "/trajectories"),
    ("agent+status", "/trajectories?agent=react&status=ok"),
    ("suite+min score", "/trajectories?suite=gsm8k&min_score=1"),
    ("model (JSON)", "/trajectories?model=local:smollm2-135m"),
    ("JSON first page", "/api/trajectories"),
)
DEEP = 20  # the "page 21" case follows the next link this many times first


def time_get(client: TestClient, path: str, repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` GETs of `path`, after one untimed warm-up."""
    times = []
    for rep in range(repeats + 1):
        start = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")
        if rep:
            times.append(elapsed)
    return times


def deep_page(client: TestClient) -> str:
    """The path of page DEEP + 1 of the unfiltered table, found by following its cursors as a user would."""
    data = client.get("/api/trajectories").json()
    for _ in range(DEEP - 1):
        data = client.get(f"/api/trajectories?before={data['next']}").json()
    return f"/trajectories?before={data['next']}"


def measure(n: int, repeats: int, folder: Path) -> dict[str, Any]:
    home = folder / f"home-{n}"
    path = Settings(home=home).trajectories_path
    with TrajectoryStore.open(path) as store:
        kept = store.count()
    started = time.perf_counter()
    added = fill_store(path, n) if kept < n else 0  # a kept store of this size is reused as it is
    fill_s = time.perf_counter() - started
    cases = []
    with TestClient(create_app(Settings(home=home), UIConfig())) as client:
        for label, url in (*CASES, (f"page {DEEP + 1}", deep_page(client))):
            ms = time_get(client, url, repeats)
            cases.append({"case": label, "path": url, "median_ms": statistics.median(ms), "max_ms": max(ms)})
        rows = len(client.get("/api/trajectories").json()["runs"])
    return {"runs": n, "filled": added, "fill_s": fill_s, "db_mb": path.stat().st_size / 2**20, "page_rows": rows,
            "cases": cases}  # fmt: skip


def table(results: Sequence[dict[str, Any]], repeats: int) -> str:
    lines = [machine_summary(), f"GET in-process (TestClient), median of {repeats} after a warm-up; ms"]
    lines.append(f"{'case':<18}" + "".join(f"{r['runs']:>12,} runs" for r in results))
    for i, case in enumerate(results[0]["cases"]):
        cells = "".join(f"{r['cases'][i]['median_ms']:>9.1f} (max {r['cases'][i]['max_ms']:>5.0f})" for r in results)
        lines.append(f"{case['case']:<18}{cells}")
    for r in results:
        fill = f"filled in {r['fill_s']:.0f} s" if r["filled"] else "store reused"
        lines.append(f"{r['runs']:,} runs: {r['db_mb']:.0f} MB, {fill}, {r['page_rows']} rows a page")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000], help="store sizes to measure")
    parser.add_argument("--repeats", type=int, default=7, help="timed requests per case, after one warm-up")
    parser.add_argument("--dir", type=Path, help="keep the filled stores here and reuse them (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(n < 1 for n in args.runs):
        parser.error("--repeats and every --runs value must be at least 1")
    with tempfile.TemporaryDirectory(prefix="ui-trajectories-") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = [measure(n, args.repeats, folder) for n in args.runs]
    if args.json:
        print(json.dumps({"machine": machine_summary(), "repeats": args.repeats, "results": results}, indent=2))
    else:
        print(table(results, args.repeats))


if __name__ == "__main__":
    main()
