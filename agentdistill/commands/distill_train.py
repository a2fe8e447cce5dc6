"""`agentdistill distill train`: fine-tune a student on a dataset dir written by `distill dataset`.

Torch, transformers and peft load inside the command, so `--help` stays fast. Running it again with the same
--out resumes from the last checkpoint; the same command works under `accelerate launch` / torchrun.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.commands.train_flags import pop_training_flags, training_options

METHODS = ("sft",)  # kd and redi need a teacher cache or negatives: `distill run --method` wires those


@click.command(name="train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset dir from `distill dataset` (train.jsonl, optional val.jsonl).")  # fmt: skip
@click.option("--base", help="Student to fine-tune: a dir, hf:DIR, student:DIR (continues its adapter) or local:NAME."
              " Default: the configured student.")  # fmt: skip
@click.option("--method", type=click.Choice(METHODS), default="sft", show_default=True, help="Training objective.")
@training_options
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
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run dir.")
@json_option
@click.pass_context
def train(
    ctx: click.Context, data_dir: Path, base: str | None, method: str, old_max_steps: int | None,
    grad_checkpointing: bool, schedule: str, save_every: int, eval_every: int, seed: int, engine: str, out: Path,
    as_json: bool, **kw: Any,
) -> None:  # fmt: skip
    """Fine-tune a student on DATA; writes OUT/final (adapter or model + tokenizer), metrics.jsonl and loss.png."""
    flags = pop_training_flags(kw)
    if old_max_steps is not None:
        if flags.train_steps is not None:
            raise click.UsageError("give --train-steps only (--max-steps is its old name)")
        click.echo("note: --max-steps is now --train-steps here (as in `distill run`, where --max-steps bounds "
                   "agent calls)", err=True)  # fmt: skip
        flags = dataclasses.replace(flags, train_steps=old_max_steps)
    from transformers import AutoTokenizer

    from agentdistill.distill.data import encode_examples, load_examples
    from agentdistill.distill.trainer import NoTrainingData, train_sft
    from agentdistill.models.weights import local_weights
    from agentdistill.paths import cache_dir

    conf = settings(ctx)
    if conf.threads:  # `threads` in config / AGENTDISTILL_THREADS: torch threads for training too
        import torch

        torch.set_num_threads(conf.threads)
    train_file, val_file = data_dir / "train.jsonl", data_dir / "val.jsonl"
    if not train_file.is_file():
        raise NoTrainingData(f"{train_file} not found: write it with `agentdistill distill dataset --out {data_dir}`.")
    config = flags.config(conf, schedule=schedule, grad_checkpointing=grad_checkpointing, save_every=save_every,
                          eval_every=eval_every, seed=seed)  # fmt: skip
    base_dir, adapter = local_weights(base or conf.student, cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(
        adapter if adapter and (adapter / "tokenizer.json").is_file() else base_dir
    )
    train_set, cut = encode_examples(tokenizer, load_examples(train_file), flags.max_len)
    val_set, val_cut = ([], 0)
    if val_file.is_file():
        val_set, val_cut = encode_examples(tokenizer, load_examples(val_file), flags.max_len)
    if not train_set:
        raise NoTrainingData(
            f"no trainable example in {train_file} ({cut} longer than --max-len {flags.max_len} were dropped): raise"
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
