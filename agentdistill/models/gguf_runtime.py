"""llama_cpp in this process: imported only after its probe passed, under the OpenMP wait policy.

llama-cpp-python compiles from source on install, so it may be missing, or built for instructions this CPU
lacks: nothing here imports it at module level, and no GGUF is loaded in this process before `llama_probe`
has decoded it in a child process (a crash there becomes LlamaCppUnusable here).
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from types import ModuleType

import agentdistill.models.llama_probe as llama_probe
from agentdistill.errors import AgentDistillError, ModelUnavailable
from agentdistill.models.llama_threads import WaitPolicy, import_with_policy


class GGUFLoadError(AgentDistillError):
    """llama.cpp refused a GGUF file: truncated, corrupt, or an architecture this build does not know."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"llama.cpp could not load {path}: {problem}. The file is truncated, corrupt or not a model this"
            " llama.cpp build supports: get a complete copy (compare its size and sha256 with the source; for a"
            " packaged model reinstall its package), or upgrade llama-cpp-python for a newer architecture."
        )
        self.path = path


@functools.cache
def _llama_cpp_and_policy() -> tuple[ModuleType, WaitPolicy]:
    if "llama_cpp" in sys.modules:  # someone imported it first: libgomp read the environment of that moment
        return sys.modules["llama_cpp"], WaitPolicy("inherited", "llama_cpp was imported before the gguf backend")
    return import_with_policy(lambda: importlib.import_module("llama_cpp"))


def import_llama_cpp() -> ModuleType:
    """Import llama_cpp under the OpenMP wait policy of `llama_threads`. Raises ImportError or OSError."""
    return _llama_cpp_and_policy()[0]


def wait_policy() -> WaitPolicy:
    """How llama.cpp's OpenMP threads wait in this process (imports llama_cpp on first use)."""
    return _llama_cpp_and_policy()[1]


def probed_llama_cpp(path: Path | None = None) -> ModuleType:
    """llama_cpp, imported only after the probe passed for `path` (default: the smallest packaged GGUF)."""
    if llama_probe.find_install() is None:
        raise ModelUnavailable(
            f"the gguf backend needs llama-cpp-python, which is not installed: install it with"
            f" `{llama_probe.REBUILD}` (it compiles for a few minutes); meanwhile `transformers:NAME` runs packaged"
            " models."
        )
    verdict = llama_probe.check(llama_probe.target_for(path) if path is not None else None)
    if not verdict.usable and verdict.kind == "load" and path is not None:
        raise GGUFLoadError(path, verdict.reason.rpartition(": ")[2] if verdict.reason else "load failed")
    if not verdict.usable:
        raise llama_probe.LlamaCppUnusable(verdict)
    try:
        return import_llama_cpp()
    except (ImportError, OSError) as exc:  # the probe child imported it; this process should too
        raise ModelUnavailable(
            f"llama-cpp-python does not import ({type(exc).__name__}: {exc}): reinstall it with"
            f" `{llama_probe.REBUILD}`; meanwhile `transformers:NAME` runs packaged models."
        ) from exc
