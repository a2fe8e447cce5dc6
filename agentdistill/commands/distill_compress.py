"""`distill compress`: a run's student as a (smaller) rank-R LoRA adapter, evaluated on the run's held-out items."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from agentdistill.commands.common import emit_json, settings
from agentdistill.errors import AgentDistillError


@click.command("compress")
@click.argument("out", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--rank", type=click.IntRange(min=1), default=64, show_default=True,
              help="Adapter rank: higher keeps more of the fine-tune, in a bigger file (fp16: SmolLM2-135M 0.6 MiB,"
                   " Qwen2.5-0.5B 1.1 MiB per rank). For a LoRA run, below its own rank.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1), help="Items in flight in the eval (default: the run's).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Benchmark data root.")
@click.option("--json", "as_json", is_flag=True, help="Print the extraction and the comparison as JSON.")
@click.pass_context
def compress(ctx: click.Context, out: Path, rank: int, concurrency: int | None, data_dir: Path | None,
             as_json: bool) -> None:  # fmt: skip
    """Compress the student of distill run OUT to a rank-R LoRA adapter and evaluate it beside the trained model.

    A --full run's whole model, or a LoRA run's adapter cut to a lower rank (truncated SVD of its weight change).
    `distill publish OUT --name NAME [--rank R]` then ships the adapter, with its own held-out scores on its card.
    """
    from agentdistill.distill.workflow.compress import compress_student
    from agentdistill.distill.workflow.pipeline import Pipeline
    from agentdistill.distill.workflow.plan import plan_from_dict

    config = settings(ctx)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    plan_file = out / "plan.json"
    if not plan_file.is_file():
        raise AgentDistillError(f"{plan_file} is missing: OUT must be the --out of a `distill run`")
    try:
        saved = json.loads(plan_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        fix = "`distill run` writes it: restore it, or rerun that command with the same --out"
        raise AgentDistillError(f"{plan_file} line {exc.lineno}: not JSON ({exc.msg}); {fix}") from None
    plan = plan_from_dict(saved)
    if concurrency is not None:
        plan = dataclasses.replace(plan, concurrency=concurrency)
    pipeline = Pipeline(plan, config, out, say=lambda text: click.echo(text, err=True))
    result = compress_student(pipeline, rank)
    compare = json.loads((result.report.parent / "compare.json").read_text(encoding="utf-8"))
    if as_json:
        emit_json({"adapter": str(result.adapter), "extract": dataclasses.asdict(result.extract), "compare": compare})
        return
    click.echo(result.extract.describe())
    click.echo(result.report.read_text(encoding="utf-8").split("\n## ")[0])
    click.echo(f"adapter: {result.adapter}; publish it with `agentdistill distill publish {out} --name NAME`")
