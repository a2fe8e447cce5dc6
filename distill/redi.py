"""REDI stage 2: learn from the teacher's failed trajectories as well as its successful ones.

Reference: Xu et al. 2025, "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data for LLM
Reasoning" (REDI). Stage 1 is plain SFT on the positives (`trainer.train` with `sft_loss`). Stage 2 continues
from the stage-1 adapter (`train(..., init_adapter=<sft adapter>, loss_fn=redi_loss())`) over positives and
negatives with a reference-free objective on length-normalised log-likelihood:

    loss = -pos_weight * mean_{pos} LL(y|x) + neg_weight * mean_{neg} LL(y|x),   LL = mean token log-prob

The negative weight is smaller than the positive one (the paper's 1.0 / 0.8): pushing likelihood down is
unbounded, and an equal weight lets the negative term collapse the model before the positives catch up.
Length normalisation keeps long failed trajectories from dominating the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from agentdistill.distill.sft import labelled_logits, labelled_positions
from agentdistill.errors import ConfigError


def sequence_log_likelihood(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean log-prob of the labelled tokens of each sequence: ([B] values, [B] bool "has labelled tokens")."""
    labels = batch["labels"]
    keep = labelled_positions(labels)
    logits, raw = labelled_logits(model, batch, keep)  # [N, V], batch row-major
    token_lp = F.log_softmax(logits, dim=-1).gather(-1, labels[:, 1:][keep[:, :-1]][:, None]).squeeze(-1)
    counts = keep.sum(dim=1)
    row = torch.arange(labels.shape[0], device=labels.device).repeat_interleave(counts)
    total = torch.zeros(labels.shape[0], device=logits.device, dtype=logits.dtype).index_add(0, row, token_lp)
    has = counts > 0
    # `+ 0 * sum` keeps the logits in the graph even when no sequence has a labelled token.
    return total / counts.clamp_min(1) + 0.0 * raw.sum(), has


@dataclass(frozen=True)
class RediLoss:
    """LossFn for the trainer; a class rather than a closure so worker processes (DDP) can receive it."""

    pos_weight: float = 1.0  # pulls the length-normalised log-likelihood of successful trajectories up
    neg_weight: float = 0.8  # pushes failed ones down; keep it below pos_weight (see the module docstring)

    def __post_init__(self) -> None:
        if self.pos_weight < 0 or self.neg_weight < 0:
            raise ConfigError("pos_weight/neg_weight", (self.pos_weight, self.neg_weight), "weights >= 0")

    def __call__(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        ll, has = sequence_log_likelihood(model, batch)
        negative = batch["is_negative"].to(ll.device).bool()
        pos, neg = ll[has & ~negative], ll[has & negative]
        loss = ll.sum() * 0.0  # a batch may hold only one kind (or nothing labelled): each term is optional
        metrics: dict[str, float] = {}
        if pos.numel():
            loss = loss - self.pos_weight * pos.mean()
            metrics["ll_pos"] = float(pos.detach().mean())
        if neg.numel():
            loss = loss + self.neg_weight * neg.mean()
            metrics["ll_neg"] = float(neg.detach().mean())
        if pos.numel() and neg.numel():
            metrics["margin"] = metrics["ll_pos"] - metrics["ll_neg"]
        return loss, metrics


def redi_loss(pos_weight: float = 1.0, neg_weight: float = 0.8) -> RediLoss:
    """The REDI stage-2 LossFn: `loss, metrics = fn(model, batch)` using batch["is_negative"].

    Metrics: ll_pos and ll_neg (mean length-normalised log-likelihood of the batch's positives / negatives) and
    margin = ll_pos - ll_neg; a key is left out when the batch has no sequence of that kind, rather than
    reporting a made-up value.
    """
    return RediLoss(pos_weight, neg_weight)
