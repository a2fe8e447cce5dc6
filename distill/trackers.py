"""Experiment trackers a training run can report to (accelerate's and transformers' names for them).

Kept free of torch so the CLI can offer the choices without loading it.
"""

from __future__ import annotations

REPORT_TO: tuple[str, ...] = (
    "tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio",
)  # fmt: skip
