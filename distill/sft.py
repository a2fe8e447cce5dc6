"""Supervised fine-tuning on teacher trajectories: cross-entropy on the assistant tokens, nothing else.

The labels already carry the mask (-100 everywhere but the assistant turns the student must learn), so the
loss is a plain token-mean over what is left. Every token of every answer counts the same, which is what
Agent Distillation trains with; a long answer weighs more than a short one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from agentdistill.distill.encoding import IGNORE


def labelled_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B, T] mask of the positions whose logits predict a labelled token (logits at p predict the label at p+1)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


def labelled_logits(
    model: torch.nn.Module, batch: Mapping[str, Any], keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 logits of the kept positions [N, V], batch row-major; the model's own logits, for `+ 0 * sum`).

    A boolean logits_to_keep projects only those positions onto the vocab (as TRL's fused LM head does): agent
    conversations are mostly prompt and observations, and [batch x length x vocab] logits are the largest
    tensor of a step (Qwen: 151k columns).
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep)
    return (out.logits if out.logits.dim() == 2 else out.logits[keep]).float(), out.logits


def token_ce_sum(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
    """(summed next-token cross-entropy over labelled tokens, how many there were).

    Sums, not means, so the trainer can pool a whole validation set into one token-weighted figure.
    Logits are upcast to fp32: a bf16 softmax over a 50k vocabulary loses the small probabilities.
    """
    labels = batch["labels"]
    keep = labelled_positions(labels)
    logits, raw = labelled_logits(model, batch, keep)
    targets = labels[:, 1:][keep[:, :-1]]
    # `+ 0 * sum` keeps the graph when no position is labelled (DDP needs a backward on every process).
    total = F.cross_entropy(logits, targets, reduction="sum") + 0.0 * raw.sum()
    return total, int(targets.numel())


def sft_loss(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean cross-entropy over labels != -100: the LossFn the trainer uses unless told otherwise."""
    total, count = token_ce_sum(model, batch)
    # A batch whose answers were all cut has nothing to learn from: a zero loss that still has a graph,
    # so DDP's backward runs on every process (a skipped backward would hang the others).
    loss = total / count if count else total * 0.0
    return loss, {"label_tokens": float(count)}


__all__ = ["labelled_logits", "labelled_positions", "sft_loss", "token_ce_sum"]
