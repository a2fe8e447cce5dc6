"""`openai:MODEL`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, Ollama, `agentdistill serve`).

The SDK's own retries are off: ours are bounded, jittered, honour Retry-After, never replay a stream a
listener has already seen, and end in an error that says what to do. Stop sequences are always enforced
here as well, because servers differ in how (and whether) they apply them.
"""

from __future__ import annotations

import copy
import importlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import openai

from agentdistill.errors import ModelCallError, ModelUnavailable
from agentdistill.models.base import (
    Completion,
    FinishReason,
    Message,
    ModelOptions,
    StopStreamer,
    TokenCallback,
    ToolCallRequest,
    Usage,
    cut_at_stop,
)
from agentdistill.models.openai_errors import retry_after_seconds, server_message
from agentdistill.models.token_ids import ids_from_logprobs

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_SERVER_STOPS = 4  # OpenAI rejects more than 4 stop strings; the rest are enforced client-side only
_KEY_HINT = "set the API key with config `openai.api_key` or env OPENAI_API_KEY / AGENTDISTILL_OPENAI_API_KEY"

_HINTS = {  # what the user can do once retries are spent
    "rate_limited": "; lower the concurrency or try again later",
    "timeout": "; raise the timeout or check whether the server is overloaded",
    "http_5xx": "; check the server's log",
}

T = TypeVar("T")


def _http_errors(name: str) -> tuple[type[Exception], ...]:
    """Errors raised while reading a stream come from the SDK's HTTP library (httpx2 now, httpx before)."""
    found = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_STREAM_TIMEOUTS = _http_errors("TimeoutException")
_STREAM_TRANSPORT = _http_errors("TransportError")


class _Failure(Exception):
    """One failed attempt. `kind` becomes ModelCallError.kind; "unreachable" becomes ModelUnavailable."""

    def __init__(self, message: str, kind: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.kind = message, kind
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


class OpenAIChatModel:
    """A ChatModel over the OpenAI chat completions API; one instance is safe to share between threads."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,  # first retry waits up to this; doubles each retry (full jitter)
        backoff_cap_s: float = 20.0,  # no single backoff wait exceeds this
        retry_after_cap_s: float = 60.0,  # the most we wait when a server's Retry-After asks for longer
        tokenizer: str | None = None,  # set for a server known to run a local GGUF: ask it for sampled ids
    ) -> None:
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError(f"need max_retries >= 0 and timeout_s > 0, got {max_retries} and {timeout_s}")
        self.model = model
        self.spec = f"openai:{model}"
        # An explicit default: left as None, the SDK would read OPENAI_BASE_URL from the environment itself.
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries  # retries after the first attempt
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self._rng = random.Random()
        self.tokenizer = tokenizer
        self._tools: list[dict[str, Any]] = []  # set on the view `with_tools` returns
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "EMPTY",  # local servers accept any key; the caller passes a real one
            default_headers=dict(headers or {}),
            timeout=timeout_s,
            max_retries=0,
        )

    @classmethod
    def from_spec(
        cls,
        rest: str,
        options: ModelOptions,
        *,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 20.0,
        retry_after_cap_s: float = 60.0,
    ) -> OpenAIChatModel:
        """`openai:MODEL`. The backoff knobs are not user config: tests shrink them to stay fast."""
        return cls(
            rest,
            base_url=options.base_url,
            api_key=options.api_key,
            headers=dict(options.headers),
            timeout_s=options.timeout_s,
            max_retries=options.max_retries,
            backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s,
            retry_after_cap_s=retry_after_cap_s,
        )

    def close(self) -> None:
        self._client.close()

    def with_tools(self, tools: Sequence[Mapping[str, Any]]) -> OpenAIChatModel:
        """A view of this model whose requests offer `tools` (OpenAI function schemas) for native tool calling.

        Its completions carry `tool_calls`; such calls are not streamed (an `on_token` listener gets the
        content once, when the call returns). The HTTP client is shared.
        """
        bound = copy.copy(self)
        bound._tools = [dict(t) for t in tools]
        return bound

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model!r}, base_url={self.base_url!r})"

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
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if on_token is not None and n != 1:
            raise ValueError(f"streaming (on_token) returns one completion: call with n=1, got n={n}")
        stops = [s for s in stop if s]
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stops:
            request["stop"] = stops[:MAX_SERVER_STOPS]
        if seed is not None:
            request["seed"] = seed
        if self._tools:
            request["tools"] = self._tools
        if self.tokenizer is not None:  # llama-server puts each sampled token's id in its logprobs entries
            request["logprobs"] = True
        started = time.perf_counter()
        if on_token is not None and not self._tools:
            return [self._retrying(lambda: self._stream_once(request, stops, on_token, started))]
        out: list[Completion] = []
        for _ in range(n):  # servers that ignore `n` (llama.cpp) answer fewer: ask again, at most n calls
            batch = {**request, "n": n - len(out)}
            out += self._retrying(lambda batch=batch: self._complete_once(batch, stops))
            if len(out) >= n:
                break
        latency = time.perf_counter() - started
        if on_token is not None and out[0].text:
            on_token(out[0].text)
        return [replace(c, latency_s=latency) for c in out[:n]]

    # one attempt -------------------------------------------------------------------------------------

    def _complete_once(self, request: dict[str, Any], stops: list[str]) -> list[Completion]:
        try:
            raw = self._client.chat.completions.with_raw_response.create(**request)
            body = raw.text
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        data = _json_object(body, "response body")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _Failure(f"the response has no choices: {body[:200]!r}", "bad_response")
        texts: list[tuple[str, FinishReason, tuple[ToolCallRequest, ...]]] = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                raise _Failure(f"a choice has no message: {choice!r:.200}", "bad_response")
            text, hit = cut_at_stop(message.get("content") or "", stops)
            texts.append((text, _finish(choice.get("finish_reason"), hit), _tool_calls(message), choice))
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt_tokens = _int(usage.get("prompt_tokens"), default=_estimate(request["messages"]))
        total = _int(usage.get("completion_tokens"), default=-1)
        out = []
        for i, (text, finish, calls, choice) in enumerate(texts):
            # The server reports one total over all choices: split it evenly, the remainder to the first ones.
            # Without usage at all, estimate ~4 characters per token rather than report zero.
            share = total // len(texts) + (i < total % len(texts)) if total >= 0 else len(text) // 4
            usage = Usage(prompt_tokens, share)
            # llama-server's logprobs entries carry each sampled token's id (OpenAI's do not): token-exact records
            exact = ids_from_logprobs(choice.get("logprobs"), text) if self.tokenizer is not None else None
            ids, logprob = exact or (None, None)
            out.append(Completion(text=text, finish_reason=finish, usage=usage, tool_calls=calls, token_ids=ids,
                                  tokenizer=self.tokenizer if exact else None, logprob=logprob))  # fmt: skip
        return out

    def _stream_once(
        self, request: dict[str, Any], stops: list[str], on_token: TokenCallback, started: float
    ) -> Completion:
        streamer = StopStreamer(stops, on_token)
        try:
            return self._read_stream(request, streamer, started)
        except _Failure as failure:
            # A retry would replay text the listener has already shown: only retry before the first delta.
            failure.retryable = failure.retryable and streamer.sent == 0
            raise

    def _read_stream(self, request: dict[str, Any], streamer: StopStreamer, started: float) -> Completion:
        ttft: float | None = None
        finish: Any = None
        usage: dict[str, Any] = {}
        ended = seen_choice = False
        try:
            with self._client.chat.completions.with_streaming_response.create(
                **request, stream=True, stream_options={"include_usage": True}
            ) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, SSE comments (keep-alives), `event:` lines
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        ended = True
                        break
                    chunk = _json_object(payload, "stream chunk")
                    if "error" in chunk:
                        raise _Failure(f"the server failed mid-stream: {chunk['error']!r:.200}", "http_5xx")
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict):
                            raise _Failure(f"a stream chunk has a malformed choice: {payload[:200]!r}", "bad_response")
                        seen_choice = True
                        delta = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if delta and ttft is None:
                            ttft = time.perf_counter() - started
                        if delta:
                            streamer.feed(delta)
                    if streamer.stopped:
                        break  # leaving the block closes the connection: the server stops generating for us
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        except _STREAM_TIMEOUTS as exc:
            raise _Failure(f"the stream stalled for more than {self.timeout_s:g} s", "timeout") from exc
        except _STREAM_TRANSPORT as exc:
            raise _Failure(f"the connection dropped mid-stream ({exc!r})", "bad_response") from exc
        if not seen_choice:
            raise _Failure("the stream carried no choices", "bad_response")
        if not (ended or finish or streamer.stopped):
            raise _Failure("the stream ended before `data: [DONE]` or a finish_reason", "bad_response")
        text = streamer.finish()
        # Stopping early skips the final usage chunk; then estimate ~4 characters per token.
        prompt_tokens = _int(usage.get("prompt_tokens"), default=_estimate(request["messages"]))
        completion_tokens = _int(usage.get("completion_tokens"), default=len(text) // 4)
        return Completion(
            text=text,
            finish_reason=_finish(finish, streamer.stopped),
            usage=Usage(prompt_tokens, completion_tokens),
            latency_s=time.perf_counter() - started,
            ttft_s=ttft,
        )

    # retries -----------------------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` up to 1 + max_retries times; auth errors (ModelUnavailable) pass straight through."""
        for tries in range(self.max_retries + 1):
            try:
                return attempt()
            except _Failure as failure:
                if not failure.retryable or tries == self.max_retries:
                    raise self._final_error(failure, tries + 1) from failure
                time.sleep(self._delay(tries, failure.retry_after))
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, tries: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        # full jitter: concurrent callers hitting one server spread out instead of retrying in lockstep
        return self._rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**tries))

    def _final_error(self, failure: _Failure, attempts: int) -> Exception:
        tried = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if failure.kind == "unreachable":
            return ModelUnavailable(
                f"cannot reach an OpenAI-compatible server at {self.base_url} ({tried}: {failure.message}): "
                "start the server (e.g. `agentdistill serve` or `vllm serve`) or check base_url."
            )
        hint = _HINTS.get(failure.kind, "")
        return ModelCallError(f"{self.spec} at {self.base_url}: {failure.message} ({tried}){hint}", kind=failure.kind)

    def _failure(self, exc: openai.APIError) -> _Failure:
        """Classify an SDK error; bad credentials raise ModelUnavailable at once, since retrying cannot help."""
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            raise ModelUnavailable(
                f"{self.base_url} refused the request with HTTP {exc.status_code} for model {self.model!r}: "
                f"{_KEY_HINT}."
            ) from exc
        if isinstance(exc, openai.APITimeoutError):
            return _Failure(f"no reply within {self.timeout_s:g} s", "timeout")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return _Failure(f"{type(cause).__name__}: {cause}", "unreachable")
        if isinstance(exc, openai.APIStatusError):
            status, detail = exc.status_code, server_message(exc)
            wait = retry_after_seconds(exc.response.headers.get("retry-after")) if status in (429, 503) else None
            if status == 429:
                return _Failure(f"rate limited (HTTP 429): {detail}", "rate_limited", retry_after=wait)
            if status >= 500:
                return _Failure(f"server error (HTTP {status}): {detail}", "http_5xx", retry_after=wait)
            hint = " (is base_url right, ending in /v1, and does the server serve this model?)" if status == 404 else ""
            return _Failure(f"request rejected (HTTP {status}): {detail}{hint}", "http_4xx", retryable=False)
        return _Failure(f"unusable response: {exc}", "bad_response")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Failure(f"the {what} is not valid JSON ({exc.msg}): {text[:200]!r}", "bad_response") from exc
    if not isinstance(data, dict):
        raise _Failure(f"the {what} is not a JSON object: {text[:200]!r}", "bad_response")
    return data


def _tool_calls(message: Mapping[str, Any]) -> tuple[ToolCallRequest, ...]:
    """Native tool calls of a response message; a malformed entry is a bad response, not a silent drop."""
    raw = message.get("tool_calls") or []
    calls = []
    for call in raw if isinstance(raw, list) else [raw]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Failure(f"a tool call has no function name: {call!r:.200}", "bad_response", retryable=False)
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        calls.append(ToolCallRequest(name=function["name"], arguments=text, id=str(call.get("id") or "")))
    return tuple(calls)


def _finish(reason: object, stopped_here: bool) -> FinishReason:
    return "length" if reason == "length" and not stopped_here else "stop"


def _int(value: object, *, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default


def _estimate(messages: Sequence[Mapping[str, Any]]) -> int:
    """~4 characters per token: only used when the server reports no usage."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4
