"""`agentdistill distill train`: fine-tune a student on a dataset dir written by `distill dataset`.

Torch, transformers and peft load inside the command, so `--help` stays fast. Running it again with the same
--out resumes from the last checkpoint; the same command works under `accelerate launch` / torchrun.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.distill.trackers import REPORT_TO
from agentdistill.errors import AgentDistillError

METHODS = ("sft",)  # kd and redi need a teacher cache or negatives: `distill run --method` wires those


class NotTrainable(AgentDistillError):
    """The --base spec names a model that has no local weights to fine-tune."""


def resolve_base(spec: str, cache: Path) -> tuple[Path, Path | None]:
    """(base HF dir, adapter to continue from or None) for a dir, `hf:DIR`, `student:DIR` or `local:NAME`."""
    from agentdistill.models.packaged import ensure_hf_dir, find_packaged
    from agentdistill.models.transformers_backend import resolve_model_dir

    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "local":
        return ensure_hf_dir(find_packaged(rest), cache), None
    if sep and prefix in ("hf", "student"):
        return resolve_model_dir(Path(rest).expanduser(), None)
    if Path(spec).expanduser().is_dir():
        return resolve_model_dir(Path(spec).expanduser(), None)
    raise NotTrainable(
        f"cannot train {spec!r}: --base must be a local model dir, hf:DIR, student:DIR or local:NAME"
        " (API models have no weights to fine-tune). See `agentdistill models list`."
    )


@click.command(name="train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset dir from `distill dataset` (train.jsonl, optional val.jsonl).")  # fmt: skip
@click.option("--base", help="Student to fine-tune: a dir, hf:DIR, student:DIR (continues its adapter) or local:NAME."
              " Default: the configured student.")  # fmt: skip
@click.option("--method", type=click.Choice(METHODS), default="sft", show_default=True, help="Training objective.")
@click.option("--lora/--full", default=True, show_default=True, help="LoRA adapter (r=64, alpha=128) or every weight.")
@click.option("--epochs", type=click.IntRange(1), default=2, show_default=True, help="Passes over train.jsonl.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True, help="Peak LR.")
# The same defaults as `distill run`: the same data trains the same student whichever command runs it.
@click.option("--batch-size", type=click.IntRange(1), default=2, show_default=True, help="Examples per micro-step.")
@click.option("--grad-accum", type=click.IntRange(1), default=2, show_default=True, help="Micro-steps per update.")
@click.option("--max-len", type=click.IntRange(8), default=2048, show_default=True,
              help="Longer examples are dropped (not cut): a cut trajectory teaches a cut answer.")  # fmt: skip
@click.option("--train-steps", "max_steps", type=click.IntRange(1),
              help="Stop after this many updates (overrides --epochs); as in `distill run`.")  # fmt: skip
@click.option("--max-steps", "old_max_steps", type=click.IntRange(1), hidden=True,
              help="Old name of --train-steps (in `distill run`, --max-steps bounds agent calls).")  # fmt: skip
@click.option("--grad-checkpointing", is_flag=True, help="Recompute activations: less memory, ~30% slower.")
@click.option("--schedule", type=click.Choice(["cosine", "linear"]), default="cosine", show_default=True)
@click.option("--save-every", type=click.IntRange(0), default=50, show_default=True, help="Updates per checkpoint.")
@click.option("--eval-every", type=click.IntRange(1), default=50, show_default=True, help="Updates per val loss.")
@click.option("--seed", type=int, default=0, show_default=True, help="Adapter init, data order and dropout.")
@click.option("--engine", type=click.Choice(["ours", "trl"]), default="ours", show_default=True,
              help="Training loop: ours (faster on CPU, RESULTS.md) or TRL's SFTTrainer (DeepSpeed via accelerate"
              " launch; needs `pip install trl`). Same data, same outputs.")  # fmt: skip
@click.option("--report-to", "report_to", multiple=True, type=click.Choice(REPORT_TO),
              help="Experiment tracker (repeatable), e.g. tensorboard: logs under OUT.")  # fmt: skip
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run dir.")
@json_option
@click.pass_context
def train(
    ctx: click.Context, data_dir: Path, base: str | None, method: str, lora: bool, epochs: int, lr: float,
    batch_size: int, grad_accum: int, max_len: int, max_steps: int | None, old_max_steps: int | None,
    grad_checkpointing: bool, schedule: str,
    save_every: int, eval_every: int, seed: int, engine: str, report_to: tuple[str, ...], out: Path, as_json: bool,
) -> None:  # fmt: skip
    """Fine-tune a student on DATA; writes OUT/final (adapter or model + tokenizer), metrics.jsonl and loss.png."""
    if old_max_steps is not None:
        if max_steps is not None:
            raise click.UsageError("give --train-steps only (--max-steps is its old name)")
        click.echo("note: --max-steps is now --train-steps here (as in `distill run`, where --max-steps bounds "
                   "agent calls)", err=True)  # fmt: skip
        max_steps = old_max_steps
    from transformers import AutoTokenizer

    from agentdistill.distill.data import encode_examples, load_examples
    from agentdistill.distill.sft import train_sft
    from agentdistill.distill.trainer import NoTrainingData, TrainConfig
    from agentdistill.paths import cache_dir

    conf = settings(ctx)
    if conf.threads:  # `threads` in config / AGENTDISTILL_THREADS: torch threads for training too
        import torch

        torch.set_num_threads(conf.threads)
    train_file, val_file = data_dir / "train.jsonl", data_dir / "val.jsonl"
    if not train_file.is_file():
        raise NoTrainingData(f"{train_file} not found: write it with `agentdistill distill dataset --out {data_dir}`.")
    config = TrainConfig(
        lora=lora, lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
        max_len=max_len, schedule=schedule, grad_checkpointing=grad_checkpointing, save_every=save_every,  # type: ignore[arg-type]
        eval_every=eval_every, seed=seed, device=conf.device, dtype=conf.dtype, report_to=report_to,
    )  # fmt: skip
    base_dir, adapter = resolve_base(base or conf.student, cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(
        adapter if adapter and (adapter / "tokenizer.json").is_file() else base_dir
    )
    train_set, cut = encode_examples(tokenizer, load_examples(train_file), max_len)
    val_set, val_cut = encode_examples(tokenizer, load_examples(val_file), max_len) if val_file.is_file() else ([], 0)
    if not train_set:
        raise NoTrainingData(
            f"no trainable example in {train_file} ({cut} longer than --max-len {max_len} were dropped): raise"
            " --max-len, or collect more runs."
        )
    main_process = os.environ.get("RANK", "0") == "0"  # under accelerate launch / torchrun the main one reports
    if not as_json and main_process:
        click.echo(f"agentdistill: training {base_dir.name} on {len(train_set)} examples ({cut} over --max-len "
                   f"dropped), validating on {len(val_set)} -> {out}", err=True)  # fmt: skip
    if engine == "trl":
        from agentdistill.distill.trl_engine import train_with_trl

        result = train_with_trl(base_dir, train_set, val_set, config, out, init_adapter=adapter,
                                progress=False if as_json else None)  # fmt: skip
    else:
        result = train_sft(
            base_dir, train_set, val_set, config, out, init_adapter=adapter, progress=False if as_json else None
        )
    summary = {
        "method": method, "engine": engine, "base": str(base_dir), "init_adapter": str(adapter) if adapter else None,
        "train_examples": len(train_set), "val_examples": len(val_set), "dropped_over_max_len": cut + val_cut,
        "steps": result.steps, "resumed_from": result.resumed_from, "train_loss": result.train_loss,
        "val_loss": result.val_loss, "final_dir": str(result.final_dir), "metrics": str(result.metrics_path),
        "plot": str(result.plot_path) if result.plot_path else None,
    }  # fmt: skip
    if not main_process:
        return
    if as_json:
        emit_json(summary)
        return
    table(f"distill train -> {out}", ["", "value"], [(k, v) for k, v in summary.items()])
