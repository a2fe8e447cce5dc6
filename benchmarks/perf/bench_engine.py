"""Aggregate decode speed of a managed llama-server at 1, 2, 4, 8 parallel streams, and the prompt cache.

    python benchmarks/perf/bench_engine.py [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b] [--json]

For each model one engine with max(--streams) slots runs; at each level N, N requests with different
questions (same ~110-token system prompt) go in at once, each forced to --tokens new tokens
(`ignore_eos`), and aggregate tok/s = all new tokens / wall seconds from the first send to the last reply.
The ratio is against N = 1 measured in the same run; levels are repeated --repeats times, interleaved.
Also the prefix cache: the server's own prompt timings for an item whose system prompt a slot already
holds vs one whose system prompt it has never seen (same length).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from common import machine_summary

from agentdistill.models.engine import EngineConfig, EngineState
from agentdistill.models.engine_manager import running_engine
from agentdistill.models.engine_model import gguf_for_spec
from agentdistill.paths import home_dir

MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
SYSTEM = (
    "You are a careful math agent. Solve the problem step by step. Write one line 'Thought: ...' with your "
    "reasoning, then one Python code block that computes the answer and calls final_answer(result). Use only "
    "the numbers in the problem. Check units and the question asked before you answer. Keep variable names "
    "short and meaningful, and print intermediate values when they help you check the work."
)
QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?",
    "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes. How much did she earn?",
    "Betty needs $100 for a wallet. She has half, her parents give $15 and grandparents twice that. How much more?",
    "James writes a 3-page letter to 2 friends twice a week. How many pages does he write a year?",
    "Mark has a garden with 10 yellow flowers, 80% more purple ones and 25% as many green as both. How many?",
    "Albert buys 2 large pizzas of 16 slices and 2 small of 8. How many slices does he eat if he eats all?",
    "Ken made a care package: 2 pounds of jelly beans, tripled by brownies, +2 pounds, then doubled. Weight?",
    "Alexis spent $200 on clothes: shirt $30, pants $46, coat $38, socks $11, belt $18, shoes. $16 left. Shoes?",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated packaged model names")
    parser.add_argument("--streams", default="1,2,4,8", help="parallel stream counts to measure")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per stream, forced")
    parser.add_argument("--repeats", type=int, default=2, help="reps of every level, interleaved")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def ask(state: EngineState, system: str, question: str, tokens: int) -> dict:
    body = {
        "model": state.name,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    request = urllib.request.Request(
        f"{state.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=900) as reply:
        return json.loads(reply.read())


def level(state: EngineState, streams: int, tokens: int) -> dict:
    with ThreadPoolExecutor(streams) as pool:
        started = time.perf_counter()
        replies = list(pool.map(lambda i: ask(state, SYSTEM, QUESTIONS[i % len(QUESTIONS)], tokens), range(streams)))
        wall = time.perf_counter() - started
    produced = sum(r["usage"]["completion_tokens"] for r in replies)
    # decode alone: the streams decode side by side, so the longest decode phase is their shared wall time
    decode_s = max(r["timings"]["predicted_ms"] for r in replies) / 1000
    decoded = sum(r["timings"]["predicted_n"] for r in replies)
    return {"streams": streams, "tokens": produced, "wall_s": wall, "agg_tok_s": produced / wall,
            "agg_decode_tok_s": decoded / decode_s}  # fmt: skip


def prefix_cache(state: EngineState, tokens: int) -> dict:
    """Prompt timings of one slot: a new system prompt (cold) vs the same one again with a new question (warm)."""
    other = SYSTEM.replace("math agent", "maths helper").replace("Python", "python3")
    cold = ask(state, other + " (cold)", QUESTIONS[0], tokens)["timings"]
    warm = ask(state, other + " (cold)", QUESTIONS[1], tokens)["timings"]
    return {
        "cold_prompt_tokens_evaluated": cold["prompt_n"],
        "cold_prompt_ms": round(cold["prompt_ms"], 1),
        "warm_prompt_tokens_evaluated": warm["prompt_n"],
        "warm_prompt_ms": round(warm["prompt_ms"], 1),
        "speedup": round(cold["prompt_ms"] / max(warm["prompt_ms"], 1e-6), 2),
    }


def bench_model(name: str, args: argparse.Namespace, levels: list[int]) -> dict:
    found = gguf_for_spec(f"gguf:{name}")
    assert found is not None
    path, label = found
    config = EngineConfig(model_path=path, name=label, parallel=max(levels), threads=args.threads)
    runs: dict[int, list[dict]] = {n: [] for n in levels}
    with running_engine(config, home=home_dir()) as engine:
        level(engine.state, 1, 8)  # warm-up
        for rep in range(args.repeats):
            for n in levels if rep % 2 == 0 else list(reversed(levels)):
                result = level(engine.state, n, args.tokens)
                runs[n].append(result)
                if not args.json:
                    rates = f"{result['agg_tok_s']:.2f} e2e, {result['agg_decode_tok_s']:.2f} decode tok/s"
                    print(f"{name} rep {rep} streams {n}: {rates}", file=sys.stderr)
        cache = prefix_cache(engine.state, 4)
    rows = []
    for n in levels:
        row: dict = {"streams": n}
        for key in ("agg_tok_s", "agg_decode_tok_s"):
            row[key] = round(statistics.median(r[key] for r in runs[n]), 2)
            row[f"{key}_vs_one"] = round(row[key] / statistics.median(r[key] for r in runs[1]), 2)
        rows.append(row)
    return {"model": name, "gguf": str(path), "levels": rows, "prefix_cache": cache}


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    levels = sorted({int(x) for x in args.streams.split(",") if x})
    load_before = os.getloadavg()[0]
    results = [bench_model(name, args, levels) for name in args.models.split(",") if name]
    summary = {"machine": machine_summary(), "threads": args.threads, "tokens": args.tokens,
               "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "models": results}  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        print(summary["machine"])
        for model in results:
            print(model["model"])
            for r in model["levels"]:
                print(f"  {r['streams']} streams: end to end {r['agg_tok_s']} tok/s ({r['agg_tok_s_vs_one']}x),"
                      f" decode {r['agg_decode_tok_s']} tok/s ({r['agg_decode_tok_s_vs_one']}x)")  # fmt: skip
            print(f"  prefix cache: {model['prefix_cache']}")
    return summary


if __name__ == "__main__":
    main()
