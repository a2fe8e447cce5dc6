"""`local:NAME` and `hf:DIR` models: HF-format weights run in-process with transformers.

One loaded model serves many threads (a lock around generate); the process keeps each loaded model
in one cache, so graphs that ask for the same spec share weights instead of loading them again.
The model class itself, and what makes it fast, is in hf_chat.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentdistill.errors import ConfigError, ModelNotFound
from agentdistill.models.base import ModelCache, ModelOptions
from agentdistill.models.hf_chat import TransformersChatModel
from agentdistill.models.packaged import ensure_hf_dir, find_packaged
from agentdistill.paths import cache_dir

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_CANONICAL = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}

CacheKey = tuple[str, str | None, str, str]  # (resolved model dir, resolved adapter dir, device, dtype)


# Keyed by weights, adapter, device and dtype (CacheKey).
_CACHE: ModelCache[TransformersChatModel] = ModelCache()


def clear_model_cache() -> None:
    """Forget every loaded model (tests, or a long process that switches models); memory frees once unreferenced."""
    for model in _CACHE.drain():
        model.clear_prefix_cache()  # a caller still holding the model keeps its weights, not stale KV


def resolve_device(device: str) -> str:
    """`auto` -> cuda when present, else cpu. Raises ConfigError for a malformed or unavailable device."""
    if not _DEVICE.match(device):
        raise ConfigError("device", device, "auto, cpu, cuda, cuda:N or mps")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", device, "auto or cpu: CUDA is not available on this machine")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", device, "auto or cpu: MPS is not available on this machine")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` -> bfloat16 on cuda, float32 elsewhere (CPUs without bf16 matmuls are 20x slower in bf16)."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise ConfigError("dtype", dtype, "auto, float32 (fp32), bfloat16 (bf16) or float16 (fp16)")
    return _CANONICAL[_DTYPES[dtype]]


def resolve_model_dir(path: Path, adapter: str | None) -> tuple[Path, Path | None]:
    """(base model dir, adapter dir or None). An adapter-only dir names its base in adapter_config.json."""
    if not path.is_dir():
        raise ModelNotFound(
            f"model dir {str(path)!r} does not exist: give a dir with config.json (a saved HF model or a distilled"
            " student), or use `local:NAME` for a packaged model."
        )
    adapter_dir = Path(adapter).expanduser() if adapter else None
    if (path / "config.json").is_file():
        base = path
    elif (path / "adapter_config.json").is_file():
        if adapter_dir is not None and adapter_dir.resolve() != path.resolve():
            raise ConfigError("adapter", adapter, f"no adapter option: {path} is itself an adapter dir")
        adapter_dir, base = path, _adapter_base(path)
    else:
        raise ModelNotFound(
            f"{path} is not a model dir: it has neither config.json nor adapter_config.json. Point at the dir"
            " that save_pretrained wrote."
        )
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
        raise ModelNotFound(
            f"adapter dir {str(adapter_dir)!r} has no adapter_config.json: point at a peft adapter dir."
        )
    return base.resolve(), adapter_dir.resolve() if adapter_dir else None


def _adapter_base(adapter_dir: Path) -> Path:
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path") or ""
    candidate = Path(base).expanduser() if base else None
    if candidate is None or not (candidate / "config.json").is_file():
        raise ModelNotFound(
            f"adapter {adapter_dir} names base model {base!r}, which is not a local model dir: set"
            " base_model_name_or_path in its adapter_config.json to the base dir, or merge the adapter."
        )
    return candidate


def _load(base: Path, adapter: Path | None, *, spec: str, device: str, dtype: str) -> TransformersChatModel:
    tokenizer_dir = adapter if adapter and (adapter / "tokenizer_config.json").is_file() else base
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=_DTYPES[dtype])
    if adapter is not None:
        from peft import PeftModel

        # Merged weights decode as fast as the base; the adapter dir stays the artifact that is saved.
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model = model.to(device).eval()
    return TransformersChatModel(model, tokenizer, spec=spec, device=device, dtype=dtype)


def cached_load(directory: Path, options: ModelOptions, *, spec: str) -> TransformersChatModel:
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    base, adapter = resolve_model_dir(directory, options.adapter)
    if options.threads is not None:
        if options.threads < 1:
            raise ConfigError("threads", options.threads, "a positive integer, or unset for torch's default")
        torch.set_num_threads(options.threads)  # process-wide in torch; the last model loaded decides
    key: CacheKey = (str(base), str(adapter) if adapter else None, device, dtype)
    model = _CACHE.get_or_load(key, lambda: _load(base, adapter, spec=spec, device=device, dtype=dtype))
    return model if model.spec == spec else model.renamed(spec)


def load_packaged_model(name: str, options: ModelOptions) -> TransformersChatModel:
    """`local:NAME`: a packaged GGUF, converted once into the cache dir, then loaded like any HF dir."""
    directory = ensure_hf_dir(find_packaged(name), cache_dir())
    return cached_load(directory, options, spec=f"local:{name}")


def load_hf_dir(path: str, options: ModelOptions) -> TransformersChatModel:
    """`hf:DIR`: a saved HF model dir, or a peft adapter dir whose base is a local dir."""
    return cached_load(Path(path).expanduser(), options, spec=f"hf:{path}")


__all__ = [
    "TransformersChatModel",
    "clear_model_cache",
    "load_hf_dir",
    "load_packaged_model",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_dir",
]
