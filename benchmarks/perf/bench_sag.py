"""SAG sampling throughput: n samples in one batched call against n sequential calls, on the transformers backend.

    python benchmarks/perf/bench_sag.py --model transformers:smollm2-135m --n 8 --tokens 64 --repeats 3
    python benchmarks/perf/bench_sag.py --model transformers:qwen2.5-coder-0.5b --json

Part 1 (SAG): a CodeAct prompt, temperature 0.7, every sample forced to exactly --tokens new tokens
(no stop strings, end-of-sequence suppressed) so both sides do the same work:
* sequential: n calls with n=1 (prefix reuse off: each call runs the whole prompt, as before);
* batched: one call with n (the prompt runs once, its keys/values are copied n times, one decode batch);
* raw: `model.generate(num_return_sequences=n)` on the same weights, what the backend did before.
Part 2 (concurrent): --threads callers, one greedy request each with its own task, through the request
batcher (on) against the model lock (off). It decides whether batching is worth turning on for this device.
After a short warm-up call the reps interleave the sides; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from common import machine_summary

from agentdistill.agents.codeact_parse import codeact_messages
from agentdistill.models import Message, ModelOptions, make_chat_model

TASKS = [
    "A train leaves at 09:40 and arrives at 13:05. How many minutes does the trip take?",
    "What is the sum of the prime numbers below 50?",
    "A rectangle has a perimeter of 46 cm and one side of 9 cm. What is its area in square cm?",
    "How many days are there between 2024-02-10 and 2024-05-03?",
    "Solve x**2 - 5*x + 6 = 0 and give the larger root.",
    "What is 17% of 2350?",
    "How many ways can 4 books be arranged on a shelf from a set of 7?",
    "Convert 98.6 degrees Fahrenheit to Celsius, rounded to one decimal.",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_sag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="transformers:smollm2-135m", help="a transformers: or hf: model spec")
    parser.add_argument("--n", type=int, default=8, help="samples per SAG step")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per sample, forced on every side")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=4, help="concurrent callers in part 2 (0 skips it)")
    parser.add_argument("--repeats", type=int, default=3, help="measured reps per side")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw num_return_sequences side (saves time)")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads (on a busy machine 1 beats 2 by far)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if min(args.n, args.tokens, args.repeats) < 1 or args.threads < 0:
        parser.error("--n, --tokens and --repeats must be >= 1, --threads >= 0")
    return args


def synced(device: str) -> Callable[[Callable[[], Any]], float]:
    """Seconds of one run, waiting for queued GPU kernels so they are counted."""

    def run(fn: Callable[[], Any]) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    return run


def interleaved(sides: dict[str, Callable[[], Any]], repeats: int, timed: Callable, log: Callable) -> dict[str, list]:
    """Alternate the sides' order each rep, so drift on a busy machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(repeats):
        for name, fn in list(sides.items()) if rep % 2 else list(reversed(sides.items())):
            times[name].append(timed(fn))
            log(f"rep {rep} {name}: {times[name][-1]:.2f} s")
    return times


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    log = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr))
    base = make_chat_model(args.model, ModelOptions(device=args.device, threads=args.torch_threads))
    if not hasattr(base, "variant"):
        raise SystemExit(f"{args.model}: only transformers:/hf: models have the batched paths measured here")
    timed = synced(base.device)
    prompt: list[Message] = codeact_messages(TASKS[0], [])
    plain = base.variant(reuse_prefix=False, batch_requests=False)
    hf_model, tokenizer = plain.unwrap()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = plain.encode(prompt)
    forced = {"max_tokens": args.tokens, "min_tokens": args.tokens, "temperature": args.temperature}

    def sequential() -> None:
        for i in range(args.n):
            plain.generate(prompt, seed=i, **forced)

    def batched() -> None:
        out = plain.generate(prompt, n=args.n, seed=0, **forced)
        assert all(c.usage.completion_tokens == args.tokens for c in out)

    def raw() -> None:
        with torch.inference_mode():
            hf_model.generate(
                input_ids=prompt_ids,
                attention_mask=torch.ones_like(prompt_ids),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=True,
                temperature=args.temperature,
                top_k=0,
                top_p=1.0,
                num_return_sequences=args.n,
                pad_token_id=pad,
            )

    log(f"SAG: {prompt_ids.shape[1]}-token prompt, n={args.n}, {args.tokens} tokens each")
    # Warm-up, short: the first calls allocate and pick kernels; a full warm-up rep would double the run time.
    plain.generate(prompt, n=2, temperature=args.temperature, max_tokens=4)
    plain.generate(prompt, max_tokens=4)
    sides = {"sequential": sequential, "batched": batched, **({} if args.no_raw else {"raw": raw})}
    sag = interleaved(sides, args.repeats, timed, log)
    med = {name: statistics.median(ts) for name, ts in sag.items()}
    result: dict[str, Any] = {
        "model": args.model,
        "machine": machine_summary(),
        "device": f"{base.device} {base.dtype}, {torch.get_num_threads()} torch threads",
        "prompt_tokens": int(prompt_ids.shape[1]),
        "n": args.n,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "sag_samples_per_s": {name: round(args.n / s, 3) for name, s in med.items()},
        "sag_speedup_batched_vs_sequential": round(med["sequential"] / med["batched"], 2),
        "sag_speedup_batched_vs_raw": round(med["raw"] / med["batched"], 2) if "raw" in med else None,
        "sag_runs_s": {name: [round(t, 2) for t in ts] for name, ts in sag.items()},
    }
    if args.threads:
        result.update(concurrent(base, args, timed, log))
    if args.json:
        print(json.dumps(result))
    else:
        print(result["machine"], "|", result["device"])
        rates = result["sag_samples_per_s"]
        print(
            f"{args.model} SAG n={args.n} x {args.tokens} tokens ({result['prompt_tokens']}-token prompt), median of"
            f" {args.repeats}: sequential {rates['sequential']} samples/s | batched {rates['batched']} | raw"
            f" num_return_sequences {rates.get('raw', '-')} | batched/sequential"
            f" {result['sag_speedup_batched_vs_sequential']}x"
        )
        if args.threads:
            print(
                f"{args.threads} concurrent greedy callers x {args.tokens} tokens: lock {result['concurrent_s']['off']}"
                f" s | batcher {result['concurrent_s']['on']} s | speedup {result['concurrent_speedup']}x"
                f" | same text: {result['concurrent_same_text']}"
            )
    return result


def concurrent(base: Any, args: argparse.Namespace, timed: Callable, log: Callable) -> dict[str, Any]:
    """`threads` callers released together, each with its own task: batcher on vs off (the model lock)."""
    prompts = [codeact_messages(TASKS[i % len(TASKS)], []) for i in range(args.threads)]
    models = {
        "off": base.variant(reuse_prefix=False, batch_requests=False),
        "on": base.variant(reuse_prefix=False, batch_requests=True),
    }
    texts: dict[str, list[str]] = {}

    def side(name: str) -> Callable[[], None]:
        def run() -> None:
            start = threading.Barrier(args.threads)

            def call(messages: list[Message]) -> str:
                start.wait()
                [done] = models[name].generate(messages, max_tokens=args.tokens, min_tokens=args.tokens)
                return done.text

            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                texts[name] = list(pool.map(call, prompts))

        return run

    log(f"concurrent: {args.threads} callers, greedy, {args.tokens} tokens each")
    times = interleaved({"off": side("off"), "on": side("on")}, args.repeats, timed, log)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "concurrent_threads": args.threads,
        "concurrent_s": {name: round(s, 2) for name, s in med.items()},
        "concurrent_speedup": round(med["off"] / med["on"], 2),
        "concurrent_batch_sizes": models["on"].batch_stats.sizes,
        "concurrent_same_text": texts["on"] == texts["off"],  # padded batch vs one by one, greedy
        "concurrent_runs_s": {name: [round(t, 2) for t in ts] for name, ts in times.items()},
    }


if __name__ == "__main__":
    main()
