"""The device, precision and model a training run starts from: cuda or cpu, bf16 or fp32, LoRA-wrapped or full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agentdistill.distill.train_config import TrainConfig


def release_accelerator_state() -> None:
    """Forget this run's accelerate settings (precision, plugins), keeping the process group, so the next
    training in the same process (a notebook, a pipeline stage, the other engine) may choose its own."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def training_device(config: TrainConfig) -> str:
    """The device config.device resolves to here (auto: cuda when present); pins cuda:N as current."""
    from agentdistill.models.transformers_backend import resolve_device

    device = resolve_device(config.device)
    if device.startswith("cuda:"):  # accelerate places a single process on the current cuda device
        torch.cuda.set_device(int(device.split(":")[1]))
    return device


def mixed_precision(config: TrainConfig) -> str:
    """accelerate's mixed_precision name for config.dtype on this run's device: bf16, fp16 or no."""
    from agentdistill.models.transformers_backend import resolve_dtype

    dtype = resolve_dtype(config.dtype, training_device(config))
    return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, "no")


def build_model(base_dir: Path, config: TrainConfig, init_adapter: Path | None, mixed: str) -> torch.nn.Module:
    """The model to train: the base with a new LoRA adapter, with `init_adapter` (merged for a full fine-tune),
    or bare for a full fine-tune."""
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    # Frozen LoRA base weights need no fp32 master copy; trained ones (full fine-tune, fp16 scaling) do.
    dtype = torch.bfloat16 if config.lora and mixed == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype)
    model.config.use_cache = False  # the KV cache only serves generation; in training it is wasted memory
    if config.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if init_adapter is not None:
        adapted = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=config.lora)
        return adapted if config.lora else adapted.merge_and_unload()
    if not config.lora:
        return model
    return get_peft_model(model, lora_config(config))


def lora_config(config: TrainConfig) -> Any:
    """peft's LoraConfig for this run's adapter (rank, scale, dropout, target modules)."""
    from peft import LoraConfig

    targets = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")  # fmt: skip
