"""A published student's README.md as a Hugging Face Hub model card, so its folder uploads to the Hub as is.

`distill publish` lays a student out as a Hub repo (adapter_config.json, adapter_model.safetensors,
README.md with the card's YAML header) next to our own card.json, which stays the source of the figures:
`huggingface-cli upload NAME <dir>` publishes it, and peft's `PeftModel.from_pretrained` loads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentdistill.paths import atomic_write

README = "README.md"
# The Hub repos the packaged GGUFs were converted from: a card's base_model must name a Hub id.
UPSTREAM = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "qwen2.5-coder-0.5b": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
    "qwen2.5-coder-1.5b": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
}
_HUB_LICENSES = frozenset(
    (
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "cc0-1.0",
        "cc-by-4.0",
        "cc-by-sa-4.0",
        "cc-by-nc-4.0",
        "gpl-3.0",
        "lgpl-3.0",
        "agpl-3.0",
        "mpl-2.0",
        "openrail",
        "unlicense",
    )
)
_SCORE_COLUMNS = (("accuracy", "accuracy"), ("f1", "F1"), ("parse_accuracy", "parse accuracy"),
                  ("latency_p50", "latency p50 (s)"), ("tokens_mean", "tokens / item"))  # fmt: skip


def _upstream(spec: str) -> str | None:
    return UPSTREAM.get(spec.removeprefix("local:"))


def _license_id(text: str) -> str:
    """The Hub wants an identifier ("apache-2.0"); a card's license may explain itself after one."""
    first = text.split(" ", 1)[0].strip(" (),;").lower()
    return first if first in _HUB_LICENSES else "other"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def hub_readme(card: Mapping[str, Any]) -> str:
    """The README.md text of a student whose card.json is `card`."""
    base = _upstream(card["base"])
    header = {
        "library_name": "peft",
        **({"base_model": base} if base else {}),
        "license": _license_id(card.get("license") or ""),
        "pipeline_tag": "text-generation",
        "tags": ["agentdistill", "distillation", "lora", f"agent-{card['agent']}"],
    }
    lines = ["---", *(f"{k}: {json.dumps(v)}" for k, v in header.items()), "---", "", f"# {card['name']}", ""]
    if card.get("description"):
        lines += [card["description"], ""]
    teacher = card["teacher"]
    lines += [f"A LoRA adapter on `{card['base']}`{f' ({base})' if base else ''} that runs agentdistill's "
              f"`{card['agent']}` agent, distilled from the teacher `{teacher}`.", ""]  # fmt: skip
    ask = f'agentdistill ask --agent {card["agent"]} --model student:{card["name"]} "..."'
    lines += ["## Use", "", "```bash", ask, "```", ""]
    if base:
        load = f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), 'PATH/TO/THIS/DIR')"
        lines += ["```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM",
                  f"model = {load}", "```", ""]  # fmt: skip
    scores = {row: s for row, s in (card.get("scores") or {}).items() if isinstance(s, Mapping) and "model" in s}
    if scores:
        held_out = next(iter(scores.values())).get("n")
        lines += ["## Held-out scores", "", f"{held_out} items the student never trained on, same items for every row.",
                  "", "| | model | " + " | ".join(label for _, label in _SCORE_COLUMNS) + " |",
                  "|---|---|" + "---|" * len(_SCORE_COLUMNS)]  # fmt: skip
        for row, s in scores.items():
            lines.append(f"| {row} | `{s.get('model', '')}` | "
                         + " | ".join(_cell(s.get(key)) for key, _ in _SCORE_COLUMNS) + " |")  # fmt: skip
        lines.append("")
    data = card.get("dataset") or {}
    lines += ["## Data and training", "", f"- suite: {data.get('suite')}, {data.get('runs')} teacher runs kept -> "
              f"{data.get('train_examples')} train / {data.get('val_examples')} val examples",
              f"- dataset sha256: `{data.get('data_sha256')}`, prompt hashes {data.get('prompt_hashes')}",
              f"- training: {json.dumps(card.get('training') or {})}"]  # fmt: skip
    if card.get("compressed"):
        lines.append(f"- a full fine-tune compressed to LoRA: {json.dumps(card['compressed'])}")
    lines += ["", "## Reproduce", "", "```bash", card["command"], "```", ""]
    return "\n".join(lines)


def write_hub_readme(student_dir: Path, card: Mapping[str, Any]) -> Path:
    path = Path(student_dir) / README
    with atomic_write(path) as handle:
        handle.write(hub_readme(card))
    return path
