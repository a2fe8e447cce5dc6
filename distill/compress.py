"""`distill compress`: a full fine-tune's student as a small LoRA adapter, evaluated beside the full model.

Layout it adds to a run dir OUT (trained with --full):
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
    from agentdistill.distill.pipeline import Pipeline


class NotAFullFineTune(AgentDistillError):
    """compress needs a run trained with --full whose student/merged dir exists."""


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
    """Extract the rank-`rank` adapter of the run's full fine-tune (once), then evaluate it on the eval items."""
    from agentdistill.distill.pipeline import student_base_dir
    from agentdistill.distill.student import merge_adapter

    out, plan = pipeline.out, pipeline.plan
    full = out / "student" / "merged"
    if plan.train.lora:
        raise NotAFullFineTune(f"{out} trained a LoRA adapter already (student/adapter): publish it as it is;"
                               " compress is for runs trained with --full")  # fmt: skip
    if not full.is_dir():
        raise NotAFullFineTune(f"{full} is missing: finish the run first (`agentdistill distill run ... --full`)")
    folder = compressed_dir(out, rank)
    base = student_base_dir(plan.student)
    if not (folder / "merged").is_dir():
        staging = folder.with_name(f".{folder.name}.building")
        shutil.rmtree(staging, ignore_errors=True)
        pipeline.say(f"extracting a rank-{rank} adapter from {full}")
        extract_lora(base, full, staging / "adapter", rank=rank)
        merge_adapter(staging / "adapter", base, staging / "merged", dtype="float32")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    report = read_extract(folder / "adapter")
    pipeline.say(f"      {report.describe()}")
    compare = pipeline.evaluate(full, extra=[(eval_label(rank), folder / "merged")])
    return Compressed(adapter=folder / "adapter", extract=report, report=compare)


def read_extract(adapter: Path) -> ExtractReport:
    data = json.loads((adapter / "extract.json").read_text(encoding="utf-8"))
    return ExtractReport(**{k: data[k] for k in ExtractReport.__dataclass_fields__})
