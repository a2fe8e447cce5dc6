"""`agentdistill bench`: run agents on benchmark suites, then report and compare the runs."""

from __future__ import annotations

import click

from agentdistill.commands.bench_report import compare, report
from agentdistill.commands.bench_run import list_suites, run


@click.group()
def bench() -> None:
    """Run agents on real benchmarks; report accuracy, tokens, latency and cost; compare runs."""


for command in (list_suites, run, report, compare):
    bench.add_command(command)
