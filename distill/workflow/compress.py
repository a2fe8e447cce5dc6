"""`distill compress`: a trained student as a small LoRA adapter, evaluated beside the model it came from.

A --full run's whole model becomes a rank-R adapter; a LoRA run's adapter becomes one of lower rank (the truncated
SVD of its weight change), small enough to ship. Layout it adds to a run dir OUT:
    OUT/student/lora-r<R>/adapter/   peft adapter + extract.json (what share of the weight change it keeps)
    OUT/student/lora-r<R>/merged/    the adapter merged into the base, as the eval runs it
    OUT/eval/student-lora-r<R>/      its run on the held-out items; report/ then compares all four models
`distill publish` ships that adapter, with its own held-out scores on the card.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentdistill.distill.lora_extract import ExtractReport, extract_lora
from agentdistill.errors import AgentDistillError

if TYPE_CHECKING:  # publish reads the layout below without loading the pipeline
    from agentdistill.distill.workflow.pipeline import Pipeline


class NotCompressible(AgentDistillError):
    """compress needs a finished run (its student/merged dir) and, for a LoRA run, a rank below the adapter's."""


@dataclass(frozen=True)
class Compressed:
    adapter: Path
    extract: ExtractReport
    report: Path  # report/compare.md of teacher, base, full student and the adapter


def compressed_dir(out: Path, rank: int) -> Path:
    """OUT/student/lora-r<rank>: the adapter and its merged model."""
    return Path(out) / "student" / f"lora-r{rank}"


def eval_label(rank: int) -> str:
    """The eval run (and compare label) of the rank-`rank` adapter: OUT/eval/student-lora-r<rank>."""
    return f"student-lora-r{rank}"


def compressed_ranks(out: Path) -> list[int]:
    """The ranks of every finished extraction under OUT, ascending."""
    ranks = (adapter.parent.name.removeprefix("lora-r") for adapter in (Path(out) / "student").glob("lora-r*/adapter")
             if (adapter / "adapter_config.json").is_file())  # fmt: skip
    return sorted(int(rank) for rank in ranks if rank.isdigit())


def compress_student(pipeline: Pipeline, rank: int) -> Compressed:
    """Extract the rank-`rank` adapter of the run's trained student (once), then evaluate it on the eval items."""
    from agentdistill.distill.student import merge_adapter
    from agentdistill.models.weights import base_weights
    from agentdistill.paths import cache_dir

    out, plan = pipeline.out, pipeline.plan
    trained = out / "student" / "merged"
    if plan.train.lora and rank >= plan.train.lora_r:
        raise NotCompressible(
            f"{out} trained a rank-{plan.train.lora_r} LoRA adapter: a rank-{rank} one would not"
            f" be smaller; pick --rank below {plan.train.lora_r}, or publish the adapter as it is"
        )
    if not trained.is_dir():
        raise NotCompressible(
            f"{trained} is missing: finish the run first (`agentdistill distill run ... --out {out}`)"
        )
    folder = compressed_dir(out, rank)
    base = base_weights(plan.student, cache_dir())
    if not (folder / "merged").is_dir():
        staging = folder.with_name(f".{folder.name}.building")
        shutil.rmtree(staging, ignore_errors=True)
        pipeline.say(f"extracting a rank-{rank} adapter from {trained}")
        extract_lora(base, trained, staging / "adapter", rank=rank)
        merge_adapter(staging / "adapter", base, staging / "merged", dtype="float32")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    report = read_extract(folder / "adapter")
    pipeline.say(f"      {report.describe()}")
    compare = pipeline.evaluate(trained, extra=[(eval_label(rank), folder / "merged")])
    return Compressed(adapter=folder / "adapter", extract=report, report=compare)


def read_extract(adapter: Path) -> ExtractReport:
    data = json.loads((adapter / "extract.json").read_text(encoding="utf-8"))
    return ExtractReport(**{k: data[k] for k in ExtractReport.__dataclass_fields__})
