"""`distill shorten`: a dataset's train split with dead-end steps cut and the reasoning compressed by the teacher."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from agentdistill.commands.common import emit_json, settings, table


@click.command("shorten")
@click.argument("data_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="New dataset dir.")
@click.option("--teacher", help="Model that compresses the reasoning (default: config `model`).")
@click.option("--dead-ends/--no-dead-ends", default=True, show_default=True,
              help="Cut steps whose tool call failed and that the run recovered from (codeact: only if the cells "
                   "left still reach the same final answer when re-run).")  # fmt: skip
@click.option(
    "--compress/--no-compress",
    default=True,
    show_default=True,
    help="Ask the teacher to shorten each trained turn; kept only if it parses to the same action.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def shorten(ctx: click.Context, data_dir: Path, out: Path, teacher: str | None, dead_ends: bool, compress: bool,
            as_json: bool) -> None:  # fmt: skip
    """Write OUT: DATA_DIR (a `distill dataset` dir) with its train examples shortened, val and negatives as they
    are. `distill train --data OUT` then trains on it; compare with training on DATA_DIR for the ablation."""
    from agentdistill.distill.shorten import ShortenConfig, shorten_dataset
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.models import make_chat_model
    from agentdistill.progress import Progress

    if not (data_dir / "info.json").is_file():
        raise click.BadParameter(f"{data_dir} has no info.json: give a dir written by `agentdistill distill dataset`")
    conf = settings(ctx)
    model = make_chat_model(teacher or conf.model, conf.model_options()) if compress else None
    config = ShortenConfig(drop_dead_ends=dead_ends, compress=compress)
    total = sum(1 for line in (data_dir / "train.jsonl").open(encoding="utf-8") if line.strip())
    with (
        TrajectoryStore.open(conf.trajectories_path) as store,
        Progress(total, desc="shorten", unit="example", enabled=False if as_json else None) as bar,
    ):
        report = shorten_dataset(data_dir, out, store, model, config, on_example=bar.update)
    if as_json:
        emit_json(asdict(report))
        return
    before, after = report.trained_chars_before, report.trained_chars_after
    rows = [("examples", report.examples), ("dead-end steps cut", report.dead_ends_dropped),
            ("turns sent to the teacher", report.turns_asked), ("turns rewritten", report.turns_revised),
            ("rewrites refused: other action", report.rejected_other_action),
            ("rewrites refused: not shorter", report.rejected_not_shorter),
            ("rewrites refused: a number not in the original", report.rejected_new_numbers),
            ("trained characters", f"{before} -> {after} ({after / max(before, 1):.0%})")]  # fmt: skip
    table(f"shortened {data_dir} -> {out}", ["", "value"], rows)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
