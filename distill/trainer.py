"""The training loop every distillation method shares: LoRA or full fine-tune of a causal LM on encoded examples.

Built on accelerate, so the same call runs on a CPU, one GPU, or under `accelerate launch` / torchrun with
DDP across processes. A method is only a loss function (`LossFn`); batching, accumulation, the schedule,
evaluation, checkpoints and resume live here once (one step in train_step.py, the model in train_setup.py,
checkpoint files in checkpoints.py). Checkpoints are verified by sha256 before they are loaded, and a killed
run continues from its last one with the same data order, RNG and optimizer state, so its loss curve is the
one an uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentdistill.distill.checkpoints import (
    CheckpointMismatch,
    CorruptCheckpoint,
    find_resume_point,
    load_trainer_state,
    load_weights,
    read_metrics,
    save_checkpoint,
    write_loss_plot,
)
from agentdistill.distill.encoding import EncodedExample, collate
from agentdistill.distill.sft import sft_loss
from agentdistill.distill.train_config import RESUME_FREE, TrainConfig
from agentdistill.distill.train_setup import build_model, mixed_precision, release_accelerator_state, training_device
from agentdistill.distill.train_step import BatchPlan, LossFn, evaluate, optimizer_step, peak_memory_mb
from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write
from agentdistill.progress import Progress


class UnsupportedLaunch(AgentDistillError):
    """The accelerate launch config asks for something this trainer does not do."""


class NoTrainingData(AgentDistillError):
    """The training set is empty, so there is nothing to fit."""


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its artifacts, and how it ended."""

    out_dir: Path  # the run dir: checkpoints/, metrics.jsonl, loss.png, final/
    adapter_dir: Path | None  # final LoRA adapter (peft format, with the tokenizer); None after a full fine-tune
    model_dir: Path | None  # final full model (HF format, with the tokenizer); None after LoRA
    steps: int  # optimizer steps taken in total, resumed ones included
    train_loss: float | None  # mean loss of the last logged window of steps
    val_loss: float | None  # token-mean cross-entropy on the validation set at the end; None without one
    metrics_path: Path  # JSONL, one line per logged step
    plot_path: Path | None  # PNG of train and val loss; None when matplotlib is missing
    resumed_from: int | None = None  # the checkpoint step this call started from

    @property
    def final_dir(self) -> Path:
        return self.adapter_dir or self.model_dir  # type: ignore[return-value]


def train(
    base_dir: Path,
    train_set: Sequence[EncodedExample],
    val_set: Sequence[EncodedExample],
    config: TrainConfig,
    out_dir: Path,
    *,
    loss_fn: LossFn = sft_loss,
    init_adapter: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Fine-tune the HF model in `base_dir` with `loss_fn`, writing checkpoints, metrics and the result to `out_dir`.

    Calling it again on the same out_dir resumes from the last checkpoint (or returns at once when the run
    is finished). `val_loss` is always token-mean cross-entropy, whatever the training loss, so runs of
    different methods compare. `progress` None = a bar when stderr is a terminal.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer, get_scheduler

    if not train_set:
        raise NoTrainingData(
            "the training set is empty: check the dataset dir (`distill dataset` output) and its filters."
        )
    base_dir, out_dir = Path(base_dir).resolve(), Path(out_dir)
    accelerator = Accelerator(cpu=training_device(config) == "cpu", mixed_precision=mixed_precision(config),
                              log_with=list(config.report_to) or None, project_dir=str(out_dir))  # fmt: skip
    if accelerator.distributed_type == "DEEPSPEED":  # its engine steps and scales on its own schedule, not ours
        raise UnsupportedLaunch(
            "this accelerate config uses DeepSpeed, which our trainer does not drive: run `distill train --engine "
            "trl` (TRL's SFTTrainer, same data and outputs) or use examples/accelerate/fsdp.yaml for sharding"
        )
    device, main, rank = accelerator.device, accelerator.is_main_process, accelerator.process_index
    world = accelerator.num_processes
    plan = BatchPlan(len(train_set), config.batch_size, world, config.seed)
    micro_total = None if config.max_steps else config.epochs * plan.per_epoch
    total = config.max_steps or math.ceil(micro_total / config.grad_accum)  # type: ignore[operator]
    finished = _finished_result(out_dir, config, total)
    if finished is not None:
        return finished
    resume = find_resume_point(out_dir / "checkpoints", config.to_dict(), RESUME_FREE, world)
    if main:
        with atomic_write(out_dir / "train_config.json") as handle:
            json.dump({"base_dir": str(base_dir), "world_size": world, **config.to_dict()}, handle, indent=2)

    if config.report_to:  # trackers take flat scalars; accelerate starts them on the main process only
        flat = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in config.to_dict().items()}
        accelerator.init_trackers(out_dir.name or "train", config=flat)
    set_seed(config.seed)  # the same on every process, so each builds the same adapter init
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = build_model(base_dir, config, init_adapter, accelerator.mixed_precision)
    if resume is not None:  # weights go in before prepare, so DDP/FSDP wrap the resumed values
        load_weights(resume, model)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    warmup = math.ceil(config.warmup_ratio * total)
    # Stepped by hand once per optimizer step; accelerate's wrapper would step it once per process.
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    model, optimizer = accelerator.prepare(model, optimizer)
    torch.manual_seed(config.seed + 1 + rank)  # dropout differs per process, as it would across examples
    start = 0
    if resume is not None:
        start = load_trainer_state(resume, optimizer=optimizer, scheduler=scheduler, rank=rank, device=device)
    metrics_path = out_dir / "metrics.jsonl"
    rows = read_metrics(metrics_path, up_to=start) if main else []
    if main:  # lines a killed run logged after its last checkpoint are replayed, so drop them
        with atomic_write(metrics_path) as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)

    bar = Progress(total, desc="training", unit="step", initial=start, enabled=progress if main else False)
    model.train()
    step, val_loss, window, tokens = start, None, [], 0
    began = last = time.perf_counter()
    try:
        while step < total:
            micros = range(step * config.grad_accum, (step + 1) * config.grad_accum)
            if micro_total is not None:
                micros = range(micros.start, min(micros.stop, micro_total))
            batches = [collate([train_set[j] for j in plan.indices(m, rank)], pad_id) for m in micros]
            tokens += sum(int(batch["attention_mask"].sum()) for batch in batches)
            lr = scheduler.get_last_lr()[0]
            loss_value, extras = optimizer_step(model, batches, step / total, loss_fn, optimizer, accelerator, config)
            scheduler.step()
            step += 1
            window.append(loss_value)
            bar.update(1)
            if step % config.eval_every == 0 or step == total:
                val_loss = evaluate(model, val_set, config.batch_size, pad_id, accelerator, config)
            if step % config.log_every == 0 or step == total:
                all_tokens = accelerator.reduce(torch.tensor(tokens, device=device), reduction="sum").item()
                now = time.perf_counter()
                row = {"step": step, "epoch": round(step * config.grad_accum / plan.per_epoch, 4)}
                row |= {"loss": sum(window) / len(window), "lr": lr, "tokens": all_tokens}
                row |= {"tokens_per_s": all_tokens / max(now - last, 1e-9), "elapsed_s": now - began}
                row |= {"peak_mem_mb": peak_memory_mb(device)} | extras
                if val_loss is not None and (step % config.eval_every == 0 or step == total):
                    row["val_loss"] = val_loss
                rows.append(row)
                if main:
                    with open(metrics_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
                if config.report_to:
                    accelerator.log({k: v for k, v in row.items() if k != "step"}, step=step)
                window, tokens, last = [], 0, now
            if config.save_every and step % config.save_every == 0 and step < total:
                save_checkpoint(
                    out_dir / "checkpoints", step, model, optimizer, scheduler, accelerator, config.to_dict()
                )
                if main:
                    write_loss_plot(rows, out_dir / "loss.png")
    finally:
        bar.close()
    result = _save_final(out_dir, model, tokenizer, accelerator, config, step, rows, val_loss, resume)
    accelerator.wait_for_everyone()
    if config.report_to:
        accelerator.end_training()
    release_accelerator_state()
    return result


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
    return train(
        base_dir, train_set, val_set, config, out_dir, loss_fn=sft_loss, init_adapter=init_adapter, progress=progress
    )


def _save_final(out_dir: Path, model: torch.nn.Module, tokenizer: Any, accelerator: Any, config: TrainConfig,
                steps: int, rows: list[dict], val_loss: float | None, resume: Path | None) -> TrainResult:  # fmt: skip
    """Write final/ (peft adapter or HF model, plus tokenizer) via a temp dir, then result.json last."""
    import shutil

    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # a collective under FSDP: every process must call it
    final, tmp = out_dir / "final", out_dir / ".final.tmp"
    train_losses = [row["loss"] for row in rows if "loss" in row]
    result = TrainResult(
        out_dir=out_dir, adapter_dir=final if config.lora else None, model_dir=None if config.lora else final,
        steps=steps, train_loss=train_losses[-1] if train_losses else None, val_loss=val_loss,
        metrics_path=out_dir / "metrics.jsonl", plot_path=None,
        resumed_from=int(resume.name.split("-")[1]) if resume is not None else None,
    )  # fmt: skip
    if not accelerator.is_main_process:
        return result
    shutil.rmtree(tmp, ignore_errors=True)
    unwrapped = accelerator.unwrap_model(model)
    if hasattr(unwrapped, "base_model"):
        unwrapped.base_model.config.use_cache = True
    unwrapped.config.use_cache = True  # the saved config serves generation
    unwrapped.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    plot = write_loss_plot(rows, out_dir / "loss.png")
    result = dataclasses.replace(result, plot_path=plot)
    write_result(result, config)
    return result


def write_result(result: TrainResult, config: TrainConfig, **extra: Any) -> None:
    """out_dir/result.json, written last: a finished run's figures and settings (`_finished_result` reads it)."""
    with atomic_write(result.out_dir / "result.json") as handle:
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
        json.dump(summary | extra | {"config": config.to_dict()}, handle, indent=2)


def _finished_result(out_dir: Path, config: TrainConfig, total: int) -> TrainResult | None:
    """The stored result when this exact run already finished in out_dir; a different finished run is refused."""
    path = out_dir / "result.json"
    if not path.is_file() or not (out_dir / "final").is_dir():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    ours = config.to_dict()
    changed = [k for k, v in stored.get("config", {}).items() if k not in RESUME_FREE and ours.get(k) != v]
    if changed:
        raise CheckpointMismatch(
            f"{out_dir} holds a finished run with different settings ({', '.join(sorted(changed))}): "
            "train into a new --out, or delete that dir."
        )
    if stored.get("steps") != total:
        return None  # more steps asked for than were run: continue from the last checkpoint
    lora = stored.get("config", {}).get("lora", True)
    plot = out_dir / "loss.png"
    return TrainResult(  # paths rebuilt from out_dir: the dir may have been moved since
        out_dir=out_dir, adapter_dir=out_dir / "final" if lora else None, model_dir=None if lora else out_dir / "final",
        steps=stored["steps"], train_loss=stored.get("train_loss"), val_loss=stored.get("val_loss"),
        metrics_path=out_dir / "metrics.jsonl", plot_path=plot if plot.is_file() else None,
        resumed_from=stored.get("resumed_from"),
    )  # fmt: skip


__all__ = [
    "CheckpointMismatch",
    "CorruptCheckpoint",
    "NoTrainingData",
    "TrainConfig",
    "TrainResult",
    "UnsupportedLaunch",
    "train",
    "train_sft",
]
