"""`agentdistill serve`: any ChatModel behind an OpenAI-compatible HTTP endpoint, the way vLLM serves one.

A graph pointed at `openai:NAME` with base_url `http://HOST:PORT/v1` cannot tell this server from vLLM or
the OpenAI API, so a distilled student replaces a teacher across processes without touching the graph.
Served: GET /v1/models, POST /v1/chat/completions (messages, max_tokens / max_completion_tokens,
temperature, n, stop, seed, stream with SSE chunks and usage, tools / tool_choice), GET /health. Errors
come back as OpenAI error JSON: 400 for a malformed request, 404 for another model name, 500 with the
message when the model fails.

One request generates at a time by default (`max_concurrent=1`): a local model is one set of weights,
and not every ChatModel is safe to call from several threads. TransformersChatModel is thread-safe and
batches concurrent callers on a GPU, so `max_concurrent > 1` lets its batcher see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.exceptions import HTTPException

from agentdistill.distill.serve_tools import (
    call_block,
    choice_line,
    offer_tools,
    parse_tool_calls,
    response_block,
    tool_names,
)
from agentdistill.errors import AgentDistillError
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = 8192  # the cap on max_tokens when a backend does not say its context window
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there
DEFAULT_MAX_TOKENS = (
    512  # when a request sets no limit; the API's "up to the context" would let one call run for minutes
)
MAX_N = 16  # samples per request; more is a mistake, not a workload
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


class ServeError(AgentDistillError):
    """The server cannot start (address in use, bad host) or did not come up in time."""


# request schema ----------------------------------------------------------------------------------


class _TextPart(BaseModel):
    type: Literal["text"]  # image or audio parts are refused: a text model would silently ignore them
    text: str


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, ...: nothing a text chat template shows

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's earlier native calls

    def to_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or ())
        if self.role == "tool":  # a call's result: the next user turn, as Qwen's template shows it
            return {"role": "user", "content": response_block(text)}
        if self.tool_calls:
            blocks = [call_block(c.get("function", {}).get("name", ""), c.get("function", {}).get("arguments"))
                      for c in self.tool_calls]  # fmt: skip
            text = "\n".join([text, *blocks] if text else blocks)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class _StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completions request this server acts on; others (user, ...) are ignored.

    Settings that would change the answer but that a ChatModel cannot honour (top_p < 1, penalties,
    logprobs) are refused with a 400 rather than silently dropped. `tools` are offered in the prompt and
    `<tool_call>` blocks in the reply come back as `tool_calls` (distill/serve_tools.py).
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[_ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @field_validator("top_p")
    @classmethod
    def _plain_top_p(cls, value: float | None) -> float | None:
        if value is not None and value != 1:
            raise ValueError("only top_p=1 is supported: this server samples with temperature alone")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("penalties are not supported: leave them unset or 0")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("logprobs are not supported by this server")
        return value

    @field_validator("tools")
    @classmethod
    def _function_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        tool_names(value or [])
        return value

    @model_validator(mode="after")
    def _known_choice(self) -> ChatRequest:
        choice_line(self.tool_choice, tool_names(self.tools or []))
        if self.tool_choice not in (None, "auto", "none") and not self.tools:
            raise ValueError("tool_choice needs tools: offer the functions in `tools`")
        return self

    @property
    def offered_tools(self) -> list[dict[str, Any]]:
        """The tools the model is shown: none when tool_choice is "none"."""
        return [] if self.tool_choice == "none" else list(self.tools or [])

    @property
    def stops(self) -> list[str]:
        raw = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return [s for s in raw if s]


# the app -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One generate call, as the request asks for it."""

    messages: list[Message]
    stop: list[str]
    max_tokens: int
    temperature: float
    n: int
    seed: int | None
    tool_names: tuple[str, ...] = ()  # functions offered: the replies are parsed for calls to them

    @property
    def streams_tokens(self) -> bool:
        """One sample without tools streams as it decodes; calls are only known once the reply is whole."""
        return self.n == 1 and not self.tool_names


class _ClientGone(Exception):
    """Raised from the token callback once a streaming client has hung up, to end its generation early."""


class _Runner:
    """Runs generate calls on worker threads, at most `max_concurrent` at once."""

    def __init__(self, model: ChatModel, max_concurrent: int) -> None:
        self.model = model
        # A thread semaphore, taken inside the worker: a cancelled request still holds it until its
        # generate returns, so an abandoned call never overlaps the next one.
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def generate(self, call: _Call, on_token: TokenCallback | None = None) -> list[Completion]:
        with self._slots:
            return self.model.generate(
                call.messages,
                stop=call.stop,
                max_tokens=call.max_tokens,
                temperature=call.temperature,
                n=call.n,
                seed=call.seed,
                on_token=on_token,
            )


def context_of(model: ChatModel) -> int:
    """The model's context window in tokens, where its backend says; else FALLBACK_CONTEXT."""
    for attr in ("n_ctx", "context_length"):  # gguf backend, transformers backend
        value = getattr(model, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return FALLBACK_CONTEXT


def create_app(
    model: ChatModel,
    *,
    model_name: str | None = None,
    max_concurrent: int = 1,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    max_tokens_cap: int | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """An OpenAI-compatible app over `model`, served under `model_name` (default: the model's spec).

    `api_key`, when set, must come as `Authorization: Bearer <key>` (for a server not bound to 127.0.0.1).
    A request asking for more than `max_tokens_cap` tokens (default: the model's context) is a 400. A
    generation stops at its next token when its client hangs up or the server is stopping
    (`app.state.stopping`, set by `serve` on SIGINT/SIGTERM).
    """
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
    cap = max_tokens_cap or context_of(model)
    if cap < 1:
        raise ValueError(f"max_tokens_cap must be >= 1, got {cap}")
    name = model_name or model.spec
    runner = _Runner(model, max_concurrent)
    app = FastAPI(title="agentdistill serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stopping = stopping = threading.Event()

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        param = ".".join(str(p) for p in exc.errors()[0]["loc"][1:]) if exc.errors() else None
        return error_response(400, "; ".join(problems) or "invalid request", param=param)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    async def check_key(authorization: str | None = Header(default=None)) -> None:
        if api_key is not None and authorization != f"Bearer {api_key}":
            raise HTTPException(401, "Incorrect API key provided: send `Authorization: Bearer <key>`.")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "agentdistill"}]}

    @app.post("/v1/chat/completions", response_model=None, dependencies=[Depends(check_key)])
    async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        if body.model and body.model != name:
            return error_response(
                404, f"The model `{body.model}` does not exist: this server serves `{name}`.", code="model_not_found"
            )
        asked = body.max_completion_tokens or body.max_tokens or min(default_max_tokens, cap)
        if asked > cap:
            field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
            return error_response(
                400, f"{field} is {asked}: this server generates at most {cap} tokens per request (the model's"
                " context, or `serve --max-tokens-cap`); ask for fewer.", param=field,
            )  # fmt: skip
        messages = [m.to_message() for m in body.messages]
        if tools := body.offered_tools:
            messages = offer_tools(messages, tools, body.tool_choice)
        call = _Call(
            messages=messages,
            stop=body.stops,
            max_tokens=asked,
            temperature=1.0 if body.temperature is None else body.temperature,  # the API's default
            n=body.n,
            seed=body.seed,
            tool_names=tuple(tool_names(tools)),
        )
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": name}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _sse(runner, call, meta, include_usage, stopping),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        gone = threading.Event()

        def on_token(delta: str) -> None:
            if gone.is_set() or stopping.is_set():
                raise _ClientGone

        listener = on_token if call.n == 1 else None  # a tool reply is not streamed, but a hang-up still stops it
        work = asyncio.ensure_future(anyio.to_thread.run_sync(runner.generate, call, listener))
        while not work.done():  # the slot stays held until generate returns, so keep waiting after a hang-up
            await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
            if not gone.is_set() and not work.done() and await request.is_disconnected():
                gone.set()
        try:
            completions = work.result()
        except _ClientGone:
            return error_response(503, "the generation was stopped: the client left or the server is stopping")
        except Exception as exc:  # the HTTP edge: any model failure becomes a 500 the client can read
            log.exception("model %s failed on a chat request", name)
            return error_response(500, _describe(exc))
        return JSONResponse(
            {
                **meta,
                "object": "chat.completion",
                "choices": [
                    {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                    for i, (message, finish) in enumerate(_reply(c, call) for c in completions)
                ],
                "usage": _usage(completions),
            }
        )

    return app


async def _sse(
    runner: _Runner, call: _Call, meta: dict[str, Any], include_usage: bool, stopping: threading.Event
) -> AsyncIterator[str]:
    """Server-sent events: role chunk, content deltas, a finish chunk per choice, usage, `[DONE]`.

    With n == 1 the deltas are the model's own as it produces them; n > 1 samples cannot stream
    (ChatModel streams one completion), so each choice's text comes in one chunk once all are done.
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    gone = threading.Event()

    def put(kind: str, payload: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
            loop.call_soon_threadsafe(events.put_nowait, (kind, payload))

    def on_token(delta: str) -> None:
        _still_there(delta)
        put("delta", delta)

    def _still_there(delta: str) -> None:
        if gone.is_set() or stopping.is_set():
            raise _ClientGone

    def work() -> None:
        try:
            put("done", runner.generate(call, on_token if call.streams_tokens else _still_there))
        except _ClientGone:
            return
        except Exception as exc:  # reported to the client as an error event, like vLLM does mid-stream
            log.exception("model %s failed on a streaming chat request", meta["model"])
            put("error", exc)

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return _event({**meta, "object": "chat.completion.chunk", "choices": choices, **extra})

    threading.Thread(target=work, name="serve-generate", daemon=True).start()
    try:
        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        sent = ""
        while True:
            kind, payload = await events.get()
            if kind == "error":
                yield _event({"error": _error_body(500, _describe(payload))})
                yield "data: [DONE]\n\n"
                return
            if kind == "done":
                completions: list[Completion] = payload
                break
            sent += payload
            yield chunk([{"index": 0, "delta": {"content": payload}, "finish_reason": None}])
        for i, completion in enumerate(completions):
            message, finish = _reply(completion, call)
            text = message["content"] or ""
            rest = text[len(sent) :] if i == 0 and text.startswith(sent) else text
            if i > 0:
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            if rest:
                yield chunk([{"index": i, "delta": {"content": rest}, "finish_reason": None}])
            if calls := message.get("tool_calls"):
                deltas = [{"index": j, **c} for j, c in enumerate(calls)]
                yield chunk([{"index": i, "delta": {"tool_calls": deltas}, "finish_reason": None}])
            yield chunk([{"index": i, "delta": {}, "finish_reason": finish}])
        if include_usage:
            yield chunk([], usage=_usage(completions))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()  # the client hung up or the stream ended: a still-running generate stops at its next token


# responses ---------------------------------------------------------------------------------------


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    """An OpenAI-style error body, which the openai SDK (and so our client) reads the message from."""
    return JSONResponse(_error_body(status, message, param=param, code=code), status_code=status)


def _error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AgentDistillError) else f"{type(exc).__name__}: {exc}"


def _finish(completion: Completion) -> str:
    return "length" if completion.finish_reason == "length" else "stop"


def _reply(completion: Completion, call: _Call) -> tuple[dict[str, Any], str]:
    """A choice's message and finish reason; with tools offered, its `<tool_call>` blocks become `tool_calls`."""
    if not call.tool_names:
        return {"role": "assistant", "content": completion.text}, _finish(completion)
    text, calls = parse_tool_calls(completion.text, call.tool_names)
    if not calls:
        return {"role": "assistant", "content": text}, _finish(completion)
    return {"role": "assistant", "content": text or None, "tool_calls": calls}, "tool_calls"


def _usage(completions: Sequence[Completion]) -> dict[str, int]:
    """The API's usage: the prompt once, every choice's completion tokens summed."""
    prompt = completions[0].usage.prompt_tokens if completions else 0
    completion = sum(c.usage.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


# running it --------------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one), so the real port is known before serving."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, before uvicorn's loop runs: no refused first call
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port or --host."
        ) from exc
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def serve(
    model: ChatModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str | None = None,
    max_concurrent: int = 1,
    max_tokens_cap: int | None = None,
    api_key: str | None = None,
    log_level: str = "info",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `model` until interrupted (Ctrl-C / SIGTERM end it gracefully).

    There is no authentication unless `api_key` is set: keep the default 127.0.0.1 unless the network
    is trusted. `on_ready(base_url)` is called once the port is bound (the CLI prints it).
    """
    app = create_app(model, model_name=model_name, max_concurrent=max_concurrent, max_tokens_cap=max_tokens_cap,
                     api_key=api_key)  # fmt: skip
    sock = bind(host, port)
    if on_ready is not None:
        on_ready(_url(host, sock.getsockname()[1]))
    server = _StoppingServer(app.state.stopping, uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class _StoppingServer(uvicorn.Server):
    """uvicorn, but a stop signal first tells running generations to end at their next token: uvicorn alone
    waits for open requests, and a long generation would hold the process for minutes after Ctrl-C."""

    def __init__(self, stopping: threading.Event, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


class ServerThread:
    """`with ServerThread(app) as srv:` runs uvicorn on 127.0.0.1 in a background thread; `srv.base_url` ends in /v1.

    For tests and for the distill pipeline, which serves a student and points an `openai:` graph at it.
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 20.0):
        self.app = app
        self.host = host
        self._port = port
        self.startup_timeout_s = startup_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> ServerThread:
        if self._server is not None:
            return self
        self._sock = bind(self.host, self._port)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="agentdistill-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServeError(f"the server on {self.host} did not start within {self.startup_timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server, self._thread, self._sock = None, None, None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise ServeError("the server is not running: use `with ServerThread(app) as srv:`")
        return self._sock.getsockname()[1]

    @property
    def base_url(self) -> str:
        return _url(self.host, self.port)


__all__ = ["ChatRequest", "ServeError", "ServerThread", "bind", "create_app", "error_response", "serve"]
