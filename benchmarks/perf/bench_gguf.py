"""Decode speed of the gguf backend against raw llama-cpp-python calls, the transformers backend and memory bandwidth.

    python -m agentdistill.benchmarks.perf.bench_gguf --repeats 3 [--big] [--json]

Every side decodes greedily from the same ReAct prompt and is forced to exactly --tokens new tokens:
(a) ours: `gguf:NAME` through `ChatModel.generate`; (b) raw: `Llama.generate` on the very same loaded
llama.cpp model, prompt tokens handed over pre-tokenised; (c) `transformers:NAME`. Before every gguf rep
the KV cache is cleared, so TTFT is a cold prompt evaluation on both gguf sides. Rep 0 warms up; the reps
after it are interleaved (alternating order) so load drift hits all sides alike, and medians are compared.

decode tok/s = (tokens - 1) / (seconds after the first token); e2e tok/s = tokens / call seconds.
The bandwidth bound: decoding one token reads every weight once, so tok/s <= memory bandwidth / weight
bytes per token. Bandwidth is measured as the read + write traffic of a numpy copy of a 1 GiB array (one
thread, best of 3); weight bytes are the GGUF's tensor bytes, less the token embedding when the model has
a separate output matrix (then only one embedding row is read per token). Goal: ours / raw >= 0.95.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agentdistill.benchmarks.perf.common import machine_summary
from agentdistill.models import ModelOptions, make_chat_model
from agentdistill.models.base import system, user

GOAL = 0.95  # ours must keep at least this share of raw llama-cpp-python decode speed
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
BIG = "qwen2.5-coder-1.5b"

MSGS = [  # the prompt of bench_decode: ~110 tokens with the chat template, the shape of one ReAct step
    system(
        "You are a research agent. Answer the question by reasoning step by step. Use this format:\n"
        "Thought: what you need to find out next\n"
        "Action: one of [search, calculator]\n"
        "Action Input: the input for the action\n"
        "Then stop and wait for the Observation. When you know the answer, write: Final Answer: <answer>"
    ),
    user("Question: What is the population of the capital city of Australia, and how does it compare to Sydney?"),
]
NEXT_STEP = [  # the second step of the same run: the first prompt plus one exchange (prefix reuse)
    {
        "role": "assistant",
        "content": "Thought: I need the capital.\nAction: search\nAction Input: capital of Australia",
    },
    user("Observation: [1] Canberra is the capital city of Australia, population about 467,000."),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_gguf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated packaged model names")
    parser.add_argument("--big", action="store_true", help=f"also {BIG} (transformers needs ~7 GB and minutes)")
    parser.add_argument("--no-transformers", action="store_true", help="skip side (c), the transformers backend")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation, forced on every side")
    parser.add_argument("--repeats", type=int, default=3, help="measured reps per side, after one warm-up rep")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: one per core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.repeats < 1:
        parser.error("--tokens must be >= 2 and --repeats >= 1")
    return args


def copy_bandwidth(gib: int = 1, repeats: int = 3) -> float:
    """Bytes per second moved (read + written) by a numpy copy of a `gib` GiB array, best of `repeats`."""
    import numpy as np

    src = np.ones(gib << 27, dtype=np.float64)  # 2**27 float64 = 1 GiB
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault every page in before timing
    best = min(_seconds(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best


def weight_bytes_per_token(path: Path) -> int:
    """Tensor bytes decoding reads per token; the file size when the `gguf` package is missing."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return path.stat().st_size
    sizes = {t.name: int(t.n_bytes) for t in GGUFReader(str(path)).tensors}
    if "output.weight" in sizes:  # untied: the embedding is only looked up, one row per token
        sizes.pop("token_embd.weight", None)
    return sum(sizes.values())


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


Run = tuple[int, float, float, str]  # (tokens, call seconds, seconds to first token, text)


def bench_model(name: str, args: argparse.Namespace, *, transformers: bool) -> dict:
    """Medians of every side for one packaged model, plus the prefix-reuse TTFT of a second ReAct step."""
    ours = make_chat_model(f"gguf:{name}", ModelOptions(threads=args.threads))
    llama = ours.unwrap()
    prompt = ours.encode(MSGS)

    def run_ours() -> Run:
        llama.reset()  # cold KV cache: TTFT is a full prompt evaluation, as it is for raw
        [done] = ours.generate(MSGS, max_tokens=args.tokens, min_tokens=args.tokens)
        return done.usage.completion_tokens, done.latency_s, done.ttft_s or 0.0, done.text

    def run_raw() -> Run:
        llama.reset()
        started = time.perf_counter()
        tokens: list[int] = []
        first = 0.0
        for token in llama.generate(prompt, temp=0.0):
            if not tokens:
                first = time.perf_counter() - started
            tokens.append(token)
            if len(tokens) >= args.tokens:
                break
        text = llama.detokenize(tokens).decode("utf-8", errors="replace")
        return len(tokens), time.perf_counter() - started, first, text

    sides: dict[str, Callable[[], Run]] = {"ours": run_ours, "raw": run_raw}
    if transformers:
        hf = make_chat_model(f"transformers:{name}")

        def run_hf() -> Run:
            [done] = hf.generate(MSGS, max_tokens=args.tokens, min_tokens=args.tokens, on_token=lambda _: None)
            return done.usage.completion_tokens, done.latency_s, done.ttft_s or 0.0, done.text

        sides["transformers"] = run_hf
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    order = list(sides.items())
    for rep in range(args.repeats + 1):  # rep 0 warms up
        for side, run in order if rep % 2 else reversed(order):
            result = run()
            if result[0] != args.tokens:
                raise SystemExit(f"{name} {side}: {result[0]} tokens, expected {args.tokens}: the comparison is unfair")
            if rep:
                runs[side].append(result)
            if not args.json:
                print(f"{name} rep {rep}{' (warm-up)' if not rep else ''} {side}: {_rates(result)}", file=sys.stderr)
    # Prefix reuse: step 2 of a run shares step 1's prompt; only the new exchange is evaluated.
    llama.reset()
    [cold] = ours.generate([*MSGS, *NEXT_STEP], max_tokens=1)
    ours.generate(MSGS, max_tokens=1)  # leaves step 1's prompt in the KV cache
    [warm] = ours.generate([*MSGS, *NEXT_STEP], max_tokens=1)
    out = {
        "model": name,
        "gguf_path": str(ours.path),
        "prompt_tokens": len(prompt),
        "step2_prompt_tokens": cold.usage.prompt_tokens,
        "step2_ttft_cold_s": round(cold.ttft_s or 0.0, 4),
        "step2_ttft_prefix_reused_s": round(warm.ttft_s or 0.0, 4),
        "same_text_ours_raw": runs["ours"][0][3] == runs["raw"][0][3],
    }
    for side, results in runs.items():
        out[side] = {
            "decode_tok_s": round(statistics.median((t - 1) / (s - f) for t, s, f, _ in results), 2),
            "e2e_tok_s": round(statistics.median(t / s for t, s, _, _ in results), 2),
            "ttft_s": round(statistics.median(f for _, _, f, _ in results), 4),
            "decode_runs": [round((t - 1) / (s - f), 2) for t, s, f, _ in results],
        }
    out["ratio_ours_raw"] = round(out["ours"]["decode_tok_s"] / out["raw"]["decode_tok_s"], 4)
    out["ratio_ours_raw_e2e"] = round(out["ours"]["e2e_tok_s"] / out["raw"]["e2e_tok_s"], 4)
    if transformers:
        out["speedup_ours_vs_transformers"] = round(
            out["ours"]["decode_tok_s"] / out["transformers"]["decode_tok_s"], 2
        )
    out["weight_bytes_per_token"] = weight_bytes_per_token(ours.path)
    return out


def _rates(run: Run) -> str:
    tokens, seconds, first, _ = run
    return f"decode {(tokens - 1) / (seconds - first):.2f} tok/s, e2e {tokens / seconds:.2f} tok/s, ttft {first:.3f} s"


def _free_models() -> None:
    """Drop every loaded model before the next one, so a 1.5B run does not share memory with the last."""
    from agentdistill.models import gguf_backend

    gguf_backend.clear_model_cache()
    try:
        from agentdistill.models import transformers_backend
    except ImportError:
        pass  # transformers is not installed: nothing of it was loaded
    else:
        transformers_backend.clear_model_cache()
    gc.collect()


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    names = [n for n in args.models.split(",") if n] + ([BIG] if args.big and BIG not in args.models else [])
    load_before = os.getloadavg()
    bandwidth = copy_bandwidth()
    if not args.json:
        print(f"numpy copy traffic (read + write, 1 thread): {bandwidth / 1e9:.2f} GB/s", file=sys.stderr)
    results = []
    for name in names:
        result = bench_model(name, args, transformers=not args.no_transformers)
        _free_models()  # the function's references are gone now
        bound = bandwidth / result["weight_bytes_per_token"]
        result["bandwidth_bound_tok_s"] = round(bound, 2)
        for side in ("ours", "raw", "transformers"):
            if side in result:
                result[side]["share_of_bound"] = round(result[side]["decode_tok_s"] / bound, 3)
        results.append(result)
    import llama_cpp

    summary = {
        "machine": machine_summary(),
        "threads": args.threads or os.cpu_count(),
        "llama_cpp_python": llama_cpp.__version__,
        "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "copy_traffic_gb_s": round(bandwidth / 1e9, 2),
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "goal": GOAL,
        "models": results,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return summary


def _print(summary: dict) -> None:
    print(
        f"{summary['machine']} | {summary['threads']} llama.cpp threads"
        f" | llama-cpp-python {summary['llama_cpp_python']} | load {summary['load_avg_1m_before_after']}"
        f" | copy traffic {summary['copy_traffic_gb_s']} GB/s"
    )
    for r in summary["models"]:
        sides = " | ".join(
            f"{side} {r[side]['decode_tok_s']:.1f} tok/s"
            f" (ttft {r[side]['ttft_s']:.3f} s, {r[side]['share_of_bound']:.0%} of bound)"
            for side in ("ours", "raw", "transformers")
            if side in r
        )
        verdict = "ok" if r["ratio_ours_raw"] >= GOAL else f"BELOW GOAL {GOAL}"
        print(
            f"{r['model']}: {r['prompt_tokens']}-token prompt, {summary['new_tokens']} tokens, median of"
            f" {summary['repeats']} | {sides} | bound {r['bandwidth_bound_tok_s']:.1f} tok/s"
            f" | ours/raw {r['ratio_ours_raw']:.3f} ({verdict}) | same text: {r['same_text_ours_raw']}"
            f" | step-2 ttft {r['step2_ttft_cold_s']:.3f} s cold -> {r['step2_ttft_prefix_reused_s']:.3f} s reused"
        )


if __name__ == "__main__":
    main()
