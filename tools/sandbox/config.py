"""The sandbox's plain data: its limits, what one cell did, and the error for when it cannot run at all.

Kept apart from `executor` so the host-side worker handle can build results without a circular import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentdistill.errors import AgentDistillError, ConfigError

ISOLATIONS = ("auto", "bwrap", "namespaces")


class SandboxError(AgentDistillError):
    """The sandbox cannot run code at all: the worker did not start or the session is closed."""


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """Limits of one sandbox; every session it opens uses them."""

    timeout_s: float = 10.0  # wall clock per cell (host tool calls included); then the process group is killed
    start_timeout_s: float = 60.0  # worker start including the preamble (`from sympy import *` takes ~1 s)
    memory_mb: int | None = 1024  # RLIMIT_AS: a bigger allocation raises MemoryError inside the sandbox
    cpu_s: int | None = 600  # RLIMIT_CPU over the worker's whole life: a backstop behind timeout_s
    max_file_mb: int | None = 64  # RLIMIT_FSIZE: writing a bigger file fails with "File too large"
    max_procs: int = 64  # RLIMIT_NPROC headroom (processes + threads); root ignores it, hence `user`
    max_output_chars: int = 10_000  # stdout+stderr kept per cell; the rest is dropped with a notice
    network: bool = False  # False = own network namespace with no interface up (when unshare works here)
    user: str | None = "nobody"  # when root, run code as this user; None keeps root (no NPROC, host writable)
    python: str | None = None  # worker interpreter, which must have agentdistill installed; None = this one
    tmp_root: str | None = None  # parent of the per-session working dirs; None = the system temp dir
    # auto = bubblewrap when it works here (private filesystem view), else `unshare` namespaces with a warning;
    # bwrap = bubblewrap or a SandboxError naming how to install it; namespaces = never bubblewrap
    isolation: str = "auto"

    def __post_init__(self) -> None:
        for name in ("timeout_s", "start_timeout_s", "max_procs", "max_output_chars"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "a positive number")
        if self.isolation not in ISOLATIONS:
            raise ConfigError("isolation", self.isolation, f"one of {', '.join(ISOLATIONS)}")
        for name in ("memory_mb", "cpu_s", "max_file_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "a positive number, or None for no limit")


@dataclass(frozen=True)
class CodeResult:
    """What one cell did. `error` is model-facing text; the host never raises for the code's faults."""

    stdout: str  # stdout and stderr interleaved, capped at max_output_chars
    error: str | None = None  # "ExcType: message (line N: source)", a timeout or a crash; None on success
    final_answer: Any = None  # the JSON round trip of what final_answer() got (repr as fallback)
    final_answer_called: bool = False  # final_answer(None) is still an answer
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False  # output went past max_output_chars

    @property
    def ok(self) -> bool:
        return self.error is None
