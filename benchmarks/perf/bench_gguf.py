"""Decode speed of the gguf backend against raw llama-cpp-python in a separate process with the default environment.

    python benchmarks/perf/bench_gguf.py [--big] [--rounds 1] [--json]

Every side runs in a process of its own (benchmarks/perf/gguf_decode_child.py), greedy, forced to --tokens
new tokens, one warm-up rep then --repeats measured reps, cold KV cache each rep:
  raw    `Llama.generate` with llama-cpp-python's defaults and the environment a user has (threads = cores,
         so the thread count is not what differs)
  ours   `gguf:NAME` through ChatModel.generate with the backend's own choices (llama_threads: wait policy
         picked at load, one decode thread while other processes hold a core)
  today  ours as it was before: OMP_WAIT_POLICY=PASSIVE for the whole process
under three conditions (fewer tokens under load: --loaded-tokens): quiet; loaded (two CPU-burning
processes started before the side loads); and late load (the burners start after the warm-up rep, so
a policy picked at load time meets load it did not see).
Sides alternate order between rounds; medians of the pooled reps are compared. A side whose process
takes longer than --side-timeout collapsed: it is reported as below (tokens x reps / timeout) tok/s.
decode tok/s = (tokens - 1) / (seconds after the first token). Goal: ours / raw >= 0.95 quiet, and ours no
worse than today under load. The bandwidth bound: tok/s <= memory bandwidth / weight bytes per token.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from common import machine_summary
from gguf_decode_child import start_burners, stop_burners

GOAL = 0.95  # ours must keep at least this share of raw llama-cpp-python decode speed on a quiet machine
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
BIG = "qwen2.5-coder-1.5b"
CONDITIONS = ("quiet", "loaded", "late_load")
SIDES = ("raw", "ours", "today")
_CLEAN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "AGENTDISTILL_LLAMA_WAIT")  # variables no side inherits from us


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_gguf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated packaged model names")
    parser.add_argument("--big", action="store_true", help=f"also {BIG}")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma-separated, of {CONDITIONS}")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation, forced on every side")
    parser.add_argument("--repeats", type=int, default=3, help="measured reps per side process, after one warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="processes per side (order alternates per round)")
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes of the loaded conditions")
    parser.add_argument("--loaded-tokens", type=int, default=32, help="new tokens per generation under load")
    parser.add_argument("--side-timeout", type=float, default=300, help="seconds before a side counts as collapsed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.repeats < 1 or args.rounds < 1:
        parser.error("--tokens must be >= 2, --repeats and --rounds >= 1")
    unknown = set(args.conditions.split(",")) - set(CONDITIONS)
    if unknown:
        parser.error(f"unknown condition(s) {sorted(unknown)}: choose from {CONDITIONS}")
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


def run_side(side: str, model: str, condition: str, args: argparse.Namespace) -> dict:
    """One child process: its JSON result. raw gets threads = cores explicitly; ours picks its own."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    if side == "today":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [sys.executable, str(Path(__file__).with_name("gguf_decode_child.py"))]
    command += ["--side", "raw" if side == "raw" else "ours", "--model", model]
    tokens = args.tokens if condition == "quiet" else args.loaded_tokens
    command += ["--tokens", str(tokens), "--repeats", str(args.repeats)]
    if side == "raw":
        command += ["--threads", str(os.cpu_count() or 1)]
    if condition == "late_load":
        command += ["--load-after-warmup", str(args.burners)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.side_timeout)
    except subprocess.TimeoutExpired:  # spinning threads starved by the burners: record the collapse, go on
        bound = round(tokens * (args.repeats + 1) / args.side_timeout, 2)
        return {"decode_tok_s": [], "timed_out_s": args.side_timeout, "below_tok_s": bound, "text": ""}
    if done.returncode != 0:
        raise SystemExit(f"{side} {model} {condition} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_condition(model: str, condition: str, args: argparse.Namespace) -> dict:
    """Every side of one model under one condition: median decode tok/s and the ratios to raw and today."""
    burners = start_burners(args.burners) if condition == "loaded" else []
    time.sleep(1.0 if burners else 0)
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    try:
        for round_ in range(args.rounds):
            for side in SIDES if round_ % 2 == 0 else tuple(reversed(SIDES)):
                result = run_side(side, model, condition, args)
                runs[side].append(result)
                print(f"{model} {condition} {side}: {result['decode_tok_s'] or result}", file=sys.stderr, flush=True)
    finally:
        stop_burners(burners)
    out: dict = {"model": model, "condition": condition}
    for side, results in runs.items():
        rates = [r for result in results for r in result["decode_tok_s"]]
        if not rates:  # every process of this side timed out: report the bound it stayed below
            out[side] = {"decode_tok_s": min(r["below_tok_s"] for r in results), "runs": [], "timed_out": True}
            continue
        out[side] = {"decode_tok_s": round(statistics.median(rates), 2), "runs": rates}
        if side == "ours":
            out[side]["openmp_wait"] = results[-1].get("openmp_wait")
            out[side]["threads_last_call"] = results[-1].get("threads_last_call")
    out["ours_vs_raw"] = round(out["ours"]["decode_tok_s"] / out["raw"]["decode_tok_s"], 3)
    out["ours_vs_today"] = round(out["ours"]["decode_tok_s"] / out["today"]["decode_tok_s"], 3)
    out["same_text_ours_raw"] = runs["ours"][0]["text"] == runs["raw"][0]["text"]
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    names = [n for n in args.models.split(",") if n] + ([BIG] if args.big and BIG not in args.models else [])
    conditions = [c for c in CONDITIONS if c in args.conditions.split(",")]
    bandwidth = copy_bandwidth()
    results = []
    for name in names:
        for condition in conditions:
            results.append(bench_condition(name, condition, args))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    from agentdistill.models.gguf_backend import load_gguf_target

    bounds = {name: bandwidth / weight_bytes_per_token(load_gguf_target(name)[0]) for name in names}
    for result in results:
        result["bandwidth_bound_tok_s"] = round(bounds[result["model"]], 1)
    import llama_cpp

    summary = {
        "machine": machine_summary(),
        "llama_cpp_python": llama_cpp.__version__,
        "copy_traffic_gb_s": round(bandwidth / 1e9, 2),
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "burners": args.burners,
        "goal": GOAL,
        "results": results,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return summary


def _print(summary: dict) -> None:
    print(
        f"{summary['machine']} | llama-cpp-python {summary['llama_cpp_python']}"
        f" | copy traffic {summary['copy_traffic_gb_s']} GB/s | {summary['new_tokens']} tokens,"
        f" {summary['repeats']} reps x {summary['rounds']} round(s) | loaded = {summary['burners']} burning processes"
    )
    print("| model | condition | raw | ours | today (PASSIVE) | ours/raw | ours/today | ours' wait, last threads |")
    print("|---|---|---|---|---|---|---|---|")
    for r in summary["results"]:
        flag = "" if r["condition"] != "quiet" or r["ours_vs_raw"] >= GOAL else " (below goal)"
        cells = [("< " if r[side].get("timed_out") else "") + f"{r[side]['decode_tok_s']:.1f}" for side in SIDES]
        print(
            f"| {r['model']} | {r['condition']} | {' | '.join(cells)}"
            f" | {r['ours_vs_raw']:.2f}{flag} | {r['ours_vs_today']:.2f}"
            f" | {r['ours']['openmp_wait']}, {r['ours']['threads_last_call']} |"
        )


if __name__ == "__main__":
    main()
