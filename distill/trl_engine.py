"""TRL's SFTTrainer as an alternative training engine (`distill train --engine trl`), same data, same result layout.

Our trainer stays the default (benchmarks/RESULTS.md: it is faster per token on CPU and its KD keeps the
teacher out of training). TRL is here for what it brings on clusters: DeepSpeed ZeRO through `accelerate
launch`, its own `report_to` integrations, and a Trainer that teams already run. It gets exactly our tokens:
the encoded examples go in pre-tokenized with `completion_mask` = our label mask, so both engines train on the
same positions. The run dir ends up as ours does (final/ adapter or model with tokenizer, metrics.jsonl,
loss.png, result.json), so `distill eval`, `publish` and `student:` specs take either. TRL's own checkpoints
live in out/trl/; a second call resumes from the last of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write

if TYPE_CHECKING:
    from agentdistill.distill.encoding import EncodedExample
    from agentdistill.distill.train_config import TrainConfig
    from agentdistill.distill.trainer import TrainResult

TRL_WORK_DIR = "trl"  # TRL's own checkpoints, inside the run dir


class TrlNotInstalled(AgentDistillError):
    """`--engine trl` needs the trl package."""


def pretokenized_rows(examples: Sequence[EncodedExample]) -> list[dict[str, list[int]]]:
    """Pre-tokenized SFTTrainer rows: our ids, and completion_mask 1 exactly where our labels carry loss."""
    from agentdistill.distill.encoding import IGNORE

    rows = []
    for example in examples:
        if example.label != "positive":
            raise AgentDistillError(
                f"example {example.example_id} is a REDI negative: the TRL engine trains SFT only (use --engine ours)"
            )
        mask = [int(x != IGNORE) for x in example.labels]
        rows.append({"input_ids": list(example.input_ids), "completion_mask": mask})
    return rows


def train_with_trl(
    base_dir: Path,
    train_set: Sequence[EncodedExample],
    val_set: Sequence[EncodedExample],
    config: TrainConfig,
    out_dir: Path,
    *,
    init_adapter: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Fine-tune with TRL's SFTTrainer under the same TrainConfig; returns the same TrainResult as `train`."""
    try:
        from trl import SFTConfig, SFTTrainer
    except ImportError as err:
        raise TrlNotInstalled("--engine trl needs TRL: pip install 'trl>=1.16' (or use --engine ours)") from err
    from datasets import Dataset
    from transformers import AutoTokenizer

    from agentdistill.distill.train_setup import lora_config, release_accelerator_state, training_device
    from agentdistill.distill.trainer import NoTrainingData

    if not train_set:
        raise NoTrainingData("the training set is empty: check the dataset dir (`distill dataset` output).")
    base_dir, out_dir = Path(base_dir).resolve(), Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = training_device(config).startswith("cuda")
    work = out_dir / TRL_WORK_DIR
    args = SFTConfig(
        output_dir=str(work), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, learning_rate=config.lr,
        lr_scheduler_type=config.schedule, warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm or 0.0, activation_checkpointing=config.grad_checkpointing,
        seed=config.seed, data_seed=config.seed, logging_steps=config.log_every,
        eval_strategy="steps" if val_set else "no", eval_steps=config.eval_every,
        save_strategy="steps" if config.save_every else "no", save_steps=config.save_every or 500,
        save_total_limit=2, report_to=list(config.report_to) or "none", completion_only_loss=True, packing=False,
        max_length=config.max_len, bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0,
        disable_tqdm=progress is False, remove_unused_columns=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=_model(base_dir, config, init_adapter, cuda), args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list(pretokenized_rows(train_set)),
        eval_dataset=Dataset.from_list(pretokenized_rows(val_set)) if val_set else None,
        peft_config=lora_config(config) if config.lora and init_adapter is None else None,
    )  # fmt: skip
    if trainer.accelerator.is_main_process:
        with atomic_write(out_dir / "train_config.json") as handle:
            json.dump({"base_dir": str(base_dir), "engine": "trl", **config.to_dict()}, handle, indent=2)
    resume = any(work.glob("checkpoint-*"))
    try:
        return _train_and_save(trainer, tokenizer, config, out_dir, resume, bool(val_set))
    finally:
        release_accelerator_state()


def _train_and_save(trainer: Any, tokenizer: Any, config: TrainConfig, out_dir: Path, resume: bool,
                    validate: bool) -> TrainResult:  # fmt: skip
    from agentdistill.distill.checkpoints import write_loss_plot
    from agentdistill.distill.trainer import TrainResult, write_result

    # Trainer prints its log dicts on stdout, which belongs to the CLI's --json summary.
    with contextlib.redirect_stdout(sys.stderr):
        output = trainer.train(resume_from_checkpoint=True if resume else None)
        val_loss = trainer.evaluate()["eval_loss"] if validate else None
    rows = _metrics_rows(trainer.state.log_history)
    final, tmp = out_dir / "final", out_dir / ".final.tmp"
    train_losses = [row["loss"] for row in rows if "loss" in row]
    result = TrainResult(
        out_dir=out_dir, adapter_dir=final if config.lora else None, model_dir=None if config.lora else final,
        steps=output.global_step, train_loss=train_losses[-1] if train_losses else output.training_loss,
        val_loss=val_loss, metrics_path=out_dir / "metrics.jsonl", plot_path=None, resumed_from=None,
    )  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # every process calls it (a collective under DeepSpeed/FSDP); main writes
    if not trainer.accelerator.is_main_process:
        return result
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    with atomic_write(out_dir / "metrics.jsonl") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    result = dataclasses.replace(result, plot_path=write_loss_plot(rows, out_dir / "loss.png"))
    write_result(result, config, engine="trl")
    return result


def _model(base_dir: Path, config: TrainConfig, init_adapter: Path | None, cuda: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    if init_adapter is None:
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(model, init_adapter, is_trainable=True)  # continue the student's adapter


def _metrics_rows(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's log history as our metrics.jsonl rows (step, loss, lr, val_loss), one row per step."""
    by_step: dict[int, dict[str, Any]] = {}
    for entry in history:
        row = by_step.setdefault(int(entry.get("step", 0)), {"step": int(entry.get("step", 0))})
        if "loss" in entry:
            row |= {"loss": entry["loss"], "lr": entry.get("learning_rate")}
            row["epoch"] = entry.get("epoch")
        if "eval_loss" in entry:
            row["val_loss"] = entry["eval_loss"]
    return [by_step[step] for step in sorted(by_step) if step > 0 and len(by_step[step]) > 1]
