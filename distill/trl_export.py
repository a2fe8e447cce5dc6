"""The dataset in TRL's conversational prompt-completion form, so `SFTTrainer` trains on it as is.

Our examples mark which assistant turns carry loss (`train_turns`); TRL's prompt-completion format says the
same thing by position: the loss falls on `completion` only (its default `completion_only_loss`). One row per
trained turn: the conversation up to it is the prompt, the turn is the completion.

    from datasets import load_dataset
    data = load_dataset("json", data_files={"train": "OUT/data/trl/train.jsonl", "validation": ".../val.jsonl"})
    SFTTrainer(model=..., train_dataset=data["train"], eval_dataset=data["validation"], ...)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentdistill.paths import atomic_write

TRL_DIR = "trl"


def trl_rows(example: Any) -> Iterator[dict[str, Any]]:
    """Prompt-completion rows of one ChatExample (a REDI negative has no TRL SFT counterpart: none)."""
    if example.label != "positive":
        return
    messages = [{"role": m["role"], "content": m["content"]} for m in example.messages]
    for turn in example.train_turns:
        yield {"prompt": messages[:turn], "completion": [messages[turn]], "id": example.id,
               "question": example.question}  # fmt: skip


def export_trl(out_dir: Path, train: Sequence[Any], val: Sequence[Any]) -> dict[str, int]:
    """Write `out_dir/trl/train.jsonl` and `val.jsonl`; return the row count of each."""
    counts = {}
    for name, examples in (("train", train), ("val", val)):
        rows = [row for example in examples for row in trl_rows(example)]
        with atomic_write(Path(out_dir) / TRL_DIR / f"{name}.jsonl") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        counts[name] = len(rows)
    return counts
