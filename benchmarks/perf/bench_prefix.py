"""Prefix KV-cache reuse over a growing ReAct conversation: time per step with and without reuse.

    python benchmarks/perf/bench_prefix.py --model transformers:smollm2-135m --steps 4 --repeats 3
    python benchmarks/perf/bench_prefix.py --model transformers:qwen2.5-coder-0.5b --json

Each run is one agent run: step k sends the system prompt, the question, and every earlier
(model answer, observation) pair, greedily generates up to --tokens, and appends its own answer and
a fixed observation of about 100 tokens. Three settings run the same conversation on the same weights:
* off: no reuse, every step runs its whole prompt;
* prompt: reuse the previous prompt's keys/values only;
* keep: also keep the completion's keys/values (the default), since the next prompt repeats it.
Greedy output must be the same text in all three. Reported per step: median wall time, prompt
tokens, tokens actually fed to the model, and the time to render + tokenise the prompt (which decides
whether caching the tokenisation is worth it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from common import machine_summary

from agentdistill.models import Message, ModelOptions, assistant, make_chat_model, system, user

STOP = ["\nObservation:", "Observation:"]
SYSTEM = (
    "You are a research agent. Answer the question by reasoning step by step, using these tools:\n"
    "- search(query): search the knowledge base and return the top passages with their titles.\n"
    "- calculator(expression): evaluate an arithmetic expression and return the number.\n"
    "Use this format:\n"
    "Thought: what you need to find out next\n"
    "Action: one of [search, calculator]\n"
    "Action Input: the input for the action\n"
    "Then stop and wait for the Observation. When you know the answer, write: Final Answer: <answer>"
)
QUESTION = "Question: What is the population of the capital city of Australia, and how does it compare to Sydney?"
OBSERVATIONS = [  # ~100 tokens each, like a search tool's top passages
    "[1] Canberra: Canberra is the capital city of Australia. Founded following the federation of the colonies of"
    " Australia as the seat of government for the new nation, it is Australia's largest inland city. [2] Australian"
    " Capital Territory: The territory had an estimated population of 456,692 in June 2021, almost all of it in"
    " Canberra. [3] Parliament House: The building in Canberra has been the meeting place of Parliament since 1988.",
    "[1] Sydney: Sydney is the capital city of the state of New South Wales and the most populous city in Australia."
    " Its metropolitan area had an estimated population of 5,450,496 in June 2022. [2] Greater Sydney: The region"
    " covers 12,368 square kilometres and includes the Blue Mountains and the Central Coast. [3] Sydney Harbour:"
    " One of the world's largest natural harbours, home to the Opera House and the Harbour Bridge.",
    "12.0 (the result of 5450496 / 456692, rounded to one decimal place)",
    "[1] Demographics of Australia: Most Australians live in the five mainland state capitals; Canberra is the"
    " eighth-largest city in the country. [2] Urban growth: Canberra grew by 1.8% a year over the last decade,"
    " faster than Sydney's 1.3%. [3] Census 2021: Canberra's median age was 35, lower than the national median.",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_prefix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="transformers:smollm2-135m", help="a transformers: or hf: model spec")
    parser.add_argument("--steps", type=int, default=4, help=f"model calls per run (at most {len(OBSERVATIONS)})")
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per step")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per setting, after a warm-up call")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads (on a busy machine 1 beats 2 by far)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= len(OBSERVATIONS) or args.tokens < 1 or args.repeats < 1:
        parser.error(f"--steps must be 1..{len(OBSERVATIONS)}, --tokens and --repeats >= 1")
    return args


def one_run(model: Any, steps: int, tokens: int) -> list[dict[str, Any]]:
    """One agent run on a model with an empty prefix cache: per step its time, prompt, fed tokens and answer."""
    messages: list[Message] = [system(SYSTEM), user(QUESTION)]
    out = []
    for step in range(steps):
        stats = model.prefix_stats
        reused_before = stats.reused_tokens if stats else 0
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        [reply] = model.generate(messages, stop=STOP, max_tokens=tokens)
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        reused = (stats.reused_tokens if stats else 0) - reused_before
        prompt = reply.usage.prompt_tokens
        out.append({"s": seconds, "prompt": prompt, "fed": prompt - reused, "text": reply.text})
        messages += [assistant(reply.text), user(f"Observation: {OBSERVATIONS[step]}")]
    return out


def encode_ms(model: Any, steps: int, texts: list[str]) -> list[float]:
    """Median ms to render and tokenise each step's prompt (the prompts the runs actually sent)."""
    messages: list[Message] = [system(SYSTEM), user(QUESTION)]
    result = []
    for step in range(steps):
        times = []
        for _ in range(7):
            started = time.perf_counter()
            model.encode(messages)
            times.append(time.perf_counter() - started)
        result.append(round(statistics.median(times) * 1e3, 2))
        messages += [assistant(texts[step]), user(f"Observation: {OBSERVATIONS[step]}")]
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    log = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr))
    base = make_chat_model(args.model, ModelOptions(device=args.device, threads=args.torch_threads))
    if not hasattr(base, "variant"):
        raise SystemExit(f"{args.model}: only transformers:/hf: models have a prefix cache")
    base.generate([user("Hello")], max_tokens=4)  # warm-up: first calls allocate and pick kernels
    settings = ("off", "prompt", "keep")
    runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in settings}
    for rep in range(args.repeats):
        for name in settings if rep % 2 == 0 else tuple(reversed(settings)):
            model = base.variant(reuse_prefix=name != "off", batch_requests=False)  # a fresh, empty cache
            if model.prefix_cache is not None:
                model.prefix_cache.keep_completion = name == "keep"
            run = one_run(model, args.steps, args.tokens)
            runs[name].append(run)
            log(f"rep {rep} {name}: " + " | ".join(f"{s['s']:.2f} s fed {s['fed']}/{s['prompt']}" for s in run))
    texts = [s["text"] for s in runs["off"][0]]
    same = all(s["text"] == texts[i] for name in settings for run in runs[name] for i, s in enumerate(run))
    per_step = {
        name: [
            {
                "median_s": round(statistics.median(run[i]["s"] for run in runs[name]), 3),
                "prompt_tokens": runs[name][0][i]["prompt"],
                "fed_tokens": runs[name][0][i]["fed"],
            }
            for i in range(args.steps)
        ]
        for name in settings
    }
    totals = {name: round(sum(s["median_s"] for s in steps), 3) for name, steps in per_step.items()}
    result = {
        "model": args.model,
        "machine": machine_summary(),
        "device": f"{base.device} {base.dtype}, {torch.get_num_threads()} torch threads",
        "steps": args.steps,
        "max_tokens": args.tokens,
        "repeats": args.repeats,
        "per_step": per_step,
        "total_s": totals,
        "speedup_keep_vs_off": round(totals["off"] / totals["keep"], 3),
        "same_text": same,
        "encode_ms": encode_ms(base, args.steps, texts),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(result["machine"], "|", result["device"])
        for name in settings:
            steps = " | ".join(
                f"{s['median_s']:.2f} s ({s['fed_tokens']}/{s['prompt_tokens']} fed)" for s in per_step[name]
            )
            print(f"{name:>6}: total {totals[name]:.2f} s | {steps}")
        print(
            f"keep vs off: {result['speedup_keep_vs_off']}x | same text: {same} | render+tokenise ms per step:"
            f" {result['encode_ms']}"
        )
    return result


if __name__ == "__main__":
    main()
