"""`local:NAME` and `hf:DIR` models: HF-format weights run in-process with transformers.

One loaded model serves many threads (a lock around generate); the process keeps each loaded model
in one cache, so graphs that ask for the same spec share weights instead of loading them again.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from agentdistill.errors import ConfigError, ModelNotFound
from agentdistill.models.base import (
    Completion,
    FinishReason,
    Message,
    ModelOptions,
    StopStreamer,
    TokenCallback,
    Usage,
    cut_at_stop,
)
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


class _ModelCache:
    """The one process-wide cache of loaded models (STYLE.md allows exactly this global).

    Loading takes seconds and hundreds of MB; every graph node, agent and test asking for the same
    weights on the same device and dtype gets the same object. `clear_model_cache()` empties it.
    """

    def __init__(self) -> None:
        self._models: dict[CacheKey, TransformersChatModel] = {}
        self._lock = threading.Lock()  # held while loading, so two threads never load the same weights twice

    def get_or_load(self, key: CacheKey, load: Callable[[], TransformersChatModel]) -> TransformersChatModel:
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


_CACHE = _ModelCache()


def clear_model_cache() -> None:
    """Forget every loaded model (tests, or a long process that switches models); memory frees once unreferenced."""
    _CACHE.clear()


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


class TransformersChatModel:
    """A ChatModel over an HF causal LM and its tokenizer. Thread-safe: one generate runs at a time."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        spec: str,
        device: str,
        dtype: str,
        lock: threading.Lock | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self._model = model
        self._tokenizer = tokenizer
        self._lock = lock or threading.Lock()
        eos = model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self._eos: set[int] = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self._eos), 0)
        self._pad: int = pad

    def renamed(self, spec: str) -> TransformersChatModel:
        """The same weights and lock under another spec (e.g. `hf:DIR` of a dir first loaded as `local:NAME`)."""
        return TransformersChatModel(
            self._model, self._tokenizer, spec=spec, device=self.device, dtype=self.dtype, lock=self._lock
        )

    def unwrap(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """(hf_model, tokenizer): the very weights this model runs, for benchmarks and training."""
        return self._model, self._tokenizer

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tokenizer, "chat_template", None))

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The chat template with a generation prompt; base models without one get a `role: content` transcript."""
        if self.has_chat_template:
            return self._tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
            )
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, messages: Sequence[Message]) -> torch.Tensor:
        """Prompt token ids, shape (1, len), on the model's device."""
        # A rendered template already holds its special tokens; only the plain transcript needs BOS added.
        enc = self._tokenizer(
            self.render_prompt(messages), add_special_tokens=not self.has_chat_template, return_tensors="pt"
        )
        return enc["input_ids"].to(self._model.device)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
        min_tokens: int = 0,
    ) -> list[Completion]:
        """See ChatModel.generate. `min_tokens` suppresses end-of-sequence that early (benchmarks force lengths).

        Greedy with n > 1 returns n copies of one generation: they would be identical anyway.
        """
        _check_args(max_tokens=max_tokens, temperature=temperature, n=n, min_tokens=min_tokens, on_token=on_token)
        stop = [s for s in stop if s]
        started = time.perf_counter()
        sample = temperature > 0
        with self._lock:  # tokenizers and the global torch RNG are not safe to share between threads
            ids = self.encode(messages)
            prompt_len = ids.shape[1]
            streamer = _DeltaStreamer(self._tokenizer, StopStreamer(stop, on_token), started) if on_token else None
            kwargs = {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "max_new_tokens": max_tokens,
                "do_sample": sample,
                "num_return_sequences": n if sample else 1,
                "pad_token_id": self._pad,
                "streamer": streamer,
            }
            if min_tokens:
                kwargs["min_new_tokens"] = min_tokens
            stopper = _StopOnText(self._tokenizer, stop, prompt_len) if stop else None
            if stopper is not None:
                kwargs["stopping_criteria"] = StoppingCriteriaList([stopper])
            if sample:
                kwargs.update(temperature=temperature, **self._sampling_filters())
            with _seeded(seed if sample else None, self._model.device), torch.inference_mode():
                out = self._model.generate(**kwargs)
            rows = [
                self._finish(out[row, prompt_len:], stop, max_tokens, stopper.stopped_at.get(row) if stopper else None)
                for row in range(out.shape[0])
            ]
            ttft = None
            if streamer is not None:
                streamer.finish(rows[0][2])
                ttft = streamer.ttft_s
        latency = time.perf_counter() - started
        completions = [
            Completion(
                text=text,
                finish_reason=reason,
                usage=Usage(prompt_tokens=prompt_len, completion_tokens=count),
                latency_s=latency,
                ttft_s=ttft,
            )
            for text, reason, _, count in rows
        ]
        return completions if sample else completions * n

    def _sampling_filters(self) -> dict:
        """Plain temperature sampling, as the OpenAI API does, unless the model's own config asks for top-k/top-p."""
        config = self._model.generation_config
        top_k = getattr(config, "top_k", None)
        top_p = getattr(config, "top_p", None)
        return {"top_k": top_k if top_k is not None else 0, "top_p": top_p if top_p is not None else 1.0}

    def _finish(
        self, generated: torch.Tensor, stop: Sequence[str], max_tokens: int, stopped_at: int | None
    ) -> tuple[str, FinishReason, str, int]:
        """(text cut at stop, finish reason, full decoded text, tokens generated) for one returned row.

        A row that hit a stop string while other rows went on is padded after `stopped_at`; the padding
        is not counted (the pad id is often the end token, so it cannot be told apart afterwards).
        """
        tokens = generated.tolist()[:stopped_at]
        count, ended = len(tokens), False
        for i, token in enumerate(tokens):
            if token in self._eos:  # the end token counts, as it does in API usage
                count, ended = i + 1, True
                break
            if token == self._pad:  # rows finished by a stop string are padded after the stop
                count = i
                break
        full = self._tokenizer.decode(tokens[:count], skip_special_tokens=True)
        text, hit = cut_at_stop(full, stop)
        reason: FinishReason = "stop" if hit or ended or count < max_tokens else "length"
        return text, reason, full, count


def _check_args(*, max_tokens: int, temperature: float, n: int, min_tokens: int, on_token: object) -> None:
    """Caller bugs, not user config: plain ValueErrors."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= min_tokens <= max_tokens:
        raise ValueError(f"min_tokens must be between 0 and max_tokens ({max_tokens}), got {min_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if on_token is not None and n != 1:
        raise ValueError("on_token streams one completion: call with n=1")


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for one call and restore it after, so a seeded call does not reseed the caller's code.

    generate() samples from the global RNG (it takes no Generator); the model lock keeps calls apart.
    """
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class _StopOnText(StoppingCriteria):
    """Marks a row done once its generated text contains a stop sequence (stop strings may span tokens)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stop, self.prompt_len = tokenizer, list(stop), prompt_len
        self.stopped_at: dict[int, int] = {}  # row -> tokens generated when its stop appeared (padding follows)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = []
        for index, row in enumerate(input_ids):
            if index not in self.stopped_at:
                text = self.tokenizer.decode(row[self.prompt_len :].tolist(), skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    self.stopped_at[index] = len(row) - self.prompt_len
            done.append(index in self.stopped_at)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _DeltaStreamer(BaseStreamer):
    """Turns generated token ids into text deltas for a StopStreamer, which holds back anything past a stop."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_streamer: StopStreamer, started: float) -> None:
        self.tokenizer, self.out, self.started = tokenizer, stop_streamer, started
        self.ids: list[int] = []
        self.text = ""
        self.ttft_s: float | None = None
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() pushes the prompt first
            self._prompt_seen = True
            return
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # Half a multi-byte character decodes to U+FFFD; wait for the rest rather than emit it.
        if text.endswith("\ufffd") or not text.startswith(self.text):
            return
        delta, self.text = text[len(self.text) :], text
        if delta:
            self.out.feed(delta)

    def end(self) -> None:
        """Nothing to flush here: finish() reconciles with the final decode."""

    def finish(self, full_text: str) -> str:
        """Emit whatever the final decode has beyond what was streamed (held-back bytes), then flush."""
        if full_text.startswith(self.text) and len(full_text) > len(self.text):
            self.out.feed(full_text[len(self.text) :])
            self.text = full_text
        return self.out.finish()


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


def _cached_load(directory: Path, options: ModelOptions, *, spec: str) -> TransformersChatModel:
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
    return _cached_load(directory, options, spec=f"local:{name}")


def load_hf_dir(path: str, options: ModelOptions) -> TransformersChatModel:
    """`hf:DIR`: a saved HF model dir, or a peft adapter dir whose base is a local dir."""
    return _cached_load(Path(path).expanduser(), options, spec=f"hf:{path}")
