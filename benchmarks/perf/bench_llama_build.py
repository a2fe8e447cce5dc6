"""Decode speed of llama.cpp builds side by side: the installed (portable) build against others on this CPU.

    python benchmarks/perf/bench_llama_build.py --build avx2=DIR --build native=DIR [--big] [--json]

Each build is a directory of llama.cpp shared libraries (libllama.so, libggml*.so), loaded by the installed
llama-cpp-python through LLAMA_CPP_LIB_PATH; `installed` is always included. benchmarks/perf/
build_llama_variants.sh builds the usual comparison set from the pinned llama-cpp-python sdist. Every
(build, model) runs in its own child process, so a build that crashes on this CPU is reported as such and
the others still run. Each child decodes greedily from the same ~110-token prompt, forced to --tokens new
tokens, one warm-up then --repeats reps; the whole set of children runs --rounds times in alternating order
and medians are compared. decode tok/s = (tokens - 1) / (seconds after the first token).
The bandwidth bound (tok/s <= memory bandwidth / weight bytes per token) is bench_gguf's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench_gguf import copy_bandwidth, weight_bytes_per_token
from common import machine_summary

from agentdistill.models.llama_build import read_cpu
from agentdistill.models.llama_probe import find_install
from agentdistill.models.packaged import assembled_gguf, find_packaged
from agentdistill.paths import cache_dir

MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
BIG = "qwen2.5-coder-1.5b"
PROMPT = (
    "<|im_start|>system\nYou are a research agent. Answer the question by reasoning step by step. Use this format:\n"
    "Thought: what you need to find out next\nAction: one of [search, calculator]\nAction Input: the input for the"
    " action\nThen stop and wait for the Observation. When you know the answer, write: Final Answer: <answer>"
    "<|im_end|>\n<|im_start|>user\nQuestion: What is the population of the capital city of Australia, and how does"
    " it compare to Sydney?<|im_end|>\n<|im_start|>assistant\n"
)

CHILD = r"""
import json, os, sys, time
import llama_cpp
path, tokens, repeats, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llama = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
prompt = llama.tokenize(sys.stdin.read().encode(), add_bos=False, special=True)
runs = []
for rep in range(repeats + 1):
    llama.reset()
    started = time.perf_counter(); first = None; out = []
    for token in llama.generate(prompt, temp=0.0):
        if first is None:
            first = time.perf_counter()
        out.append(token)
        if len(out) >= tokens:
            break
    end = time.perf_counter()
    if rep:
        runs.append({"decode_tok_s": (tokens - 1) / (end - first), "ttft_s": first - started})
text = llama.detokenize(out).decode("utf-8", errors="replace")
info = llama_cpp.llama_print_system_info().decode()
print(json.dumps({"runs": runs, "text": text, "system_info": info, "prompt_tokens": len(prompt)}))
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_llama_build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=LIBDIR of another llama.cpp build")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated packaged model names")
    parser.add_argument("--big", action="store_true", help=f"also {BIG}")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation, forced")
    parser.add_argument("--repeats", type=int, default=3, help="measured reps per child, after one warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="times every (build, model) child runs, interleaved")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per child")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.repeats < 1 or args.rounds < 1:
        parser.error("--tokens >= 2, --repeats >= 1 and --rounds >= 1")
    return args


def builds(args: argparse.Namespace) -> dict[str, Path]:
    install = find_install()
    if install is None:
        raise SystemExit("llama-cpp-python is not installed: nothing to load the builds with")
    found = {"installed": install.lib_dir}
    for item in args.build:
        name, sep, lib = item.partition("=")
        if not sep or not Path(lib).is_dir():
            raise SystemExit(f"--build {item!r}: expected NAME=DIR with a directory of llama.cpp libraries")
        found[name] = Path(lib)
    return found


def run_child(lib: Path, model: Path, args: argparse.Namespace) -> dict:
    """One child: its runs, or {"crashed": why} when it died, hung or failed."""
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(lib), "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-c", CHILD, str(model), str(args.tokens), str(args.repeats), str(args.threads)]
    try:
        done = subprocess.run(
            command, input=PROMPT, capture_output=True, text=True, env=env, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"crashed": f"hung (> {args.timeout:.0f} s)"}
    if done.returncode < 0:
        return {"crashed": signal.Signals(-done.returncode).name}
    if done.returncode != 0:
        return {"crashed": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    libs = builds(args)
    names = [n for n in args.models.split(",") if n] + ([BIG] if args.big and BIG not in args.models else [])
    paths = {name: assembled_gguf(find_packaged(name), cache_dir(), progress=False) for name in names}
    bandwidth = copy_bandwidth()
    load_before = os.getloadavg()[0]
    results: dict[tuple[str, str], list[dict]] = {(b, m): [] for b in libs for m in names}
    order = list(results)
    for round_ in range(args.rounds):
        for build, model in order if round_ % 2 == 0 else reversed(order):
            result = run_child(libs[build], paths[model], args)
            results[(build, model)].append(result)
            if not args.json:
                rates = [r["decode_tok_s"] for r in result.get("runs", [])]
                rate = result.get("crashed") or f"{statistics.median(rates):.2f} tok/s"
                print(f"round {round_} {build:<10} {model:<20} {rate}", file=sys.stderr)
    rows = []
    for model in names:
        weights = weight_bytes_per_token(paths[model])
        bound = bandwidth / weights
        base = None
        for build in libs:
            got = results[(build, model)]
            crashed = next((r["crashed"] for r in got if "crashed" in r), None)
            row: dict = {"model": model, "build": build, "bound_tok_s": round(bound, 2)}
            if crashed:
                row["crashed"] = crashed
            else:
                rates = [r["decode_tok_s"] for g in got for r in g["runs"]]
                row["decode_tok_s"] = round(statistics.median(rates), 2)
                row["ttft_s"] = round(statistics.median(r["ttft_s"] for g in got for r in g["runs"]), 3)
                row["share_of_bound"] = round(row["decode_tok_s"] / bound, 3)
                row["simd"] = _simd(got[0]["system_info"])
                row["text_head"] = got[0]["text"][:40]
                if build == "installed":
                    base = row["decode_tok_s"]
            rows.append(row)
        for row in rows:
            if row["model"] == model and base and "decode_tok_s" in row:
                row["vs_installed"] = round(row["decode_tok_s"] / base, 3)
    summary = {
        "machine": machine_summary(),
        "cpu": read_cpu().summary(),
        "threads": args.threads,
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "copy_traffic_gb_s": round(bandwidth / 1e9, 2),
        "tokens": args.tokens,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "builds": {k: str(v) for k, v in libs.items()},
        "rows": rows,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['machine']}; {summary['cpu']}; copy traffic {summary['copy_traffic_gb_s']} GB/s")
        print(f"{'model':<20} {'build':<10} {'decode tok/s':>12} {'vs installed':>12} {'% of bound':>10}  simd")
        for row in rows:
            if "crashed" in row:
                print(f"{row['model']:<20} {row['build']:<10} {'crashed: ' + row['crashed']:>36}")
            else:
                share = f"{100 * row['share_of_bound']:.0f}%"
                print(
                    f"{row['model']:<20} {row['build']:<10} {row['decode_tok_s']:>12} "
                    f"{row.get('vs_installed', '-'):>12} {share:>10}  {row['simd']}"
                )
    return summary


def _simd(system_info: str) -> str:
    wanted = ("AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI", "AMX_INT8")
    on = [part.split("=")[0].strip() for part in system_info.split("|") if part.strip().endswith("= 1")]
    return " ".join(f for f in on if f in wanted)


if __name__ == "__main__":
    main()
