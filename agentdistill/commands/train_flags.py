"""The training flags `distill train` and `distill run` share: one set of names, help texts and defaults.

The defaults are TrainConfig's own, so the same data trains the same student whichever command runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from agentdistill.config import Settings
from agentdistill.distill.trackers import REPORT_TO
from agentdistill.distill.train_config import TrainConfig

DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class TrainingFlags:
    """The shared training flags as given on the command line."""

    lora: bool
    lora_r: int
    epochs: int
    train_steps: int | None
    lr: float
    batch_size: int
    grad_accum: int
    max_len: int
    report_to: tuple[str, ...]

    def config(self, settings: Settings, **more: Any) -> TrainConfig:
        """The TrainConfig these flags ask for, on the configured device; `more` sets the other fields."""
        return TrainConfig(
            lora=self.lora, lora_r=self.lora_r, lora_alpha=2 * self.lora_r, epochs=self.epochs,
            max_steps=self.train_steps, lr=self.lr, batch_size=self.batch_size, grad_accum=self.grad_accum,
            max_len=self.max_len, device=settings.device, dtype=settings.dtype, report_to=self.report_to, **more,
        )  # fmt: skip


FIELDS = tuple(TrainingFlags.__dataclass_fields__)


def pop_training_flags(kw: dict[str, Any]) -> TrainingFlags:
    """Take the shared training flags out of a command's keyword arguments."""
    return TrainingFlags(**{name: kw.pop(name) for name in FIELDS})


def training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared training flags to a click command (they arrive as keyword arguments named as FIELDS)."""
    options = [
        click.option("--lora/--full", default=DEFAULTS.lora, show_default=True,
                     help="LoRA adapter (alpha = 2 x rank) or every weight."),
        click.option("--lora-r", type=click.IntRange(min=1), default=DEFAULTS.lora_r, show_default=True,
                     help="LoRA rank."),
        click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True,
                     help="Passes over the training examples."),
        click.option("--train-steps", type=click.IntRange(min=1), help="Optimizer steps (overrides --epochs)."),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=DEFAULTS.lr, show_default=True,
                     help="Peak learning rate."),
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True,
                     help="Examples per micro-step."),
        click.option("--grad-accum", type=click.IntRange(min=1), default=DEFAULTS.grad_accum, show_default=True,
                     help="Micro-steps per optimizer step."),
        click.option("--max-len", type=click.IntRange(min=8), default=DEFAULTS.max_len, show_default=True,
                     help="Longer examples are dropped (not cut): a cut trajectory teaches a cut answer."),
        click.option("--report-to", "report_to", multiple=True, type=click.Choice(REPORT_TO),
                     help="Experiment tracker (repeatable), e.g. tensorboard: logs under the run's dir."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn
