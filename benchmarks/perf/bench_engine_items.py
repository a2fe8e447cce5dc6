"""Items/s of `bench run` with N items in flight on a llama-server engine vs one item at a time in-process.

    python benchmarks/perf/bench_engine_items.py --data-dir ../shared/data \
        [--suite gsm8k --agent codeact --model local:qwen2.5-coder-1.5b --limit 20 --concurrency 4] [--json]

Runs the real CLI twice on the same items (`--engine inproc --concurrency 1`, then `--engine server
--concurrency N`), each into a fresh run dir, and compares wall time, items/s, accuracy and how many
answers agree. Wall time includes model loading and the engine's start, as a user would see it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import machine_summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_engine_items", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="gsm8k")
    parser.add_argument("--agent", default="codeact")
    parser.add_argument("--model", default="local:qwen2.5-coder-1.5b")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="keep the two run dirs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, out: Path, *, engine: str, concurrency: int) -> dict:
    run_dir = out / f"{engine}-c{concurrency}"
    command = [sys.executable, "-m", "agentdistill.cli", "bench", "run", "--suite", args.suite, "--agent", args.agent,
               "--model", args.model, "--limit", str(args.limit), "--max-steps", str(args.max_steps),
               "--concurrency", str(concurrency), "--engine", engine, "--data-dir", str(args.data_dir),
               "--run-dir", str(run_dir), "--json"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench run failed ({engine}, c{concurrency}): {done.stderr.strip()[-600:]}")
    results = {}
    for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        results.setdefault(row["item_id"], row)
    correct = sum(1 for r in results.values() if r["correct"])
    return {"engine": engine, "concurrency": concurrency, "wall_s": round(wall, 1), "items": len(results),
            "items_per_s": round(len(results) / wall, 4), "correct": correct,
            "latency_p50_s": sorted(r["latency_s"] for r in results.values())[len(results) // 2],
            "answers": {k: r["answer"] for k, r in results.items()}, "run_dir": str(run_dir)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-engine-items-"))
    load_before = os.getloadavg()[0]
    one = run(args, out, engine="inproc", concurrency=1)
    many = run(args, out, engine="server", concurrency=args.concurrency)
    same = sum(1 for k, v in one["answers"].items() if many["answers"].get(k) == v)
    summary = {
        "machine": machine_summary(),
        "command": {k: str(v) for k, v in vars(args).items()},
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "inproc_c1": {k: v for k, v in one.items() if k != "answers"},
        f"server_c{args.concurrency}": {k: v for k, v in many.items() if k != "answers"},
        "speedup_items_per_s": round(many["items_per_s"] / one["items_per_s"], 2),
        "same_answers": f"{same}/{len(one['answers'])}",
    }
    print(json.dumps(summary, indent=None if args.json else 1))
    return summary


if __name__ == "__main__":
    main()
