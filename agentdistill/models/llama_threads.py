"""How llama.cpp's CPU threads wait between operations, and how many of them decode while other work runs.

llama.cpp's CPU build runs every operation of a token in an OpenMP parallel region, and its threads meet at
a barrier after each one. libgomp (the OpenMP runtime) lets a waiting thread spin before it sleeps; it reads
how long (OMP_WAIT_POLICY, GOMP_SPINCOUNT) once, when the library loads. Measured on a 2-core Xeon
(benchmarks/RESULTS.md, "Decode speed and OpenMP waiting"), 2 threads, greedy decode, tok/s:

| condition | libgomp default (spin ~300k) | GOMP_SPINCOUNT=1000 | OMP_WAIT_POLICY=PASSIVE | 1 thread |
|---|---|---|---|---|
| quiet, SmolLM2-135M | 186-213 | 190-208 | 124-134 | 113-131 |
| 2 busy processes, SmolLM2-135M | 1-94 (erratic) | 47-82 | 102-112 | 70-96 |

Quiet, a short spin is as fast as the default and passive waiting loses 38%; on a busy machine spinning
threads take the core from the thread they wait for, and passive waiting wins. So (policy "auto"):
- at load time the policy follows the machine: passive when other processes keep at least half a core busy,
  otherwise a 1000-iteration spin; the variables are set only while llama_cpp loads and then removed, so
  neither the user's environment nor child processes inherit them;
- while decoding with a spin policy, each call measures how busy the other processes were while it
  decoded, and the next call decodes with 1 thread while they hold half a core: a lone thread never waits
  at a barrier. Threads the user chose (`threads=`) are kept as they are.
AGENTDISTILL_LLAMA_WAIT=spin|passive fixes the policy; an OMP_WAIT_POLICY or GOMP_SPINCOUNT the user set
is left alone. When another library loaded libgomp first (torch ships a libgomp.so.1 that the loader reuses
for llama.cpp), its settings stand: the policy reads "inherited" and the thread check stays on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from agentdistill.errors import ConfigError

WAIT_ENV = "AGENTDISTILL_LLAMA_WAIT"
MODES = ("auto", "spin", "passive")
SPIN_COUNT = "1000"  # ~tens of microseconds: covers a barrier on a quiet machine, gives the core up soon when not
BUSY_CORES = 0.5  # other processes using at least this many cores make the machine "loaded"

Policy = Literal["spin", "passive", "user", "inherited"]


@dataclass(frozen=True)
class WaitPolicy:
    """What libgomp was told when llama.cpp loaded, and whether decode threads follow the machine's load."""

    policy: Policy
    why: str

    @property
    def adapts_threads(self) -> bool:
        """Spinning threads must step down to one when other processes want the cores; passive ones need not."""
        return self.policy in ("spin", "inherited")


@dataclass(frozen=True)
class CpuSample:
    """CPU clock ticks at one moment: busy on the cores we may run on, their total, and this process's own."""

    busy: int
    total: int
    own: int
    cores: int


def sample_cpu(proc: Path = Path("/proc")) -> CpuSample | None:
    """Ticks from /proc/stat (the cores in this process's affinity) and /proc/self/stat; None off Linux."""
    try:
        allowed = {f"cpu{n}" for n in os.sched_getaffinity(0)}
        busy = total = 0
        for line in (proc / "stat").read_text().splitlines():
            name, *fields = line.split()
            if name not in allowed:
                continue
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
        own_fields = (proc / "self" / "stat").read_text().rpartition(")")[2].split()
        own = int(own_fields[11]) + int(own_fields[12])  # utime + stime of every thread of this process
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return CpuSample(busy=busy, total=total, own=own, cores=len(allowed)) if total else None


def others_busy_cores(before: CpuSample, after: CpuSample) -> float:
    """Cores kept busy by other processes between two samples (0.0 when no time passed)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, others) / elapsed * after.cores


def measure_others(seconds: float = 0.25, sampler: Callable[[], CpuSample | None] = sample_cpu) -> float | None:
    """Cores other processes keep busy over `seconds` from now; None where /proc cannot tell."""
    before = sampler()
    time.sleep(seconds)
    after = sampler()
    return None if before is None or after is None else others_busy_cores(before, after)


def _libgomp_loaded(maps: Path = Path("/proc/self/maps")) -> bool:
    """True when a libgomp.so.1 is mapped already: the loader will hand it to llama.cpp, settings and all."""
    try:
        return any(line.rstrip().endswith("/libgomp.so.1") for line in maps.read_text().splitlines())
    except OSError:
        return False


def choose_policy(
    environ: Mapping[str, str],
    *,
    others: Callable[[], float | None] = measure_others,
    libgomp_loaded: Callable[[], bool] = _libgomp_loaded,
) -> tuple[WaitPolicy, dict[str, str]]:
    """(the policy, variables to set while llama_cpp loads). ConfigError for a bad AGENTDISTILL_LLAMA_WAIT."""
    mode = environ.get(WAIT_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(WAIT_ENV, mode, "auto (default), spin or passive")
    user = [name for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if name in environ]
    if user:
        passive = environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
        return WaitPolicy("user" if passive else "inherited", f"{', '.join(user)} set by the user"), {}
    if libgomp_loaded():
        return WaitPolicy("inherited", "libgomp was loaded before llama.cpp (by torch?): its defaults stand"), {}
    if mode == "auto":
        busy = others()
        mode = "passive" if busy is not None and busy >= BUSY_CORES else "spin"
        why = "other processes idle" if mode == "spin" else f"other processes busy ({busy:.1f} cores)"
    else:
        why = f"{WAIT_ENV}={mode}"
    if mode == "passive":
        return WaitPolicy("passive", why), {"OMP_WAIT_POLICY": "PASSIVE"}
    return WaitPolicy("spin", why), {"GOMP_SPINCOUNT": SPIN_COUNT}


@contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Set `extra` in os.environ for the block only; what was there before is restored."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_with_policy(load: Callable[[], ModuleType]) -> tuple[ModuleType, WaitPolicy]:
    """Run `load` (which imports llama_cpp) under the chosen policy's variables; libgomp reads them then."""
    policy, variables = choose_policy(os.environ)
    with environment(variables):
        module = load()
    return module, policy


class ThreadGovernor:
    """Per-call thread count: `threads`, or 1 while other processes held a core during the previous decode.

    Only the time spent decoding is measured, so work between calls (a sandboxed cell, a tool) does not
    count as competition. Not thread-safe: the model's lock serialises its calls.
    """

    MIN_TICKS = 20  # clock ticks over all cores (0.1 s on 2 cores at 100 Hz): shorter calls say too little

    def __init__(self, threads: int, *, adapt: bool, sampler: Callable[[], CpuSample | None] = sample_cpu) -> None:
        self.threads = threads
        self.adapt = adapt and threads > 1
        self.current = threads
        self._sampler = sampler

    @contextmanager
    def decoding(self) -> Iterator[int]:
        """The thread count for this call; what others did meanwhile decides the next call's."""
        if not self.adapt:
            yield self.threads
            return
        before = self._sampler()
        yield self.current
        after = self._sampler()
        if before is None or after is None:
            self.adapt = False  # /proc is not readable here: keep the configured threads
            self.current = self.threads
        elif after.total - before.total >= self.MIN_TICKS:
            self.current = 1 if others_busy_cores(before, after) >= BUSY_CORES else self.threads
