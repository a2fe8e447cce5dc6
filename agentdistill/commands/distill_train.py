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

METHODS = ("sft", "kd", "xkd")  # redi needs negatives: `distill run --method redi` wires it


@click.command(name="train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset dir from `distill dataset` (train.jsonl, optional val.jsonl).")  # fmt: skip
@click.option("--base", help="Student to fine-tune: a dir, hf:DIR, student:DIR (continues its adapter) or local:NAME."
              " Default: the configured student.")  # fmt: skip
@click.option("--method", type=click.Choice(METHODS), default="sft", show_default=True,
              help="Training objective: sft; kd (logit KD from --kd-teacher, same tokenizer); xkd (cross-tokenizer"
              " KD from a teacher of another family, e.g. Qwen -> SmolLM2).")  # fmt: skip
@click.option("--kd-teacher", help="Teacher for kd/xkd: a dir, hf:DIR or local:NAME (e.g. local:qwen2.5-coder-0.5b).")
@click.option("--kd-top-k", type=click.IntRange(1), default=20, show_default=True,
              help="Teacher tokens kept per position (kd/xkd); the rest of its mass is one bucket.")  # fmt: skip
@click.option("--kd-ce-weight", type=click.FloatRange(0), default=None,
              help="kd: weight of the label CE added to the KL (default 0). xkd: weight of the CE on labels whose"
              " token the teacher does not share a boundary with (default 1).")  # fmt: skip
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
    ctx: click.Context, data_dir: Path, base: str | None, method: str, kd_teacher: str | None, kd_top_k: int,
    kd_ce_weight: float | None, old_max_steps: int | None,
    grad_checkpointing: bool, schedule: str, save_every: int, eval_every: int, seed: int, engine: str, out: Path,
    as_json: bool, **kw: Any,
) -> None:  # fmt: skip
    """Fine-tune a student on DATA; writes OUT/final (adapter or model + tokenizer), metrics.jsonl and loss.png."""
    flags = pop_training_flags(kw)
    if method == "sft" and kd_teacher is not None:
        raise click.UsageError("--kd-teacher teaches only with --method kd or xkd")
    if method in ("kd", "xkd") and not kd_teacher:
        raise click.UsageError(f"--method {method} needs --kd-teacher (a dir, hf:DIR or local:NAME)")
    if method != "sft" and engine == "trl":
        raise click.UsageError(f"--method {method} runs on --engine ours only (TRL's SFTTrainer has no KD loss)")
    if old_max_steps is not None:
        if flags.train_steps is not None:
            raise click.UsageError("give --train-steps only (--max-steps is its old name)")
        click.echo("note: --max-steps is now --train-steps here (as in `distill run`, where --max-steps bounds "
                   "agent calls)", err=True)  # fmt: skip
        flags = dataclasses.replace(flags, train_steps=old_max_steps)
    from transformers import AutoTokenizer

    from agentdistill.distill.data import encode_examples, load_examples
    from agentdistill.distill.trainer import NoTrainingData, train, train_sft
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
    teacher_dir = _teacher_dir(kd_teacher) if method != "sft" else None  # fail before any encoding or training
    tok_dir = adapter if adapter and (adapter / "tokenizer.json").is_file() else base_dir
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    train_set, cut = encode_examples(tokenizer, load_examples(train_file), flags.max_len)
    val_set, val_cut = ([], 0)
    if val_file.is_file():
        val_set, val_cut = encode_examples(tokenizer, load_examples(val_file), flags.max_len)
    if not train_set:
        raise NoTrainingData(
            f"no trainable example in {train_file} ({cut} longer than --max-len {flags.max_len} were dropped): raise"
            " --max-len, or collect more runs."
        )
    extra: dict[str, Any] = {}
    main_process = os.environ.get("RANK", "0") == "0"  # under accelerate launch / torchrun the main one reports
    if not as_json and main_process:
        click.echo(f"agentdistill: training {base_dir.name} on {len(train_set)} examples ({cut} over --max-len "
                   f"dropped), validating on {len(val_set)} -> {out}", err=True)  # fmt: skip
    if engine == "trl":
        from agentdistill.distill.trl_engine import train_with_trl

        result = train_with_trl(base_dir, train_set, val_set, config, out, init_adapter=adapter,
                                progress=False if as_json else None)  # fmt: skip
    elif method == "sft":
        result = train_sft(
            base_dir, train_set, val_set, config, out, init_adapter=adapter, progress=False if as_json else None
        )
    else:
        loss_fn, extra = _kd_loss(method, teacher_dir, tok_dir, train_file, train_set, out, kd_top_k,
                                  kd_ce_weight, progress=False if as_json else None)  # fmt: skip
        result = train(base_dir, train_set, val_set, config, out, loss_fn=loss_fn, init_adapter=adapter,
                       progress=False if as_json else None)  # fmt: skip
    summary = {
        "method": method, "engine": engine, "base": str(base_dir), "init_adapter": str(adapter) if adapter else None,
        "train_examples": len(train_set), "val_examples": len(val_set), "dropped_over_max_len": cut + val_cut,
        "steps": result.steps, "resumed_from": result.resumed_from, "train_loss": result.train_loss,
        "val_loss": result.val_loss, "final_dir": str(result.final_dir), "metrics": str(result.metrics_path),
        "plot": str(result.plot_path) if result.plot_path else None,
    } | extra  # fmt: skip
    if not main_process:
        return
    if as_json:
        emit_json(summary)
        return
    table(f"distill train -> {out}", ["", "value"], [(k, v) for k, v in summary.items()])


def _teacher_dir(spec: str | None) -> Path:
    """The HF dir behind --kd-teacher; a spec with no local weights is a usage error naming the flag."""
    from agentdistill.models.weights import NotTrainable, base_weights
    from agentdistill.paths import cache_dir

    try:
        return base_weights(spec or "", cache_dir())
    except NotTrainable as exc:
        raise click.BadParameter(
            f"{spec!r} is no local teacher: give an HF model dir, hf:DIR or local:NAME (a teacher's logits are read "
            "from its weights; API models have none). See `agentdistill models list`.",
            param_hint="--kd-teacher",
        ) from exc


def _kd_loss(
    method: str, teacher_dir: Path | None, student_dir: Path, train_file: Path, train_set: list, out: Path, k: int,
    ce_weight: float | None, *, progress: bool | None,
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The loss of --method kd / xkd and what the summary adds; the teacher's scores are cached under OUT."""
    assert teacher_dir is not None  # resolved by _teacher_dir for every method but sft
    if method == "kd":
        from agentdistill.distill.kd import TeacherCache, kd_loss

        cache = TeacherCache.build(teacher_dir, train_set, out / "teacher-logits", k=k, student_dir=student_dir,
                                   progress=progress)  # fmt: skip
        return kd_loss(cache, ce_weight=ce_weight or 0.0), {"teacher": str(teacher_dir)}
    from agentdistill.distill.data import load_examples
    from agentdistill.distill.xtok_kd import xkd_loss

    loss = xkd_loss(teacher_dir, student_dir, load_examples(train_file), train_set, out / "teacher-xkd", k=k,
                    ce_weight=1.0 if ce_weight is None else ce_weight, progress=progress)  # fmt: skip
    return loss, {"teacher": str(teacher_dir), "aligned_share": round(loss.aligned_share, 4)}
