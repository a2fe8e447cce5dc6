"""Decode speed of our transformers backend against raw `model.generate` on the very same loaded weights.

    python benchmarks/perf/bench_decode.py --model local:smollm2-135m --tokens 48 --repeats 5

Both sides decode greedily from the same ReAct prompt and are forced to exactly --tokens new tokens,
so only our overhead (templating, stop handling, bookkeeping) differs. Rep 0 warms both up; the reps
after it are interleaved so machine drift hits both sides alike, and the medians are compared.
The goal is a ratio (ours / raw) of at least 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import transformers

from agentdistill.models import ModelOptions, make_chat_model
from agentdistill.models.base import system, user

GOAL = 0.95  # ours must keep at least this share of raw decode speed

MSGS = [  # ~110 tokens with the chat template, the shape of one ReAct step
    system(
        "You are a research agent. Answer the question by reasoning step by step. Use this format:\n"
        "Thought: what you need to find out next\n"
        "Action: one of [search, calculator]\n"
        "Action Input: the input for the action\n"
        "Then stop and wait for the Observation. When you know the answer, write: Final Answer: <answer>"
    ),
    user("Question: What is the population of the capital city of Australia, and how does it compare to Sydney?"),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:smollm2-135m", help="a local: or hf: model spec")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per generation, forced on both sides")
    parser.add_argument("--repeats", type=int, default=5, help="measured reps per side, after one warm-up rep")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.tokens < 1 or args.repeats < 1:
        parser.error("--tokens and --repeats must be >= 1")
    return args


def machine_summary(device: str, dtype: str) -> str:
    """One line that makes a figure comparable: CPU/GPU, cores, torch threads, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: platform's answer will do
    accel = f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{accel} | {device} {dtype} | "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def timed(run: Callable[[], int], device: str) -> tuple[int, float]:
    """(tokens generated, seconds), synchronising the GPU so queued kernels are counted."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    tokens = run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    ours = make_chat_model(args.model, ModelOptions(device=args.device, dtype=args.dtype, threads=args.threads))
    if not hasattr(ours, "unwrap"):
        raise SystemExit(f"{args.model}: only local: and hf: models run in-process and can be benchmarked here")
    hf_model, tok = ours.unwrap()  # the very same weights: only our overhead differs
    # Every repeat sends the same prompt: prefix reuse would skip its prefill and flatter our side.
    ours = ours.variant(reuse_prefix=False)
    prompt_ids = ours.encode(MSGS)  # the identical prompt tokens; raw gets them pre-tokenised, at no cost
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts: dict[str, str] = {}

    def run_ours() -> int:
        [done] = ours.generate(MSGS, max_tokens=args.tokens, min_tokens=args.tokens, temperature=0)
        texts["ours"] = done.text
        return done.usage.completion_tokens

    def run_raw() -> int:
        with torch.inference_mode():
            out = hf_model.generate(
                input_ids=prompt_ids,
                attention_mask=torch.ones_like(prompt_ids),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        generated = out[0, prompt_ids.shape[1] :]
        texts["raw"] = tok.decode(generated, skip_special_tokens=True)
        return int(generated.shape[0])

    sides = {"ours": run_ours, "raw": run_raw}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(args.repeats + 1):  # rep 0 warms up; interleaving spreads machine drift over both sides
        # Alternate who goes first, so a load that drifts within a rep does not always favour the same side.
        for name, run in sides.items() if rep % 2 else reversed(sides.items()):
            tokens, seconds = timed(run, ours.device)
            if tokens != args.tokens:
                raise SystemExit(f"{name} generated {tokens} tokens, expected {args.tokens}: the comparison is unfair")
            if rep:
                rates[name].append(tokens / seconds)
            if not args.json:
                print(
                    f"rep {rep}{' (warm-up)' if not rep else ''} {name}: {tokens / seconds:.2f} tok/s", file=sys.stderr
                )
    ours_tps, raw_tps = statistics.median(rates["ours"]), statistics.median(rates["raw"])
    result = {
        "model": args.model,
        "machine": machine_summary(ours.device, ours.dtype),
        "prompt_tokens": int(prompt_ids.shape[1]),
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "ours_tok_s": round(ours_tps, 3),
        "raw_tok_s": round(raw_tps, 3),
        "ratio": round(ours_tps / raw_tps, 4),
        "goal": GOAL,
        "same_text": texts["ours"] == texts["raw"],  # greedy on the same weights must agree
        "ours_runs": [round(r, 3) for r in rates["ours"]],
        "raw_runs": [round(r, 3) for r in rates["raw"]],
    }
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "ok" if result["ratio"] >= GOAL else f"BELOW GOAL {GOAL}"
        print(result["machine"])
        print(
            f"{args.model}: {result['prompt_tokens']}-token prompt, {args.tokens} new tokens, median of {args.repeats}"
            f" | ours {ours_tps:.2f} tok/s | raw {raw_tps:.2f} tok/s | ratio {result['ratio']:.3f} ({verdict})"
            f" | same text: {result['same_text']}"
        )
    return result


if __name__ == "__main__":
    main()
