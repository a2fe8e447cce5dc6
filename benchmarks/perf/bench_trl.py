"""Our trainer against TRL as the training engine: SFT (SFTTrainer) and logit KD (GKDTrainer), same data.

    python benchmarks/perf/bench_trl.py --model local:smollm2-135m --data RUN/data --steps 6
    python benchmarks/perf/bench_trl.py --model local:qwen2.5-coder-0.5b \
        --teacher local:qwen2.5-coder-0.5b --data RUN/data --steps 4 --sides ours-kd,trl-gkd

Every side fine-tunes the same student with the same LoRA (all-linear, alpha = 2r, dropout 0.05), AdamW,
cosine schedule, clipping at 1.0, batch x grad-accum, precision (fp32 on CPU, bf16 on CUDA), on examples of
exactly --seq-len tokens (the last --seq-len tokens of real `distill dataset` conversations, where the trained
turns are, or synthetic ReAct turns without --data), so no side pays for padding and the batch order does not
matter. Every side computes in fp32 on CPU (bf16 on CUDA) and recomputes activations only with
--grad-checkpointing; --trl-defaults leaves TRL's sides as SFTConfig has them (activation checkpointing on).
The loss mask is the same on both: TRL gets our token ids with `completion_mask` = our labels, the
pre-tokenized form SFTTrainer accepts as is.

Each side runs in its own child process (a clean peak RSS: `ru_maxrss`, model load included; CUDA: allocator
peak). Rates are tokens (all --seq-len of every example) per second of wall time over the timed steps (the
first --warmup are not timed). KD: ours builds the teacher's top-k cache once and then trains without the
teacher (the cache build is timed and counted against it end to end); GKD (lmbda = 0: off-policy, beta = 0:
forward KL, as ours) runs the teacher in every step. `--json` prints one object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIDES = ("ours-sft", "trl-sft", "ours-kd", "trl-gkd")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_trl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:smollm2-135m", help="student: local:NAME, hf:DIR or a model dir")
    parser.add_argument("--teacher", help="KD teacher sharing the student's tokenizer (enables ours-kd, trl-gkd)")
    parser.add_argument("--data", type=Path, help="a `distill dataset` dir (train.jsonl); default: synthetic turns")
    parser.add_argument("--sides", default="", help=f"comma list of {', '.join(SIDES)} (default: all that apply)")
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=1, help="child runs per side, interleaved")
    parser.add_argument("--batch-size", type=int, default=2, help="examples per micro-step")
    parser.add_argument("--grad-accum", type=int, default=2, help="micro-steps per optimizer step")
    parser.add_argument("--seq-len", type=int, default=512, help="tokens per example")
    parser.add_argument("--lora-r", type=int, default=16, help="adapter rank")
    parser.add_argument("--threads", type=int, help="torch threads in each child")
    parser.add_argument("--trl-defaults", action="store_true",
                        help="TRL sides as SFTConfig leaves them (activation checkpointing on)")  # fmt: skip
    parser.add_argument("--grad-checkpointing", action="store_true",
                        help="recompute activations on every side (TRL's SFTConfig default; ours' is off)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.steps, args.repeats, args.batch_size, args.grad_accum, args.seq_len, args.lora_r) < 1:
        parser.error("--steps, --repeats, --batch-size, --grad-accum, --seq-len, --lora-r must be >= 1")
    return args


def fixed_length_examples(tokenizer: Any, data: Path | None, count: int, seq_len: int) -> list[Any]:
    """`count` examples of exactly seq_len tokens, each with trained tokens left after the cut."""
    from bench_train import make_examples

    from agentdistill.distill.data import encode_examples, load_examples
    from agentdistill.distill.encoding import IGNORE, EncodedExample

    if data is None:
        return make_examples(tokenizer, count, seq_len)
    encoded, _ = encode_examples(tokenizer, load_examples(data / "train.jsonl"), max_len=1 << 20)
    # The last seq_len tokens: the trained turns sit at the end of a conversation.
    long_enough = [e for e in encoded if len(e.input_ids) >= seq_len and any(x != IGNORE for x in e.labels[-seq_len:])]
    if not long_enough:
        raise SystemExit(f"no example in {data}/train.jsonl has {seq_len} tokens with trained ones: lower --seq-len")
    picked = [long_enough[i % len(long_enough)] for i in range(count)]
    return [EncodedExample(f"{e.example_id}-{i}", e.input_ids[-seq_len:], e.labels[-seq_len:])
            for i, e in enumerate(picked)]  # fmt: skip


def run_child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one side in this process; return its timed rates and memory peak."""
    import torch
    from bench_train import base_dir_of
    from transformers import AutoTokenizer

    from agentdistill.models.transformers_backend import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    base = base_dir_of(args.model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    total = args.warmup + args.steps
    data = fixed_length_examples(tokenizer, args.data, total * args.batch_size * args.grad_accum, args.seq_len)
    tokens_per_step = args.batch_size * args.grad_accum * args.seq_len
    began = time.perf_counter()
    if side.startswith("ours"):
        stamps, extra = _ours(side, base, data, args, device)
    else:
        stamps, extra = _trl(side, base, tokenizer, data, args, device)
    wall = time.perf_counter() - began
    rates = [tokens_per_step / (b - a) for a, b in zip(stamps[args.warmup :], stamps[args.warmup + 1 :], strict=False)]
    # End to end: every step (warmup too) plus the teacher cache ours builds before training.
    e2e = tokens_per_step * total / (stamps[-1] - stamps[0] + extra.get("teacher_cache_s", 0.0))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _max_rss_mb()
    return {"side": side, "rates": rates, "e2e_tok_s": e2e, "peak_mb": peak, "wall_s": wall, "device": device} | extra


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _ours(side: str, base: Path, data: list[Any], args: argparse.Namespace, device: str) -> tuple[list[float], dict]:
    from agentdistill.distill.sft import sft_loss
    from agentdistill.distill.train_config import TrainConfig
    from agentdistill.distill.trainer import train

    config = TrainConfig(lora_r=args.lora_r, lora_alpha=2 * args.lora_r, batch_size=args.batch_size,
                         grad_accum=args.grad_accum, max_steps=args.warmup + args.steps, save_every=0,
                         eval_every=10**6, max_len=args.seq_len, warmup_ratio=0.0,
                         grad_checkpointing=args.grad_checkpointing)  # fmt: skip
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out:
        loss_fn = sft_loss
        if side == "ours-kd":
            from bench_train import base_dir_of

            from agentdistill.distill.kd import TeacherCache, kd_loss

            started = time.perf_counter()
            cache = TeacherCache.build(base_dir_of(args.teacher), data, Path(out) / "cache", progress=False)
            extra["teacher_cache_s"] = time.perf_counter() - started
            loss_fn = kd_loss(cache, "forward")
        result = train(base, data, [], config, Path(out) / "train", loss_fn=loss_fn, progress=False)
        rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    extra["final_loss"] = rows[-1]["loss"]
    # elapsed_s is stamped after each step, so differences cover everything the loop does per step.
    return [0.0] + [row["elapsed_s"] for row in rows], extra


def _trl(side: str, base: Path, tokenizer: Any, data: list[Any], args: argparse.Namespace,
         device: str) -> tuple[list[float], dict]:  # fmt: skip
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from agentdistill.distill.encoding import IGNORE

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

    rows = [{"input_ids": e.input_ids, "completion_mask": [int(x != IGNORE) for x in e.labels]} for e in data]
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip
    cuda = device.startswith("cuda")
    common = dict(per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
                  max_steps=args.warmup + args.steps, learning_rate=2e-4, lr_scheduler_type="cosine",
                  max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to="none", seed=0,
                  max_length=args.seq_len, bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0,
                  disable_tqdm=True)  # fmt: skip
    if not args.trl_defaults:  # the same precision and recomputation as ours
        weights = {"dtype": "bfloat16" if cuda else "float32"}
        common |= {"activation_checkpointing": args.grad_checkpointing, "model_init_kwargs": weights}
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out:
        if side == "trl-sft":
            from trl import SFTConfig, SFTTrainer

            config = SFTConfig(output_dir=out, completion_only_loss=True, packing=False, **common)
            trainer = SFTTrainer(model=str(base), args=config, train_dataset=Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])  # fmt: skip
        else:
            os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
            from bench_train import base_dir_of
            from trl.experimental.gkd import GKDConfig, GKDTrainer

            def collate(batch: list[dict]) -> dict[str, torch.Tensor]:  # equal lengths: no padding
                ids = torch.tensor([row["input_ids"] for row in batch])
                labels = ids.masked_fill(torch.tensor([row["completion_mask"] for row in batch]) == 0, IGNORE)
                return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

            teacher_weights = {} if args.trl_defaults else {"teacher_model_init_kwargs": common["model_init_kwargs"]}
            config = GKDConfig(output_dir=out, lmbda=0.0, beta=0.0, temperature=1.0, **common, **teacher_weights)
            trainer = GKDTrainer(model=str(base), teacher_model=str(base_dir_of(args.teacher)), args=config,
                                 data_collator=collate, train_dataset=Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])  # fmt: skip
        frozen = next(p for p in trainer.model.parameters() if not p.requires_grad)
        output = trainer.train()
    return stamps, {"final_loss": output.training_loss, "base_dtype": str(frozen.dtype)}


def spawn(side: str, argv: Sequence[str]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", side]
    env = os.environ | {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from common import machine_summary

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_child(args.child, args)), flush=True)
        return {}
    wanted = [s for s in args.sides.split(",") if s] or [s for s in SIDES if args.teacher or "kd" not in s]
    if unknown := set(wanted) - set(SIDES):
        raise SystemExit(f"unknown side(s) {sorted(unknown)}: choose from {', '.join(SIDES)}")
    if not args.teacher and any(s in ("ours-kd", "trl-gkd") for s in wanted):
        raise SystemExit("ours-kd and trl-gkd need --teacher (a model sharing the student's tokenizer)")
    runs: dict[str, list[dict]] = {s: [] for s in wanted}
    for rep in range(args.repeats):
        for side in wanted if rep % 2 == 0 else wanted[::-1]:
            run = spawn(side, argv)
            runs[side].append(run)
            if not args.json:
                shown = ", ".join(f"{r:.0f}" for r in run["rates"])
                print(f"rep {rep} {side}: {shown} tok/s, peak {run['peak_mb']:.0f} MiB, {run['wall_s']:.0f} s",
                      file=sys.stderr)  # fmt: skip
    sides = {}
    for side, reps in runs.items():
        rates = [r for run in reps for r in run["rates"]]
        sides[side] = {"tok_s": round(statistics.median(rates), 2), "peak_mb": round(max(r["peak_mb"] for r in reps)),
                       "wall_s": round(statistics.median(r["wall_s"] for r in reps), 1),
                       "e2e_tok_s": round(statistics.median(r["e2e_tok_s"] for r in reps), 2),
                       "final_loss": round(reps[-1]["final_loss"], 4)}  # fmt: skip
        if "base_dtype" in reps[-1]:
            sides[side]["base_dtype"] = reps[-1]["base_dtype"]
        if "teacher_cache_s" in reps[-1]:
            sides[side]["teacher_cache_s"] = round(statistics.median(r["teacher_cache_s"] for r in reps), 1)
    ratios = {}
    for ours, theirs in (("ours-sft", "trl-sft"), ("ours-kd", "trl-gkd")):
        if ours in sides and theirs in sides:
            ratios[f"{ours}/{theirs}"] = round(sides[ours]["tok_s"] / sides[theirs]["tok_s"], 3)
    result = {"model": args.model, "teacher": args.teacher, "data": str(args.data) if args.data else "synthetic",
              "machine": machine_summary(), "device": runs[wanted[0]][0]["device"], "seq_len": args.seq_len,
              "grad_checkpointing": args.grad_checkpointing, "trl_defaults": args.trl_defaults,
              "batch": f"{args.batch_size}x{args.grad_accum}", "lora_r": args.lora_r, "steps": args.steps,
              "repeats": args.repeats, "sides": sides, "tok_s_ratios": ratios}  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return result
    print(result["machine"])
    print(f"{args.model} LoRA r={args.lora_r}, {result['batch']} x {args.seq_len} tokens, {args.steps} timed steps:")
    for side, row in sides.items():
        cache = f", teacher cache {row['teacher_cache_s']} s" if "teacher_cache_s" in row else ""
        rates = f"{row['tok_s']:8.1f} tok/s ({row['e2e_tok_s']:.1f} end to end)"
        print(f"  {side:9} {rates}  peak {row['peak_mb']:6d} MiB  wall {row['wall_s']} s{cache}")
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio}x tokens/s")
    return result


if __name__ == "__main__":
    main()
