"""LoRA training speed and peak memory of our `train()` against a bare transformers+peft loop, same batches.

    python benchmarks/perf/bench_train.py --model local:smollm2-135m --steps 4 --repeats 2

Both sides fine-tune the packaged student's real weights with the same adapter (r=64, alpha=128, all-linear),
AdamW, cosine schedule, gradient clipping and precision (fp32 on CPU, bf16 autocast on CUDA), on the very
same batches in the same order: ours records the example ids each step saw, and the bare loop replays them.
Each side loads a fresh model per rep; the first --warmup steps of a run are not timed. Reps alternate
sides, and the medians of the per-step rates are compared (robust to a busy machine's spikes). The goal
is a ratio (ours / bare tokens per second) of at least 0.95.
Memory: peak RSS sampled during each side on CPU (in one process, so later sides may reuse freed pages),
torch.cuda.max_memory_allocated on GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from common import machine_summary

from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import encode_examples
from agentdistill.distill.encoding import EncodedExample, collate
from agentdistill.distill.sft import sft_loss
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.trainer import train

GOAL = 0.95  # ours must keep at least this share of the bare loop's tokens per second


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:smollm2-135m", help="local:NAME, hf:DIR or a model dir")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, interleaved")
    parser.add_argument("--batch-size", type=int, default=2, help="examples per step")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per example (all equal: no padding)")
    parser.add_argument("--lora-r", type=int, default=64, help="adapter rank (alpha = 2r)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if min(args.steps, args.repeats, args.batch_size, args.seq_len) < 1 or args.warmup < 0:
        parser.error("--steps, --repeats, --batch-size, --seq-len must be >= 1 and --warmup >= 0")
    return args


def base_dir_of(spec: str) -> Path:
    from agentdistill.models.weights import local_weights
    from agentdistill.paths import cache_dir

    base, _ = local_weights(spec, cache_dir())
    return base


def make_examples(tokenizer: Any, count: int, seq_len: int) -> list[EncodedExample]:
    """ReAct-shaped conversations rendered with the student's template, cut to exactly seq_len tokens."""
    out = []
    for i in range(count):
        messages = [{"role": "system", "content": "Answer with Thought, Action and Action Input lines."}]
        messages.append({"role": "user", "content": f"Question: what is {i * 37} plus {i * 91}, then doubled?"})
        turns, k = [], 0
        while True:
            thought = f"Thought: step {k} of the sum {i} needs the calculator."
            action = f"Action: calculator\nAction Input: {i * 37 + k} + {i * 91 - k}"
            messages.append({"role": "assistant", "content": f"{thought}\n{action}"})
            turns.append(len(messages) - 1)
            messages.append({"role": "user", "content": f"Observation: {i * 128 + k * 3} (checked twice)"})
            example = ChatExample(id=f"b{i}", run_id=f"r{i}", question=f"q{i}", messages=list(messages),
                                  train_turns=tuple(turns))  # fmt: skip
            [encoded], _ = encode_examples(tokenizer, [example], max_len=1 << 20)
            if len(encoded.input_ids) >= seq_len:
                out.append(EncodedExample(f"b{i}", encoded.input_ids[:seq_len], encoded.labels[:seq_len]))
                break
            k += 1
    return out


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak on GPU, else RSS sampled every 10 ms."""

    def __init__(self, device: str) -> None:
        self.device, self.peak_mb, self._stop = device, 0.0, threading.Event()

    @staticmethod
    def rss_mb() -> float:
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except ImportError:
            with open("/proc/self/statm", encoding="ascii") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    @contextlib.contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        gc_and_trim()
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self.peak_mb = torch.cuda.memory_allocated() / 2**20
            yield self
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            return

        def sample() -> None:
            while not self._stop.wait(0.01):
                self.peak_mb = max(self.peak_mb, self.rss_mb())

        self._stop.clear()
        self.peak_mb = self.rss_mb()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield self
        finally:
            self._stop.set()
            sampler.join()


def gc_and_trim() -> None:
    """Hand freed memory back to the OS so the next side's RSS peak starts near its own baseline."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_ours(base: Path, data: list[EncodedExample], args: argparse.Namespace, order: list[list[str]]) -> list[float]:
    """Tokens/s of each timed step of train(), from its own metrics; fills `order` with each step's ids."""
    order.clear()

    def recording(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        order.append(list(batch["example_ids"]))
        return sft_loss(model, batch)

    config = TrainConfig(lora_r=args.lora_r, lora_alpha=2 * args.lora_r, batch_size=args.batch_size,
                         max_steps=args.warmup + args.steps, save_every=0, eval_every=10**6, device=args.device,
                         max_len=args.seq_len)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        result = train(base, data, [], config, Path(out), loss_fn=recording, progress=False)
        rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    # elapsed_s is stamped after each step's logging, so a difference covers everything the loop does per step.
    stamps = [0.0] + [row["elapsed_s"] for row in rows]
    return [row["tokens"] / (stamps[i + 1] - stamps[i]) for i, row in enumerate(rows)][args.warmup :]


def run_bare(base: Path, by_id: dict[str, EncodedExample], args: argparse.Namespace, order: list[list[str]],
             pad_id: int, device: str) -> list[float]:  # fmt: skip
    """The loop everyone writes first: HF model, peft adapter, AdamW, cosine schedule, labels= loss."""
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, get_scheduler

    set_seed(0)
    cuda = device.startswith("cuda")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if cuda else torch.float32)
    model.config.use_cache = False
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, lora).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    total = args.warmup + args.steps
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=1, num_training_steps=total)
    rates = []
    for step, ids in enumerate(order):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        batch = collate([by_id[i] for i in ids], pad_id)
        batch = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the loss reaches the host every step, as any loop that logs it does
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            rates.append(int(batch["attention_mask"].sum()) / (time.perf_counter() - started))
    return rates


def main(argv: Sequence[str] | None = None) -> dict:
    from transformers import AutoTokenizer

    from agentdistill.models.transformers_backend import resolve_device

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    base = base_dir_of(args.model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = make_examples(tokenizer, args.batch_size * (args.warmup + args.steps), args.seq_len)
    by_id = {e.example_id: e for e in data}
    order: list[list[str]] = []
    rates: dict[str, list[float]] = {"ours": [], "bare": []}  # one entry per timed step, all reps pooled
    peaks: dict[str, list[float]] = {"ours": [], "bare": []}
    before: dict[str, list[float]] = {"ours": [], "bare": []}
    memory = PeakMemory(device)
    for rep in range(args.repeats):
        # Ours goes first in rep 0 (it records the batch order the bare loop replays), then sides alternate.
        for name in ("ours", "bare") if rep % 2 == 0 else ("bare", "ours"):
            with memory.measure():
                before[name].append(memory.peak_mb)
                if name == "ours":
                    steps = run_ours(base, data, args, order)
                else:
                    steps = run_bare(base, by_id, args, order, pad_id, device)
            rates[name] += steps
            peaks[name].append(memory.peak_mb)
            if not args.json:
                shown = ", ".join(f"{r:.1f}" for r in steps)
                print(f"rep {rep} {name}: steps {shown} tok/s, peak {memory.peak_mb:.0f} MiB", file=sys.stderr)
    ours, bare = statistics.median(rates["ours"]), statistics.median(rates["bare"])
    result = {
        "model": args.model, "machine": machine_summary(), "device": device, "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "seq_len": args.seq_len, "lora_r": args.lora_r, "steps": args.steps,
        "warmup": args.warmup, "repeats": args.repeats, "ours_tok_s": round(ours, 2), "bare_tok_s": round(bare, 2),
        "ratio": round(ours / bare, 4), "goal": GOAL,
        "memory": "cuda max_memory_allocated" if device.startswith("cuda") else "peak RSS",
        "ours_peak_mb": round(max(peaks["ours"])), "bare_peak_mb": round(max(peaks["bare"])),
        "rss_before_mb": {k: [round(v) for v in vs] for k, vs in before.items()},
        "ours_steps": [round(r, 2) for r in rates["ours"]], "bare_steps": [round(r, 2) for r in rates["bare"]],
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "ok" if result["ratio"] >= GOAL else f"BELOW GOAL {GOAL}"
        print(result["machine"])
        print(
            f"{args.model} LoRA r={args.lora_r} on {device}, batch {args.batch_size} x {args.seq_len} tokens, median"
            f" over {args.repeats} x {args.steps} steps | ours {ours:.1f} tok/s, peak {result['ours_peak_mb']} MiB |"
            f" bare {bare:.1f} tok/s, peak {result['bare_peak_mb']} MiB | ratio {result['ratio']:.3f} ({verdict})"
        )
    return result


if __name__ == "__main__":
    main()
