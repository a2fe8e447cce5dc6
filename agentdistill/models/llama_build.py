"""Which CPU this is, and the llama.cpp build flags that run on it.

llama.cpp's default build (`GGML_NATIVE=ON`, i.e. `-march=native`) turns on every instruction set the
compiler sees, AMX included. On the Sapphire Rapids class Xeon VMs we run on, the AMX kernels fault
(SIGILL at `tilezero`, or SIGSEGV at `ldtilecfg`) although the kernel grants the tile permission, so the
native build crashes on its first decode. `cmake_args` asks for exactly the SIMD levels the CPU reports,
AVX-512 and VNNI included, with AMX always off: the same speed on the decode path, no AMX kernels.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# ggml option -> every /proc/cpuinfo flag it needs (ggml's GGML_AVX512 compiles with -mavx512{f,cd,vl,dq,bw}).
_X86_OPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GGML_SSE42", ("sse4_2",)),
    ("GGML_AVX", ("avx",)),
    ("GGML_F16C", ("f16c",)),
    ("GGML_FMA", ("fma",)),
    ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX2", ("avx2",)),
    ("GGML_AVX_VNNI", ("avx_vnni",)),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")),
    ("GGML_AVX512_VBMI", ("avx512f", "avx512vbmi")),
    ("GGML_AVX512_VNNI", ("avx512f", "avx512_vnni")),
    ("GGML_AVX512_BF16", ("avx512f", "avx512_bf16")),
)
# Always off: the AMX kernels crash where the CPU advertises AMX (see the module docstring).
_X86_NEVER = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


@dataclass(frozen=True)
class CpuInfo:
    """The machine as llama.cpp's build and runtime see it."""

    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    model: str  # "Intel(R) Xeon(R) Processor", or the machine name where /proc/cpuinfo is missing
    flags: frozenset[str]  # /proc/cpuinfo "flags" (x86) or "Features" (arm)

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64", "i686", "i386")

    @property
    def has_amx(self) -> bool:
        return "amx_tile" in self.flags

    def fingerprint(self) -> str:
        """Changes when the CPU model or any of its flags change (a different machine, a new VM type)."""
        text = "\n".join([self.machine, self.model, *sorted(self.flags)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def summary(self) -> str:
        """One line for messages: model, and the SIMD flags that matter to llama.cpp."""
        simd = [
            f
            for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimddp", "sve")
            if f in self.flags
        ]
        return f"{self.model} ({self.machine}{'; ' + ' '.join(simd) if simd else ''})"


def read_cpu(cpuinfo: Path = CPUINFO) -> CpuInfo:
    """This machine's CPU from /proc/cpuinfo; elsewhere (macOS) only platform's names and no flags."""
    machine = platform.machine() or "unknown"
    model, flags = platform.processor() or machine, frozenset[str]()
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(machine, model, flags)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and model in (machine, platform.processor()):
            model = value.strip() or model
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(machine, model, flags)


def cmake_args(cpu: CpuInfo) -> list[str]:
    """CMAKE_ARGS for building llama.cpp (llama-cpp-python, llama-server) that runs on `cpu`.

    x86-64: native off, each SIMD level on exactly when the CPU has it, AMX off. Other architectures
    (arm64, ...) have no AMX and keep llama.cpp's native default.
    """
    # LLAVA_BUILD (llama-cpp-python's multimodal library) is never used here and is a third of the build time.
    if not cpu.is_x86:
        return ["-DGGML_NATIVE=ON", "-DLLAVA_BUILD=OFF"]
    args = ["-DGGML_NATIVE=OFF", "-DLLAVA_BUILD=OFF"]
    for option, needs in _X86_OPTIONS:
        args.append(f"-D{option}={'ON' if all(f in cpu.flags for f in needs) else 'OFF'}")
    args += [f"-D{option}=OFF" for option in _X86_NEVER]
    return args


def explain(cpu: CpuInfo) -> list[tuple[str, str]]:
    """(flag, why) for each of `cmake_args(cpu)`: what `agentdistill models build-flags --explain` prints."""
    why: dict[str, str] = {}
    for option, needs in _X86_OPTIONS:
        missing = [f for f in needs if f not in cpu.flags]
        why[option] = f"CPU lacks {', '.join(missing)}" if missing else f"CPU has {', '.join(needs)}"
    for option in _X86_NEVER:
        why[option] = "AMX kernels crash on the Xeon VMs we run on (SIGILL/SIGSEGV on the first decode)"
    rows = []
    for arg in cmake_args(cpu):
        name = arg[2:].partition("=")[0]
        if name == "LLAVA_BUILD":
            reason = "llama-cpp-python's multimodal library: unused, a third of the build time"
        elif name == "GGML_NATIVE":
            reason = (
                "-march=native would also turn on AMX" if cpu.is_x86 else "no AMX on this architecture: native is safe"
            )
        else:
            reason = why.get(name, "")
        rows.append((arg, reason))
    return rows


def shell_line(args: Iterable[str]) -> str:
    """The flags as one CMAKE_ARGS value."""
    return " ".join(args)
