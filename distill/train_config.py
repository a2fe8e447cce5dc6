"""What a training run is asked to do: TrainConfig, saved as OUT/train_config.json and compared on resume.

No torch here: the CLI reads these defaults for its flags (`distill train` and `distill run` share them) without
loading the trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from agentdistill.distill.trackers import REPORT_TO
from agentdistill.errors import ConfigError

# Fields that may change between a run and its resume: they steer logging and stopping, not the trajectory.
RESUME_FREE = frozenset({"eval_every", "save_every", "log_every", "max_steps", "epochs", "report_to"})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run; saved as out_dir/train_config.json so the run can be repeated and resumed."""

    lora: bool = True  # False = full fine-tune: every weight gets gradients and AdamW state (about 4x the memory)
    lora_r: int = 64  # adapter rank; Agent Distillation uses 64
    lora_alpha: int = 128  # adapter scale numerator (scale = alpha / r)
    lora_dropout: float = 0.05  # dropout on the adapter input; 0 makes runs bit-comparable across process counts
    target_modules: str | tuple[str, ...] = "all-linear"  # peft's names; all-linear = every linear but the LM head
    lr: float = 2e-4  # peak learning rate, reached at the end of warmup
    epochs: int = 2  # passes over the training set (ignored when max_steps is set)
    max_steps: int | None = None  # optimizer steps in total; overrides epochs and sets the schedule's length
    batch_size: int = 2  # examples per process per micro-step
    grad_accum: int = 2  # micro-steps per optimizer step; effective batch = batch_size * grad_accum * processes
    max_len: int = 2048  # the length cap the data was encoded with; recorded, and named in out-of-memory advice
    warmup_ratio: float = 0.05  # share of the optimizer steps with a linear ramp up to lr
    schedule: Literal["cosine", "linear"] = "cosine"  # decay after warmup, down to 0 at the last step
    weight_decay: float = 0.0  # AdamW decay on matrices (never on biases or norms)
    max_grad_norm: float | None = 1.0  # clip the global gradient norm; None = no clipping
    grad_checkpointing: bool = False  # recompute activations in backward: less memory, about 30% slower
    seed: int = 0  # adapter init, data order and dropout all derive from it
    eval_every: int = 50  # optimizer steps between validation losses (and one at the end)
    save_every: int = 50  # optimizer steps between checkpoints; 0 = no checkpoints (no resume)
    log_every: int = 1  # optimizer steps between metrics lines
    device: str = "auto"  # auto | cpu | cuda | cuda:N; under accelerate launch each process gets its own
    dtype: str = "auto"  # auto = bf16 autocast on cuda, fp32 on cpu (CPUs without bf16 matmuls are 20x slower)
    report_to: tuple[str, ...] = ()  # experiment trackers (accelerate's names), logging to out_dir/<tracker dirs>

    def __post_init__(self) -> None:
        positive = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "epochs": self.epochs}
        positive |= {"batch_size": self.batch_size, "grad_accum": self.grad_accum, "max_len": self.max_len}
        positive |= {"eval_every": self.eval_every, "log_every": self.log_every}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "a positive integer")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps", self.max_steps, "a positive integer, or unset to train for --epochs")
        if self.save_every < 0:
            raise ConfigError("save_every", self.save_every, "a positive integer, or 0 for no checkpoints")
        if not self.lr > 0:
            raise ConfigError("lr", self.lr, "a positive number such as 2e-4 (LoRA) or 1e-5 (full)")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError("lora_dropout", self.lora_dropout, "a number in [0, 1)")
        if self.schedule not in ("cosine", "linear"):
            raise ConfigError("schedule", self.schedule, "cosine or linear")
        object.__setattr__(self, "report_to", tuple(self.report_to))  # a list when read back from JSON
        if unknown := [name for name in self.report_to if name not in REPORT_TO]:
            raise ConfigError("report_to", unknown, f"tracker names from: {', '.join(REPORT_TO)}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError("max_grad_norm", self.max_grad_norm, "a positive number, or unset for no clipping")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self) | {"report_to": list(self.report_to)}
        data["target_modules"] = (
            self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        )
        return data
