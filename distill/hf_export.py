"""The dataset as a Hugging Face DatasetDict (`datasets.load_from_disk(OUT/data/hf)`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdistill.distill.chat_examples import ChatExample


def to_hf_dataset(examples: Sequence[ChatExample]) -> Any:
    """A `datasets.Dataset` (messages as role/content lists; meta and tokens as JSON strings: their keys vary)."""
    from datasets import Dataset

    rows = [
        {**e.to_dict(), "messages": [{"role": m["role"], "content": m["content"]} for m in e.messages],
         "meta": json.dumps(e.meta, ensure_ascii=False, default=str),
         "tokens": None if e.tokens is None else json.dumps(e.tokens)}  # the teacher's sampled ids, when recorded
        for e in examples
    ]  # fmt: skip
    return Dataset.from_list(rows)


def export_hf(out_dir: Path, train: Sequence[ChatExample], val: Sequence[ChatExample]) -> None:
    """train/val as a Hugging Face DatasetDict under `out_dir/hf` (`datasets.load_from_disk`)."""
    import datasets
    from datasets import DatasetDict

    target = out_dir / "hf"
    if target.exists():
        import shutil

        shutil.rmtree(target)
    parts = {name: to_hf_dataset(rows) for name, rows in (("train", train), ("validation", val)) if rows}
    if parts:
        was_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # seconds of work: a bar would only clutter --json output
        try:
            DatasetDict(parts).save_to_disk(str(target))
        finally:
            if was_on:
                datasets.enable_progress_bars()
