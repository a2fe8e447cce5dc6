"""`gguf:NAME` and `gguf:PATH` models: quantized GGUF weights run in-process by llama.cpp (llama-cpp-python).

llama.cpp decodes the quantized weights directly, so on a CPU it runs 6-9x faster than transformers, which
dequantizes them to fp32 (see MODELS.md). One loaded model serves many threads (a lock around generate:
a llama.cpp context is not thread-safe); the process keeps each loaded model in one cache. Consecutive
calls that share a prompt prefix (the steps of one ReAct run) reuse its KV cache: llama-cpp-python compares
the new prompt with the tokens already evaluated and only evaluates the new suffix.

llama-cpp-python compiles from source on install, so it may be missing, or built for instructions this CPU
lacks: nothing here imports it at module level, and no GGUF is loaded in this process before `llama_probe`
has decoded it in a child process (a crash there becomes LlamaCppUnusable here). `gguf_unavailable_reason()`
says why llama.cpp cannot be used.
"""

from __future__ import annotations

import atexit
import codecs
import copy
import functools
import importlib
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from agentdistill.errors import AgentDistillError, ConfigError, ModelCallError, ModelNotFound, ModelUnavailable
from agentdistill.models import llama_probe
from agentdistill.models.base import (
    Completion,
    FinishReason,
    Message,
    ModelCache,
    ModelOptions,
    StopStreamer,
    TokenCallback,
    Usage,
    check_args,
)
from agentdistill.models.llama_threads import ThreadGovernor, WaitPolicy, import_with_policy
from agentdistill.models.packaged import PackagedModel, assembled_gguf, find_packaged, packaged_models, part_paths
from agentdistill.paths import cache_dir

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_N_CTX = 4096  # tokens of context; a ReAct run grows its prompt with every step
INSTALL = "pip install llama-cpp-python==0.3.36"
_SEED_SPACE = 2**32 - 1  # llama.cpp reads seed 0xFFFFFFFF as "pick a random seed", so stay below it
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

CacheKey = tuple[str, int, int, bool, str]  # (resolved GGUF path, n_ctx, threads, threads chosen by us, device)


class GGUFLoadError(AgentDistillError):
    """llama.cpp refused a GGUF file: truncated, corrupt, or an architecture this build does not know."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"llama.cpp could not load {path}: {problem}. The file is truncated, corrupt or not a model this"
            " llama.cpp build supports: get a complete copy (compare its size and sha256 with the source; for a"
            " packaged model reinstall its package), or upgrade llama-cpp-python for a newer architecture."
        )
        self.path = path


class PromptTooLong(ModelCallError):
    """The prompt fills the whole context window, so there is no room to generate."""

    def __init__(self, spec: str, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"{spec}: the prompt has {prompt_tokens} tokens but the context window holds {n_ctx}: shorten the"
            " conversation (fewer steps or shorter observations) or load the model with a larger n_ctx.",
            kind="context_overflow",
        )


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


def gguf_unavailable_reason() -> str | None:
    """None when llama.cpp runs here, else why not: not installed, or its probe child crashed, hung or erred.

    Never imports llama_cpp in this process: a build that crashes on this CPU takes only the probe child down.
    """
    verdict = llama_probe.check()
    return None if verdict.usable else verdict.reason


def _llama_cpp(path: Path | None = None) -> ModuleType:
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


# Keyed by (path, n_ctx, threads, device): weights are mapped once and each model's KV cache keeps the
# last prompt, which the next step of a run reuses.
_CACHE: ModelCache[GGUFChatModel] = ModelCache()
# llama.cpp's LLAMA_FTYPE values, as GGUF metadata `general.file_type` stores them.
_FILE_TYPES = {"0": "f32", "1": "f16", "2": "q4_0", "3": "q4_1", "7": "q8_0", "8": "q5_0", "9": "q5_1", "10": "q2_k",
               "11": "q3_k_s", "12": "q3_k_m", "13": "q3_k_l", "14": "q4_k_s", "15": "q4_k_m", "16": "q5_k_s",
               "17": "q5_k_m", "18": "q6_k", "32": "bf16"}  # fmt: skip


def _close_all() -> None:
    """Free every llama.cpp model while the interpreter still works; its own __del__ fails at shutdown."""
    for model in _CACHE.drain():
        model.unwrap().close()


atexit.register(_close_all)


def clear_model_cache() -> None:
    """Forget every loaded GGUF model (tests, or a long process that switches models)."""
    _CACHE.drain()


class GGUFChatModel:
    """A ChatModel over one llama.cpp model and context. Thread-safe: one generate runs at a time."""

    def __init__(
        self, llama: Llama, *, spec: str, path: Path, n_ctx: int, threads: int, adapt_threads: bool = False
    ) -> None:
        self.spec = spec
        self.path = path
        self.n_ctx = n_ctx
        self.threads = threads
        self._llama = llama
        self._governor = ThreadGovernor(threads, adapt=adapt_threads)
        self._lock = threading.Lock()
        self._is_eog = _eog_check(llama)
        self._template = _chat_formatter(llama)

    def renamed(self, spec: str) -> GGUFChatModel:
        """The same weights, context and lock under another spec (`local:NAME` and `gguf:NAME` share one load)."""
        twin = copy.copy(self)
        twin.spec = spec
        return twin

    def unwrap(self) -> Llama:
        """The very llama_cpp.Llama this model runs, for benchmarks. Hold no reference across generate calls."""
        return self._llama

    @property
    def has_chat_template(self) -> bool:
        return self._template is not None

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The GGUF's chat template with a generation prompt; base models without one get a `role: content` text."""
        if self._template is not None:
            return self._template(messages=[dict(m) for m in messages]).prompt
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Prompt token ids, as the transformers backend builds them."""
        prompt = self.render_prompt(messages).encode("utf-8")
        if self._template is not None:  # the rendered template holds its special tokens already
            return self._llama.tokenize(prompt, add_bos=False, special=True)
        return self._llama.tokenize(prompt, add_bos=True, special=False)

    def describe(self) -> dict[str, Any]:
        """What `agentdistill models info --load` prints."""
        import llama_cpp

        meta = self._llama.metadata
        policy = wait_policy()
        return {
            "runs_on": "gguf (llama.cpp)",
            "device": "cpu" if not self._llama.model_params.n_gpu_layers else "gpu offload",
            "dtype": _FILE_TYPES.get(meta.get("general.file_type", ""), meta.get("general.file_type")),
            "parameters": llama_cpp.llama_model_n_params(self._llama.model),
            "path": str(self.path),
            "file_mb": round(self.path.stat().st_size / 1e6, 1),
            "architecture": meta.get("general.architecture"),
            "model_name": meta.get("general.name"),
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "threads_adapt_to_load": self._governor.adapt,
            "threads_now": llama_cpp.llama_n_threads(self._llama.ctx),
            "openmp_wait": f"{policy.policy} ({policy.why})",
            "chat_template": self.has_chat_template,
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "llama_cpp_python": llama_cpp.__version__,
        }

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
        """See ChatModel.generate. Samples run one after another with seeds seed, seed+1, ...

        Greedy with n > 1 returns n copies of one generation: they would be identical anyway. `min_tokens`
        decodes past end-of-generation tokens until that many are out (benchmarks force lengths).
        """
        check_args(max_tokens=max_tokens, temperature=temperature, n=n, min_tokens=min_tokens, on_token=on_token)
        stop = [s for s in stop if s]
        started = time.perf_counter()
        sample = temperature > 0
        first = seed if seed is not None else secrets.randbelow(_SEED_SPACE)
        with self._lock:  # a llama.cpp context holds one KV cache and one sampler: never share it between calls
            prompt = self.encode(messages)
            room = self.n_ctx - len(prompt)
            if room < 1:
                raise PromptTooLong(self.spec, len(prompt), self.n_ctx)
            budget = min(max_tokens, room)
            with self._governor.decoding() as threads:
                self._use_threads(threads)
                rows = [
                    self._one(
                        prompt,
                        stop=stop,
                        budget=budget,
                        temperature=temperature,
                        seed=(first + i) % _SEED_SPACE,
                        on_token=on_token,
                        min_tokens=min(min_tokens, budget),
                        started=started,
                    )
                    for i in range(n if sample else 1)
                ]
        latency = time.perf_counter() - started
        completions = [
            Completion(
                text=text,
                finish_reason=reason,
                usage=Usage(prompt_tokens=len(prompt), completion_tokens=count),
                latency_s=latency,
                ttft_s=ttft,
            )
            for text, reason, count, ttft in rows
        ]
        return completions if sample else completions * n

    def _use_threads(self, threads: int) -> None:
        """Decode (and evaluate prompts) with `threads` from now on; llama.cpp applies it to the next batch.

        The count is read back from the context, not remembered here: `renamed` twins share that context.
        """
        import llama_cpp

        if llama_cpp.llama_n_threads(self._llama.ctx) != threads:
            llama_cpp.llama_set_n_threads(self._llama.ctx, threads, threads)

    def _one(
        self,
        prompt: list[int],
        *,
        stop: Sequence[str],
        budget: int,
        temperature: float,
        seed: int,
        on_token: TokenCallback | None,
        min_tokens: int,
        started: float,
    ) -> tuple[str, FinishReason, int, float | None]:
        """(text cut at stop, finish reason, tokens generated, seconds to the first token) of one sample.

        Decodes token by token so a stop sequence ends generation at once, also when it spans tokens.
        """
        llama = self._llama
        llama.set_seed(seed)
        out = StopStreamer(stop, on_token)  # cuts at the stop even with no listener
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # holds half a multi-byte character back
        count, ended, ttft = 0, False, None
        # Plain temperature sampling, as the OpenAI API and our transformers backend do: top-k, top-p and
        # min-p off. temp=0 makes llama.cpp pick the argmax.
        tokens = llama.generate(prompt, temp=temperature, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
        try:
            for token in tokens:
                if ttft is None:
                    ttft = time.perf_counter() - started
                count += 1
                if self._is_eog(token):
                    if count > min_tokens:  # the end token counts, as it does in API usage
                        ended = True
                        break
                elif out.feed(utf8.decode(llama.detokenize([token]))):
                    break
                if count >= budget:
                    break
        except RuntimeError as exc:  # llama_decode failed (out of memory, a broken context)
            llama.reset()  # the KV cache may be half-written: evaluate the next prompt from scratch
            raise ModelCallError(
                f"{self.spec}: llama.cpp failed while generating: {exc}. Free some memory or load the model"
                " with a smaller n_ctx, then retry."
            ) from exc
        finally:
            tokens.close()
        stopped = out.stopped or out.feed(utf8.decode(b"", final=True))
        reason: FinishReason = "stop" if stopped or ended else "length"
        return out.finish(), reason, count, ttft


def _eog_check(llama: Llama) -> Callable[[int], bool]:
    """True for any end-of-generation token (eos, eot, <|im_end|>...), as llama.cpp itself decides."""
    import llama_cpp

    vocab = llama._model.vocab  # the public API has no accessor for the vocab handle
    return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def _chat_formatter(llama: Llama) -> Callable[..., Any] | None:
    """The GGUF's own Jinja chat template (`tokenizer.chat_template`), or None for base models without one."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        add_generation_prompt=True,
    )


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
    llama_cpp = _llama_cpp(path)  # a child process decodes this file first: a crash there is a message here
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
        _llama_cpp()
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
