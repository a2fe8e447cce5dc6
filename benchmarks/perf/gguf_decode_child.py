"""One decode measurement in a process of its own: `raw` llama-cpp-python or `ours` (the gguf backend).

    python benchmarks/perf/gguf_decode_child.py --side raw --model NAME [--threads N]

bench_gguf starts this once per (side, model, environment), so each side gets the environment it names and
nothing one side set can leak into the other (libgomp reads its wait policy once, when it loads). Prints
one JSON line: decode tok/s of each measured rep after one warm-up rep, TTFT and the generated text.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence

from bench_decode import MSGS  # the same ReAct-step prompt as bench_decode

from agentdistill.models import ModelOptions, make_chat_model


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gguf_decode_child", description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=("raw", "ours"), required=True)
    parser.add_argument("--model", required=True, help="packaged model name or .gguf path")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the side's own)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--load-after-warmup",
        type=int,
        default=0,
        metavar="N",
        help="start N CPU-burning processes after the warm-up rep",
    )
    return parser.parse_args(argv)


def _burn() -> None:
    while True:
        pass


def start_burners(n: int) -> list[multiprocessing.Process]:
    """`n` processes that each keep one core busy until terminated: the "loaded machine" of the benchmarks."""
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(n)]
    for burner in burners:
        burner.start()
    return burners


def stop_burners(burners: list[multiprocessing.Process]) -> None:
    for burner in burners:
        burner.terminate()
    for burner in burners:
        burner.join()


def _raw(
    args: argparse.Namespace, after_warmup: Callable[[], None], extra: dict
) -> tuple[list[tuple[int, float, float]], str]:
    """Plain `Llama.generate` the way a user runs llama-cpp-python: its own defaults unless --threads is given."""
    import llama_cpp

    from agentdistill.models.gguf_backend import load_gguf_target

    path, _ = load_gguf_target(args.model)
    kwargs = {"n_threads": args.threads, "n_threads_batch": args.threads} if args.threads else {}
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=2048, verbose=False, **kwargs)
    prompt = llama.tokenize(
        "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in MSGS).encode()
        + b"<|im_start|>assistant\n",
        special=True,
    )
    runs, text = [], ""
    for _ in range(args.repeats + 1):
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
        runs.append((len(tokens), time.perf_counter() - started, first))
        text = llama.detokenize(tokens).decode("utf-8", errors="replace")
        if len(runs) == 1:
            after_warmup()
    return runs[1:], text


def _ours(
    args: argparse.Namespace, after_warmup: Callable[[], None], extra: dict
) -> tuple[list[tuple[int, float, float]], str]:
    """`ChatModel.generate` of `gguf:MODEL` with the backend's own choices (threads, wait policy)."""
    model = make_chat_model(f"gguf:{args.model}", ModelOptions(threads=args.threads))
    runs, text = [], ""
    for _ in range(args.repeats + 1):
        model.unwrap().reset()  # cold KV cache, as on the raw side
        [done] = model.generate(MSGS, max_tokens=args.tokens, min_tokens=args.tokens)
        runs.append((done.usage.completion_tokens, done.latency_s, done.ttft_s or 0.0))
        text = done.text
        if len(runs) == 1:
            after_warmup()
    from agentdistill.models.gguf_runtime import wait_policy

    extra["openmp_wait"] = wait_policy().policy
    extra["threads_last_call"] = model.describe()["threads_now"]
    return runs[1:], text


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    burners: list[multiprocessing.Process] = []
    extra: dict = {}

    def after_warmup() -> None:
        burners.extend(start_burners(args.load_after_warmup))
        time.sleep(0.5 if burners else 0)

    try:
        runs, text = (_raw if args.side == "raw" else _ours)(args, after_warmup, extra)
    finally:
        stop_burners(burners)
    print(
        json.dumps(
            {
                "side": args.side,
                "model": args.model,
                "threads": args.threads,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
                "tokens": [t for t, _, _ in runs],
                "decode_tok_s": [round((t - 1) / (s - f), 2) for t, s, f in runs],
                "ttft_s": [round(f, 4) for _, _, f in runs],
                "text": text,
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
