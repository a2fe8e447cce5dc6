"""The one interface every model backend implements: chat messages in, `n` completions out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, runtime_checkable


class Message(TypedDict):
    """An OpenAI-style chat message. Roles: system, user, assistant."""

    role: str
    content: str


def system(text: str) -> Message:
    return {"role": "system", "content": text}


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. `prompt_tokens` is the prompt of the call; `completion_tokens` this sample's."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class ToolCallRequest:
    """A native (OpenAI-style) tool call a model returned: `arguments` is the JSON text as the model wrote it."""

    name: str
    arguments: str
    id: str = ""


@dataclass(frozen=True)
class Completion:
    """One sampled answer. `latency_s` is the wall time of the whole call that produced it."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    ttft_s: float | None = None  # time to first token, when the backend streamed
    tool_calls: tuple[ToolCallRequest, ...] = ()  # only from a model bound to native tools (`with_tools`)
    # Token-exact records (local backends): the sampled ids that make up `text` (stop text and end token
    # excluded), the prompt's ids, the tokenizer's id (models/token_ids.py) and the sum of the sampled tokens'
    # log-probabilities; None where the backend cannot say.
    token_ids: tuple[int, ...] | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    tokenizer: str | None = None
    logprob: float | None = None
    # Set by a model that hands calls on (models/fallback.py): the spec that really answered, and what the
    # first model wrote before it was overruled ({"from": spec, "text": ..., "reason": ...}).
    model: str | None = None
    fallback: dict[str, Any] | None = None


TokenCallback = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """How to reach or load a model; filled from config/env/flags at the CLI edge, never read from os.environ here."""

    base_url: str | None = None  # openai: endpoint, e.g. http://localhost:8000/v1 (vLLM, llama.cpp, our serve)
    api_key: str | None = None  # openai: bearer token; "EMPTY" works for local servers
    headers: tuple[tuple[str, str], ...] = ()  # openai: extra HTTP headers
    timeout_s: float = 120.0  # openai: per-request timeout; a hung server fails the call after this
    max_retries: int = 4  # openai: retries on 429/5xx/timeouts, exponential backoff with jitter
    device: str = "auto"  # local/hf: auto = cuda when present, else cpu
    dtype: str = "auto"  # local/hf: auto = bf16 on cuda, fp32 on cpu
    adapter: str | None = None  # hf: optional LoRA adapter dir applied on top of the base
    threads: int | None = None  # local/hf: torch threads; None leaves torch's default


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat messages. Graphs take one as a parameter; they never look one up."""

    spec: str

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
    ) -> list[Completion]:
        """Return `n` completions, each cut before the first stop sequence (the stop text is not included).

        `on_token` receives text deltas as they are produced (n must be 1); the returned completions
        are the same as without it.
        """
        ...


def check_args(*, max_tokens: int, temperature: float, n: int, min_tokens: int, on_token: object) -> None:
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


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop sequence; enforced here because some backends overshoot."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopStreamer:
    """Forwards streamed deltas to a callback but holds back any tail that could begin a stop sequence.

    So a listener never sees text that the final completion will not contain.
    """

    def __init__(self, stop: Sequence[str], on_token: TokenCallback | None) -> None:
        self.stop = [s for s in stop if s]
        self.on_token = on_token
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, delta: str) -> bool:
        """Add a delta; return True once a stop sequence has appeared (the caller should stop generating)."""
        if self.stopped:
            return True
        self.text += delta
        cut, hit = cut_at_stop(self.text, self.stop)
        if hit:
            self.text, self.stopped = cut, True
            self._emit(len(cut))
            return True
        hold = max((k for s in self.stop for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
        self._emit(len(self.text) - hold)
        return False

    def finish(self) -> str:
        self._emit(len(self.text))
        return self.text

    def _emit(self, upto: int) -> None:
        if upto > self.sent and self.on_token is not None:
            self.on_token(self.text[self.sent : upto])
        self.sent = max(self.sent, upto)


M = TypeVar("M")


class ModelCache(Generic[M]):
    """A process-wide cache of loaded models, one per backend (STYLE.md allows exactly these globals).

    Loading takes seconds and hundreds of MB: every graph node, agent and test asking for the same key
    gets the same object. The lock is held while loading, so two threads never load the same weights twice.
    """

    def __init__(self) -> None:
        self._models: dict[Hashable, M] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], M]) -> M:
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def drain(self) -> list[M]:
        """Empty the cache and return what it held, for the backend to release (KV caches, native handles)."""
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        return models
