"""The on-policy loss: reverse KL to the cached teacher on the student's own tokens, plus an optional task reward.

KD alone is GKD with the student's samples only (Agarwal et al. 2024, "On-Policy Distillation of Language
Models: Learning from Self-Generated Mistakes"): the student wrote every labelled token, the teacher says how
likely it finds each of them, and reverse KL pulls the student towards the teacher's modes where the student
actually goes. With `reward_weight` > 0 the suite's score is mixed in, as KDRL does (Xu et al. 2025, "KDRL:
Post-Training Reasoning LLMs via Unified Knowledge Distillation and Reinforcement Learning"), here with plain
REINFORCE and a per-round mean baseline instead of GRPO's groups:

    loss = KL_kind(student, teacher) + reward_weight * mean_b [ -(r_b - mean_r) * LL_b ]
    LL_b = (1 / |y_b|) sum_t log p_student(y_b,t | x_b, y_b,<t)

where r_b is the score of the run example b came from (1 correct, 0 not) and mean_r the mean score of the
round's rollouts. A run better than the round's average has its completion made more likely, a worse one less;
when every rollout scores the same the term is exactly zero and only the teacher teaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentdistill.distill.kd import KDLoss
from agentdistill.distill.redi import sequence_log_likelihood
from agentdistill.errors import AgentDistillError, ConfigError


class MissingAdvantage(AgentDistillError):
    """A batch holds an example the reward term has no advantage for."""


def advantages(scores: Mapping[str, float], baseline: float) -> dict[str, float]:
    """example id -> score - baseline: REINFORCE's centred reward, one value per example."""
    return {example_id: float(score) - baseline for example_id, score in scores.items()}


def mean_reward(rewards: Sequence[float]) -> float:
    """The round's baseline: the mean reward of its rollouts (0 for none)."""
    return sum(rewards) / len(rewards) if rewards else 0.0


@dataclass(frozen=True)
class OnPolicyLoss:
    """LossFn for the trainer; a class rather than a closure so worker processes (DDP) can receive it.

    The reward term runs the student a second time over the batch: KDLoss owns its forward pass.
    """

    kd: KDLoss  # reverse KL (or another kind) to the round's cached teacher top-k
    reward_weight: float = 0.0  # 0 = pure KD; the weight of the REINFORCE term (module docstring)
    advantage: Mapping[str, float] = field(default_factory=dict)  # example id -> r - baseline

    def __post_init__(self) -> None:
        if self.reward_weight < 0:
            raise ConfigError("reward_weight", self.reward_weight, "a weight >= 0 (0 = pure distillation)")

    def __call__(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = self.kd(model, batch)
        if not self.reward_weight:
            return loss, metrics
        ids = batch["example_ids"]
        if missing := [i for i in ids if i not in self.advantage]:
            raise MissingAdvantage(
                f"no advantage for example {missing[0]!r}: build the loss from the same examples the round trains on"
            )
        ll, has = sequence_log_likelihood(model, batch)
        adv = torch.tensor([self.advantage[i] for i in ids], dtype=ll.dtype, device=ll.device)
        if not bool(has.any()):  # nothing labelled: a zero that keeps the graph, so backward still runs
            return loss + ll.sum() * 0.0, {**metrics, "reward_term": 0.0}
        term = -(adv * ll)[has].mean()
        metrics = {**metrics, "reward_term": float(term.detach()), "ll": float(ll[has].detach().mean())}
        return loss + self.reward_weight * term, metrics


def onpolicy_loss(kd: KDLoss, reward_weight: float = 0.0, advantage: Mapping[str, float] | None = None) -> OnPolicyLoss:
    """A trainer LossFn: `kd` alone, or with the REINFORCE term of the module docstring when reward_weight > 0.

    Metrics: KDLoss's (`kl`, `ce`, `t`), plus `reward_term` and `ll` (mean length-normalised log-likelihood of
    the batch's completions) when the reward is on.
    """
    return OnPolicyLoss(kd, reward_weight, dict(advantage or {}))
