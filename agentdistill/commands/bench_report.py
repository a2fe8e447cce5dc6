"""`agentdistill bench report` and `bench compare`: turn run directories into tables, markdown, JSON and plots.

The reports module (and matplotlib with it) is imported inside the commands, so `agentdistill --help` stays fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click

from agentdistill.commands.common import emit_json, json_option, table

_run_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command(name="report")
@click.argument("run_dir", type=_run_dir)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write report.md, report.json and the plots (default RUN_DIR/report).",
)
@json_option
def report(run_dir: Path, out_dir: Path | None, as_json: bool) -> None:
    """Report one run: summary table here, report.md + report.json + PNG plots on disk."""
    from agentdistill.benchmarks.report import write_report
    from agentdistill.benchmarks.report_text import summary_rows

    path = write_report(run_dir, out_dir)
    data = json.loads((path.parent / "report.json").read_text(encoding="utf-8"))
    if as_json:
        emit_json(data)
        return
    title = f"{data['run']['name']} on {data['run']['spec']['suite']}: {data['finished']}/{data['planned']} items"
    table(title, ["metric", "value"], summary_rows(data["summary"]))
    if not data["finished"]:
        click.echo("no finished items yet: the report says so and has no plots")
    click.echo(f"report: {path}")


@click.command(name="compare")
@click.argument("run_dirs", nargs=-1, required=True, type=_run_dir)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write compare.md, compare.json and the plots (default: beside the first run).",
)
@json_option
def compare(run_dirs: tuple[Path, ...], out_dir: Path | None, as_json: bool) -> None:
    """Compare runs side by side (e.g. a teacher and its student) on the items they all finished."""
    from agentdistill.benchmarks.report import compare_runs
    from agentdistill.benchmarks.report_text import compare_rows

    if len(run_dirs) < 2:
        raise click.UsageError("compare needs at least two RUN_DIRs; for one run use `agentdistill bench report RUN`.")
    path = compare_runs(run_dirs, out_dir or default_compare_dir(run_dirs))
    data = json.loads((path.parent / "compare.json").read_text(encoding="utf-8"))
    if as_json:
        emit_json(data)
        return
    for warning in data["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    shared = "" if data["shared_items"] is None else f" on {data['shared_items']} shared items"
    table(f"comparison{shared}", ["", *(r["name"] for r in data["runs"])], compare_rows(data))
    paired = data["paired"]
    if paired is not None:
        first, second = (r["name"] for r in data["runs"])
        click.echo(
            f"paired: both right {paired['both_right']}, only {first} {paired['only_a']}, only {second} "
            f"{paired['only_b']}, both wrong {paired['both_wrong']} (McNemar exact p = {paired['mcnemar_p']:.3g})"
        )
    click.echo(f"report: {path}")


def default_compare_dir(run_dirs: tuple[Path, ...]) -> Path:
    """`compare-<a>-vs-<b>` beside the first run, so comparing the same runs again overwrites, not piles up."""
    names = "-vs-".join(p.resolve().name for p in run_dirs)
    if len(names) > 60:  # keep it a sane file name; the hash keeps distinct run sets apart
        names = names[:48] + "-" + hashlib.sha256(names.encode()).hexdigest()[:8]
    return run_dirs[0].resolve().parent / f"compare-{names}"
