"""`gguf:NAME` and `gguf:PATH` models: quantized GGUF weights run in-process by llama.cpp (llama-cpp-python).

llama.cpp decodes the quantized weights directly, so on a CPU it runs 6-9x faster than transformers, which
dequantizes them to fp32 (see MODELS.md). This module resolves specs and options and loads each model once
per process (one cache); the model itself is `gguf_model.GGUFChatModel`, and `gguf_runtime` imports llama_cpp
only after its probe passed. `gguf_unavailable_reason()` says why llama.cpp cannot be used.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Callable
from pathlib import Path

import agentdistill.models.llama_probe as llama_probe
from agentdistill.errors import ConfigError, ModelNotFound, ModelUnavailable
from agentdistill.models.base import ModelCache, ModelOptions
from agentdistill.models.gguf_model import GGUFChatModel
from agentdistill.models.gguf_runtime import GGUFLoadError, import_llama_cpp, probed_llama_cpp, wait_policy
from agentdistill.models.packaged import PackagedModel, assembled_gguf, find_packaged, packaged_models, part_paths
from agentdistill.paths import cache_dir

DEFAULT_N_CTX = 4096  # tokens of context; a ReAct run grows its prompt with every step
INSTALL = "pip install llama-cpp-python==0.3.36"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

CacheKey = tuple[str, int, int, bool, str]  # (resolved GGUF path, n_ctx, threads, threads chosen by us, device)


def gguf_unavailable_reason() -> str | None:
    """None when llama.cpp runs here, else why not: not installed, or its probe child crashed, hung or erred.

    Never imports llama_cpp in this process: a build that crashes on this CPU takes only the probe child down.
    """
    verdict = llama_probe.check()
    return None if verdict.usable else verdict.reason


# Keyed by (path, n_ctx, threads, device): weights are mapped once and each model's KV cache keeps the
# last prompt, which the next step of a run reuses.
_CACHE: ModelCache[GGUFChatModel] = ModelCache()


def _close_all() -> None:
    """Free every llama.cpp model while the interpreter still works; its own __del__ fails at shutdown."""
    for model in _CACHE.drain():
        model.unwrap().close()


atexit.register(_close_all)


def clear_model_cache() -> None:
    """Forget every loaded GGUF model (tests, or a long process that switches models)."""
    _CACHE.drain()


def resolve_threads(threads: int | None) -> int:
    """None -> every core (llama.cpp's own default is half of them, which halves decode speed on small boxes)."""
    if threads is None:
        return os.cpu_count() or 1
    if threads < 1:
        raise ConfigError("threads", threads, "a positive integer, or unset for one per CPU core")
    return threads


def resolve_gpu_layers(device: str) -> int:
    """Layers to offload: all on a GPU build (auto or cuda), none on cpu; cuda on a CPU-only build is an error.

    Imports llama_cpp: call it only after the probe passed (`_load` does).
    """
    if not _DEVICE.match(device):
        raise ConfigError("device", device, "auto, cpu, cuda, cuda:N or mps")
    if device == "cpu":
        return 0
    supported = bool(import_llama_cpp().llama_supports_gpu_offload())
    if device != "auto" and not supported:
        raise ConfigError(
            "device",
            device,
            "auto or cpu: this llama-cpp-python build has no GPU support (rebuild it with"
            " CMAKE_ARGS=-DGGML_CUDA=on, or use transformers:NAME on the GPU)",
        )
    return -1 if supported else 0


def _check_options(options: ModelOptions) -> tuple[int, bool, str]:
    """(threads, whether we chose them, device), checked without loading llama.cpp; the GGUF decides the dtype."""
    if options.adapter:
        raise ConfigError(
            "adapter",
            options.adapter,
            "no adapter for a gguf: model: merge the adapter and export the student to GGUF, or run it with"
            " hf:DIR or transformers:NAME",
        )
    if not _DEVICE.match(options.device):
        raise ConfigError("device", options.device, "auto, cpu, cuda, cuda:N or mps")
    return resolve_threads(options.threads), options.threads is None, options.device


def _load(path: Path, *, spec: str, n_ctx: int, threads: int, ours: bool, device: str) -> GGUFChatModel:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":  # llama.cpp's own message would only say "failed to load"
        raise GGUFLoadError(path, f"it does not start with the GGUF magic bytes (found {magic!r})")
    llama_cpp = probed_llama_cpp(path)  # a child process decodes this file first: a crash there is a message here
    gpu_layers = resolve_gpu_layers(device)
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=gpu_layers,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise GGUFLoadError(path, str(exc)) from exc
    adapt = ours and gpu_layers == 0 and wait_policy().adapts_threads
    return GGUFChatModel(llama, spec=spec, path=path, n_ctx=n_ctx, threads=threads, adapt_threads=adapt)


def _cached_load(
    path: Path, resolve: Callable[[], Path], options: ModelOptions, *, spec: str, n_ctx: int
) -> GGUFChatModel:
    """Load once per (file, n_ctx, threads, GPU layers); `resolve` runs the expensive checks on a cache miss only."""
    if n_ctx < 16:
        raise ConfigError("n_ctx", n_ctx, "a context size of at least 16 tokens (4096 suits ReAct runs)")
    threads, ours, device = _check_options(options)
    if (
        llama_probe.find_install() is None
    ):  # a missing install says how to fix it before anything is hashed or assembled
        probed_llama_cpp()
    key: CacheKey = (str(path.resolve()), n_ctx, threads, ours, device)
    model = _CACHE.get_or_load(
        key, lambda: _load(resolve(), spec=spec, n_ctx=n_ctx, threads=threads, ours=ours, device=device)
    )
    return model if model.spec == spec else model.renamed(spec)


def packaged_gguf_path(pm: PackagedModel, cache: Path) -> Path:
    """Where `assembled_gguf` puts (or finds) the file, without hashing it: the cache key of a packaged model."""
    parts = part_paths(pm)
    if isinstance(parts, str):
        raise ModelUnavailable(f"packaged model {pm.name!r} is not installed: {parts}")
    return parts[0] if len(parts) == 1 else cache / "gguf" / pm.gguf_name


def load_packaged_gguf(
    name: str, options: ModelOptions, *, spec: str | None = None, n_ctx: int = DEFAULT_N_CTX
) -> GGUFChatModel:
    """A packaged model by name; its GGUF is assembled and sha256-checked once per process, on first load."""
    pm = find_packaged(name)
    cache = cache_dir()
    return _cached_load(
        packaged_gguf_path(pm, cache),
        lambda: assembled_gguf(pm, cache),
        options,
        spec=spec or f"gguf:{name}",
        n_ctx=n_ctx,
    )


def load_gguf_file(path: str, options: ModelOptions, *, n_ctx: int = DEFAULT_N_CTX) -> GGUFChatModel:
    """Any .gguf file on disk; a llama.cpp load failure becomes GGUFLoadError."""
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory, not a file" if file.is_dir() else "does not exist"
        raise ModelNotFound(
            f"GGUF file {str(file)!r} {what}: give the path of a .gguf file, or a packaged model name such as"
            " gguf:smollm2-135m (see `agentdistill models list`)."
        )
    return _cached_load(file, lambda: file, options, spec=f"gguf:{path}", n_ctx=n_ctx)


def load_gguf(rest: str, options: ModelOptions, *, n_ctx: int = DEFAULT_N_CTX) -> GGUFChatModel:
    """`gguf:NAME` for a packaged model, `gguf:PATH` for a file (anything with a `/`, a .gguf suffix, or on disk)."""
    if _is_file_spec(rest):
        return load_gguf_file(rest, options, n_ctx=n_ctx)
    return load_packaged_gguf(rest, options, n_ctx=n_ctx)


def load_gguf_target(rest: str) -> tuple[Path, str]:
    """(checked GGUF file, model name) that `gguf:REST` / `local:REST` runs, without loading it (for llama-server)."""
    if _is_file_spec(rest):
        file = Path(rest).expanduser()
        if not file.is_file():
            raise ModelNotFound(f"GGUF file {str(file)!r} does not exist: give the path of a .gguf file")
        return file, file.stem
    pm = find_packaged(rest)
    return assembled_gguf(pm, cache_dir()), pm.name


def _is_file_spec(rest: str) -> bool:
    """True for a file path; a name that is neither packaged nor a path raises, naming the closest name."""
    packaged = {pm.name for pm in packaged_models()}
    if rest not in packaged and ("/" in rest or rest.endswith(".gguf") or Path(rest).expanduser().exists()):
        return True
    if rest not in packaged:
        try:
            find_packaged(rest)  # raises, naming the closest packaged name
        except ModelNotFound as exc:
            raise ModelNotFound(f"{exc} For a file, give its path, e.g. gguf:./{rest}.gguf") from None
    return False
