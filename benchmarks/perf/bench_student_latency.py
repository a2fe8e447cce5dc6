"""Student vs teacher cost per solved item, from the eval runs of one or more `distill run` output dirs.

    python benchmarks/perf/bench_student_latency.py OUT [OUT ...] [--json]

A thin CLI over `agentdistill.benchmarks.solved_cost`: it keeps the items every eval run finished and reports
seconds and tokens per item and per *solved* item, with the machine the runs are printed next to.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from common import machine_summary

from agentdistill.benchmarks.solved_cost import cost_rows, cost_table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outs", nargs="+", type=Path, help="distill run output dirs (each with eval/)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    table = {str(out): cost_rows(out) for out in args.outs}
    if args.json:
        print(json.dumps({"machine": machine_summary(), "runs": {k: [asdict(r) for r in v] for k, v in table.items()}}))
        return
    print(machine_summary())
    for out, rows in table.items():
        print(f"\n{cost_table(out, rows)}")


if __name__ == "__main__":
    main()
