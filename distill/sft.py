"""Supervised fine-tuning on teacher trajectories: cross-entropy on the assistant tokens, nothing else.

The labels already carry the mask (-100 everywhere but the assistant turns the student must learn), so the
loss is a plain token-mean over what is left. Every token of every answer counts the same, which is what
Agent Distillation trains with; a long answer weighs more than a short one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from agentdistill.distill.data import EncodedExample
    from agentdistill.distill.trainer import TrainConfig, TrainResult

IGNORE = -100  # label value of tokens that carry no loss (prompt, tool observations, padding)


def token_ce_sum(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
    """(summed next-token cross-entropy over labelled tokens, how many there were).

    Sums, not means, so the trainer can pool a whole validation set into one token-weighted figure.
    Logits are upcast to fp32: a bf16 softmax over a 50k vocabulary loses the small probabilities.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Position t predicts token t+1: shift the labels left rather than slicing the logits, which would copy
    # a (batch x length x vocab) tensor; the last position gets IGNORE.
    shifted = F.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)
    logits = logits.float()  # a no-op in fp32; under bf16 autocast it costs one copy, and buys accuracy
    total = F.cross_entropy(logits.view(-1, logits.size(-1)), shifted.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return total, int((shifted != IGNORE).sum())


def sft_loss(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean cross-entropy over labels != -100: the LossFn the trainer uses unless told otherwise."""
    total, count = token_ce_sum(model, batch)
    # A batch whose answers were all cut has nothing to learn from: a zero loss that still has a graph,
    # so DDP's backward runs on every process (a skipped backward would hang the others).
    loss = total / count if count else total * 0.0
    return loss, {"label_tokens": float(count)}


def train_sft(
    base_dir: Path,
    train_set: Sequence[EncodedExample],
    val_set: Sequence[EncodedExample],
    config: TrainConfig,
    out_dir: Path,
    *,
    init_adapter: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Fine-tune `base_dir` on the positive trajectories: the trainer's loop with `sft_loss`."""
    # Imported here because the trainer imports this module for its default loss.
    from agentdistill.distill.trainer import train

    return train(
        base_dir, train_set, val_set, config, out_dir, loss_fn=sft_loss, init_adapter=init_adapter, progress=progress
    )


__all__ = ["IGNORE", "sft_loss", "token_ce_sum", "train_sft"]
