"""The teacher's side of logit distillation: run it once, keep its top-k log-probs per labelled position.

For every labelled position of every example the shards hold the teacher's top-k token ids and log-probs
plus the log of the mass left outside them; the index says which shard and rows each example has. Shards are
safetensors files written atomically (no pickle); a killed build resumes at the first missing shard.

Logits at position p predict the token at p+1, so the cached row for a label at index j holds the teacher's
distribution at j-1. Rows are stored in the order `kd_loss` reads them: example by example, positions ascending.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from agentdistill.distill.encoding import IGNORE
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.paths import atomic_write
from agentdistill.progress import Progress

if TYPE_CHECKING:
    from agentdistill.distill.encoding import EncodedExample

CACHE_VERSION = 1
INDEX_NAME = "index.json"
_ROW_CHUNK = 512  # log_softmax + top-k this many positions at a time: one [chunk, vocab] fp32 copy, never [B*T, vocab]


class TeacherCacheError(AgentDistillError):
    """A teacher cache is missing, incomplete, built for other data, or does not match a batch."""


def example_digest(input_ids: Sequence[int], labels: Sequence[int]) -> str:
    """Identify an encoding: a cache row is only valid for exactly these ids and this label mask."""
    raw = json.dumps([list(input_ids), [int(x != IGNORE) for x in labels]], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _n_targets(labels: Sequence[int]) -> int:
    return sum(1 for x in labels[1:] if x != IGNORE)  # label 0 has no preceding position to predict it


def plan_shards(
    examples: Sequence[EncodedExample], shard_size: int
) -> tuple[list[list[str]], dict[str, dict[str, Any]]]:
    """Assign examples to shards and rows; the whole index is known before the teacher runs."""
    entries: dict[str, dict[str, Any]] = {}
    shards: list[list[str]] = []
    for ex in examples:
        digest = example_digest(ex.input_ids, ex.labels)
        if ex.example_id in entries:
            if entries[ex.example_id]["sha"] != digest:
                raise TeacherCacheError(
                    f"example id {ex.example_id!r} appears twice with different tokens: dedupe the examples first"
                )
            continue
        if not shards or len(shards[-1]) == shard_size:
            shards.append([])
        shard = len(shards) - 1
        row = sum(entries[i]["n"] for i in shards[shard])
        shards[shard].append(ex.example_id)
        entries[ex.example_id] = {"shard": shard, "row": row, "n": _n_targets(ex.labels), "sha": digest}
    return shards, entries


def shard_name(index: int) -> str:
    """The file name of shard `index` in a cache dir."""
    return f"shard-{index:05d}.safetensors"


def teacher_identity(teacher_dir: Path) -> dict[str, str]:
    """The teacher as the index records it: its resolved dir and the sha256 of its config.json."""
    config = (teacher_dir / "config.json").read_bytes()  # a different model under the same path changes this
    return {"dir": str(teacher_dir.resolve()), "config_sha256": hashlib.sha256(config).hexdigest()}


def write_or_check_index(out_dir: Path, index: dict[str, Any]) -> None:
    """A fresh dir gets the index; an existing one must be for the same teacher, k and examples (then it resumes)."""
    path = out_dir / INDEX_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        for key in ("version", "k", "teacher", "tokenizer", "shards", "examples"):
            if old.get(key) != index[key]:
                what = {"shards": "example set", "examples": "example encoding"}.get(key, key)
                raise TeacherCacheError(
                    f"{out_dir} holds a teacher cache for a different {what}: delete it or pick another directory"
                )
        return
    with atomic_write(path) as handle:
        json.dump(index, handle, indent=1, sort_keys=True)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_teacher(
    teacher_dir: Path,
    shard_examples: list[list[EncodedExample]],
    shard_indices: list[int],
    out_dir: Path,
    *,
    k: int,
    batch_size: int,
    device: str | None,
    progress: bool | None,
) -> None:
    """Load the teacher and write each shard's rows (`shard_examples[i]` into shard `shard_indices[i]`)."""
    from safetensors.torch import save
    from transformers import AutoModelForCausalLM

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32  # bf16 is slow on CPUs without bf16 units
    model = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=dtype).to(dev).eval()
    total = sum(len(s) for s in shard_examples)
    with Progress(total, desc="teacher top-k", unit="ex", enabled=progress) as bar:
        for shard, examples in zip(shard_indices, shard_examples, strict=True):
            rows = [_teacher_topk(model, batch, k, dev) for batch in _chunks(examples, batch_size)]
            bar.update(len(examples))
            tensors = {
                name: torch.cat([r[i] for r in rows]).contiguous() for i, name in enumerate(("ids", "logp", "rest"))
            }
            with atomic_write(out_dir / shard_name(shard), "wb", encoding=None) as handle:
                handle.write(save(tensors))  # a killed build leaves whole shards or none, never a torn one


@torch.no_grad()
def _teacher_topk(
    model: torch.nn.Module, batch: Sequence[EncodedExample], k: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ex.input_ids) for ex in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    attention = torch.zeros(len(batch), width, dtype=torch.long)
    keep = torch.zeros(len(batch), width, dtype=torch.bool)
    for b, ex in enumerate(batch):
        n = len(ex.input_ids)
        input_ids[b, :n] = torch.tensor(ex.input_ids)
        attention[b, :n] = 1
        keep[b, : n - 1] = torch.tensor([x != IGNORE for x in ex.labels[1:]], dtype=torch.bool)
    if not keep.any():
        return torch.empty(0, k, dtype=torch.int32), torch.empty(0, k), torch.empty(0)
    # A boolean logits_to_keep makes the model project only the labelled positions onto the vocab.
    out = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), logits_to_keep=keep.to(device))
    logits = out.logits if out.logits.dim() == 2 else out.logits[keep.to(device)]
    if k >= logits.shape[-1]:
        raise ConfigError("k", k, f"fewer than the teacher's {logits.shape[-1]} logits, so a rest bucket exists")
    ids, logp, rest = [], [], []
    for chunk in logits.split(_ROW_CHUNK):
        lp = F.log_softmax(chunk.float(), dim=-1)
        top = lp.topk(k, dim=-1)
        ids.append(top.indices.to(torch.int32).cpu())
        logp.append(top.values.cpu())
        rest.append(torch.logsumexp(lp.scatter(-1, top.indices, -math.inf), dim=-1).cpu())
    return torch.cat(ids), torch.cat(logp), torch.cat(rest)
