"""One optimizer step of a training run, the validation loss, and which examples make up each micro-batch.

trainer.py runs these once per step.
"""

from __future__ import annotations

import contextlib
import math
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentdistill.distill.encoding import IGNORE, EncodedExample, collate
from agentdistill.distill.sft import token_ce_sum
from agentdistill.distill.train_config import TrainConfig
from agentdistill.errors import AgentDistillError

LossFn = Callable[[torch.nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]


class TrainingOOM(AgentDistillError):
    """The device ran out of memory; the message lists the knobs that shrink a step."""

    def __init__(self, config: TrainConfig, device: str, detail: str) -> None:
        tips = [f"a smaller --batch-size (now {config.batch_size}; raise --grad-accum to keep the effective batch)"]
        tips.append(f"a smaller --max-len (now {config.max_len})")
        if not config.lora:
            tips.append("--lora instead of --full (only adapter weights get gradients and optimizer state)")
        if not config.grad_checkpointing:
            tips.append("--grad-checkpointing (recomputes activations in backward)")
        super().__init__(f"out of memory on {device} while training: try " + "; ".join(tips) + f". ({detail[:200]})")


@dataclass(frozen=True)
class BatchPlan:
    """Which examples make up micro-batch m on this process: a pure function of (seed, m), so resume is exact."""

    n: int  # training examples
    batch_size: int  # per process
    world: int  # processes
    seed: int  # data order seed

    @property
    def per_epoch(self) -> int:
        padded = math.ceil(self.n / self.world) * self.world  # wrap-around padding, like DistributedSampler
        return math.ceil(padded / (self.batch_size * self.world))

    def indices(self, micro: int, rank: int) -> list[int]:
        epoch, j = divmod(micro, self.per_epoch)
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)).tolist()
        order += order[: math.ceil(self.n / self.world) * self.world - self.n]
        chunk = order[j * self.batch_size * self.world : (j + 1) * self.batch_size * self.world]
        share = len(chunk) // self.world
        return chunk[rank * share : (rank + 1) * share]


def optimizer_step(
    model: torch.nn.Module, batches: Sequence[dict[str, Any]], progress: float, loss_fn: LossFn, optimizer: Any,
    accelerator: Any, config: TrainConfig,
) -> tuple[float, dict[str, float]]:  # fmt: skip
    """Forward/backward over the micro-batches, then one update; returns the loss averaged over processes."""
    losses, extras = [], {}
    for i, batch in enumerate(batches):
        batch = to_device(batch, accelerator.device) | {"progress": progress}
        sync = i == len(batches) - 1  # DDP all-reduces gradients only on the last micro-step
        with oom_guard(config, accelerator.device), contextlib.nullcontext() if sync else accelerator.no_sync(model):
            loss, extra = loss_fn(model, batch)
            accelerator.backward(loss / len(batches))
        losses.append(loss.detach().float())
        for key, value in extra.items():
            extras[key] = extras.get(key, 0.0) + value / len(batches)
    if config.max_grad_norm is not None:
        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item(), extras


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on `device` (example ids and other plain values as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextlib.contextmanager
def oom_guard(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Turn the allocator's failure into advice; other runtime errors pass through untouched."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise TrainingOOM(config, str(device), str(error)) from error
    except RuntimeError as error:
        text = str(error).lower()
        if "out of memory" in text or "can't allocate memory" in text:
            raise TrainingOOM(config, str(device), str(error)) from error
        raise


def evaluate(model: torch.nn.Module, val_set: Sequence[EncodedExample], batch_size: int, pad_id: int,
             accelerator: Any, config: TrainConfig) -> float | None:  # fmt: skip
    """Token-mean cross-entropy over the whole validation set, pooled across processes."""
    if not val_set:
        return None
    world, rank = accelerator.num_processes, accelerator.process_index
    # Every process runs the same number of forwards (FSDP gathers weights in each); the padding rows wrap
    # around to the start and get their labels masked, so no example counts twice.
    per_rank = math.ceil(len(val_set) / world)
    mine = [(i % len(val_set), i < len(val_set)) for i in range(rank * per_rank, (rank + 1) * per_rank)]
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    model.eval()
    with torch.no_grad(), oom_guard(config, accelerator.device):
        for lo in range(0, len(mine), batch_size):
            part = mine[lo : lo + batch_size]
            batch = collate([val_set[i] for i, _ in part], pad_id)
            for row, (_, real) in enumerate(part):
                if not real:
                    batch["labels"][row] = IGNORE
            loss_sum, count = token_ce_sum(model, to_device(batch, accelerator.device))
            total += torch.stack(
                [loss_sum.double(), torch.tensor(float(count), dtype=torch.float64, device=total.device)]
            )
    model.train()
    loss_sum, count = accelerator.reduce(total, reduction="sum").tolist()
    return loss_sum / count if count else None


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this run so far, in MiB: allocated on a cuda device, the process RSS on a cpu."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB: the process RSS peak
