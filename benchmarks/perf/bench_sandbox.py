"""Sandbox round-trip latency: a trivial cell in a persistent session vs a bare `python -c` in the same run.

    python benchmarks/perf/bench_sandbox.py [--repeats 200] [--cells 100] [--isolation both] [--json]

Goal: a trivial cell in < 100 ms round trip (median). The persistent worker should beat even a bare
interpreter start, since it pays the start once per session; a one-shot `sandbox.run` pays it every time
plus namespace setup and cleanup. Rounds are interleaved so machine drift spreads over every side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from common import machine_summary

from agentdistill.tools.base import Tool
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig, SandboxSession


def _echo(text: str) -> str:
    """Return the text unchanged (a stand-in for a knowledge-base search)."""
    return text


def _ms(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def _hundred_cells(session: SandboxSession, cells: int) -> float:
    start = time.perf_counter()
    for i in range(cells):
        result = session.run(f"v{i} = {i} * 2\nprint(v{i})")
        assert result.stdout == f"{i * 2}\n", result  # a wrong answer must not pass as a fast one
    return (time.perf_counter() - start) * 1000


def main(argv: Sequence[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.isolation != "both":
        return _measure(args, args.isolation)
    both = {name: _measure(args, name) for name in ("namespaces", "bwrap")}
    ratios = {key: round(both["bwrap"][key] / both["namespaces"][key], 2)
              for key in ("session_start_ms", "one_shot_run_ms", "trivial_cell_ms", "construct_ms")}  # fmt: skip
    print(f"bwrap / namespaces: {ratios}")
    return {**both, "bwrap_over_namespaces": ratios}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="trivial cells timed in one session")
    parser.add_argument("--cells", type=int, default=100, help="cells per 'in a row' measurement")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the slower sides")
    parser.add_argument(
        "--isolation",
        choices=["auto", "bwrap", "namespaces", "both"],
        default="auto",
        help="sandbox isolation; both = bubblewrap and unshare namespaces in one run, with ratios",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _measure(args: argparse.Namespace, isolation: str) -> dict:

    construct_ms = []
    for _ in range(3):
        start = time.perf_counter()
        sandbox = PythonSandbox(SandboxConfig(isolation=isolation), tools=[Tool.from_function(_echo, name="echo")])
        construct_ms.append((time.perf_counter() - start) * 1000)
    bare = [sys.executable, "-c", "print(1)"]
    sides: dict[str, list[float]] = {"bare_python_c_ms": [], "one_shot_run_ms": [], "session_start_ms": []}
    cell_ms: list[float] = []
    rpc_ms: list[float] = []
    row_ms: list[float] = []
    with sandbox.session() as session:
        session.run("print(1)")  # warm up
        for rnd in range(args.rounds + 1):  # round 0 warms up
            times = {
                "bare_python_c_ms": _ms(lambda: subprocess.run(bare, capture_output=True, check=True)),
                "one_shot_run_ms": _ms(lambda: sandbox.run("print(1)")),
                "session_start_ms": _ms(lambda: sandbox.session().close()),
            }
            cells = [_ms(lambda: session.run("print(1)")) for _ in range(max(1, args.repeats // args.rounds))]
            rpcs = [_ms(lambda: session.run("print(echo('hi'))")) for _ in range(max(1, args.repeats // args.rounds))]
            if rnd:
                for name, value in times.items():
                    sides[name].append(value)
                cell_ms += cells
                rpc_ms += rpcs
        for _ in range(3):
            row_ms.append(_hundred_cells(session, args.cells))
    row = statistics.median(row_ms)
    figures = {
        "machine": machine_summary(),
        "isolation": sandbox.isolation.describe().splitlines()[:4],
        "construct_ms": round(statistics.median(construct_ms), 1),
        "trivial_cell_ms": round(statistics.median(cell_ms), 3),
        "trivial_cell_p95_ms": round(sorted(cell_ms)[int(len(cell_ms) * 0.95) - 1], 3),
        "rpc_tool_cell_ms": round(statistics.median(rpc_ms), 3),
        "cells_in_a_row": args.cells,
        "cells_total_ms": round(row, 1),
        "per_cell_ms": round(row / args.cells, 3),
        **{name: round(statistics.median(values), 1) for name, values in sides.items()},
    }
    figures["bare_over_cell_ratio"] = round(figures["bare_python_c_ms"] / figures["trivial_cell_ms"], 1)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{figures['machine']}\n"
            f"trivial cell {figures['trivial_cell_ms']:.2f} ms median (p95 {figures['trivial_cell_p95_ms']:.2f}; "
            f"goal < 100) | with a host tool call {figures['rpc_tool_cell_ms']:.2f} ms\n"
            f"{args.cells} cells in a row {figures['cells_total_ms']:.1f} ms ({figures['per_cell_ms']:.2f} ms/cell)\n"
            f"bare `python -c` {figures['bare_python_c_ms']:.1f} ms ({figures['bare_over_cell_ratio']}x a cell) | "
            f"one-shot sandbox.run {figures['one_shot_run_ms']:.1f} ms | session start "
            f"{figures['session_start_ms']:.1f} ms | sandbox construct (probes) {figures['construct_ms']:.1f} ms\n"
            + "\n".join(figures["isolation"])
        )
    return figures


if __name__ == "__main__":
    main()
