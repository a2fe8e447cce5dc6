"""The training loop every distillation method shares: LoRA or full fine-tune of a causal LM on encoded examples.

Built on accelerate, so the same call runs on a CPU, one GPU, or under `accelerate launch` / torchrun with
DDP across processes. A method is only a loss function (`LossFn`); batching, accumulation, the schedule,
evaluation, checkpoints and resume live here once. Checkpoints are verified by sha256 before they are
loaded, and a killed run continues from its last one with the same data order, RNG and optimizer state,
so its loss curve is the one an uninterrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from agentdistill.distill.data import EncodedExample, collate
from agentdistill.distill.sft import IGNORE, sft_loss, token_ce_sum
from agentdistill.distill.trackers import REPORT_TO
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.paths import atomic_write
from agentdistill.progress import Progress

LossFn = Callable[[torch.nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]

# Fields that may change between a run and its resume: they steer logging and stopping, not the trajectory.
RESUME_FREE = frozenset({"eval_every", "save_every", "log_every", "max_steps", "epochs", "report_to"})


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


class UnsupportedLaunch(AgentDistillError):
    """The accelerate launch config asks for something this trainer does not do."""


class NoTrainingData(AgentDistillError):
    """The training set is empty, so there is nothing to fit."""


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
    batch_size: int = 4  # examples per process per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step; effective batch = batch_size * grad_accum * processes
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


@dataclass(frozen=True)
class _Plan:
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
    accelerator = Accelerator(cpu=training_device(config) == "cpu", mixed_precision=_mixed_precision(config),
                              log_with=list(config.report_to) or None, project_dir=str(out_dir))  # fmt: skip
    if accelerator.distributed_type == "DEEPSPEED":  # its engine steps and scales on its own schedule, not ours
        raise UnsupportedLaunch(
            "this accelerate config uses DeepSpeed, which our trainer does not drive: run `distill train --engine "
            "trl` (TRL's SFTTrainer, same data and outputs) or use examples/accelerate/fsdp.yaml for sharding"
        )
    device, main, rank = accelerator.device, accelerator.is_main_process, accelerator.process_index
    world = accelerator.num_processes
    plan = _Plan(len(train_set), config.batch_size, world, config.seed)
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
    model = _build_model(base_dir, config, init_adapter, accelerator.mixed_precision)
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
            loss_value, extras = _optimizer_step(model, batches, step / total, loss_fn, optimizer, accelerator, config)
            scheduler.step()
            step += 1
            window.append(loss_value)
            bar.update(1)
            if step % config.eval_every == 0 or step == total:
                val_loss = _evaluate(model, val_set, config.batch_size, pad_id, accelerator, config)
            if step % config.log_every == 0 or step == total:
                all_tokens = accelerator.reduce(torch.tensor(tokens, device=device), reduction="sum").item()
                now = time.perf_counter()
                row = {"step": step, "epoch": round(step * config.grad_accum / plan.per_epoch, 4)}
                row |= {"loss": sum(window) / len(window), "lr": lr, "tokens": all_tokens}
                row |= {"tokens_per_s": all_tokens / max(now - last, 1e-9), "elapsed_s": now - began}
                row |= {"peak_mem_mb": _peak_memory_mb(device)} | extras
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


def release_accelerator_state() -> None:
    """Forget this run's accelerate settings (precision, plugins), keeping the process group, so the next
    training in the same process (a notebook, a pipeline stage, the other engine) may choose its own."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _optimizer_step(
    model: torch.nn.Module, batches: Sequence[dict[str, Any]], progress: float, loss_fn: LossFn, optimizer: Any,
    accelerator: Any, config: TrainConfig,
) -> tuple[float, dict[str, float]]:  # fmt: skip
    """Forward/backward over the micro-batches, then one update; returns the loss averaged over processes."""
    losses, extras = [], {}
    for i, batch in enumerate(batches):
        batch = _to_device(batch, accelerator.device) | {"progress": progress}
        sync = i == len(batches) - 1  # DDP all-reduces gradients only on the last micro-step
        with _oom_guard(config, accelerator.device), contextlib.nullcontext() if sync else accelerator.no_sync(model):
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


def training_device(config: TrainConfig) -> str:
    """The device config.device resolves to here (auto: cuda when present); pins cuda:N as current."""
    from agentdistill.models.transformers_backend import resolve_device

    device = resolve_device(config.device)
    if device.startswith("cuda:"):  # accelerate places a single process on the current cuda device
        torch.cuda.set_device(int(device.split(":")[1]))
    return device


def _mixed_precision(config: TrainConfig) -> str:
    from agentdistill.models.transformers_backend import resolve_dtype

    dtype = resolve_dtype(config.dtype, training_device(config))
    return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, "no")


def _build_model(base_dir: Path, config: TrainConfig, init_adapter: Path | None, mixed: str) -> torch.nn.Module:
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


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextlib.contextmanager
def _oom_guard(config: TrainConfig, device: torch.device) -> Iterator[None]:
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


def _evaluate(model: torch.nn.Module, val_set: Sequence[EncodedExample], batch_size: int, pad_id: int,
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
    with torch.no_grad(), _oom_guard(config, accelerator.device):
        for lo in range(0, len(mine), batch_size):
            part = mine[lo : lo + batch_size]
            batch = collate([val_set[i] for i, _ in part], pad_id)
            for row, (_, real) in enumerate(part):
                if not real:
                    batch["labels"][row] = IGNORE
            loss_sum, count = token_ce_sum(model, _to_device(batch, accelerator.device))
            total += torch.stack(
                [loss_sum.double(), torch.tensor(float(count), dtype=torch.float64, device=total.device)]
            )
    model.train()
    loss_sum, count = accelerator.reduce(total, reduction="sum").tolist()
    return loss_sum / count if count else None


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB: the process RSS peak


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
    "LossFn",
    "NoTrainingData",
    "TrainConfig",
    "TrainResult",
    "TrainingOOM",
    "UnsupportedLaunch",
    "train",
]
