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
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from agentdistill.distill.serve_reply import GenerateCall, choice_reply, describe_error, error_response, usage_of
from agentdistill.distill.serve_schema import ChatRequest
from agentdistill.distill.serve_stream import ClientGone, GenerateRunner, sse_stream
from agentdistill.distill.serve_tools import offer_tools, tool_names
from agentdistill.errors import AgentDistillError
from agentdistill.models.base import ChatModel

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = 8192  # the cap on max_tokens when a backend does not say its context window
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there
DEFAULT_MAX_TOKENS = (
    512  # when a request sets no limit; the API's "up to the context" would let one call run for minutes
)


class ServeError(AgentDistillError):
    """The server cannot start (address in use, bad host) or did not come up in time."""


# the app -----------------------------------------------------------------------------------------


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
    runner = GenerateRunner(model, max_concurrent)
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
        call = GenerateCall(
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
                sse_stream(runner, call, meta, include_usage, stopping),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        gone = threading.Event()

        def on_token(delta: str) -> None:
            if gone.is_set() or stopping.is_set():
                raise ClientGone

        listener = on_token if call.n == 1 else None  # a tool reply is not streamed, but a hang-up still stops it
        work = asyncio.ensure_future(anyio.to_thread.run_sync(runner.generate, call, listener))
        while not work.done():  # the slot stays held until generate returns, so keep waiting after a hang-up
            await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
            if not gone.is_set() and not work.done() and await request.is_disconnected():
                gone.set()
        try:
            completions = work.result()
        except ClientGone:
            return error_response(503, "the generation was stopped: the client left or the server is stopping")
        except Exception as exc:  # the HTTP edge: any model failure becomes a 500 the client can read
            log.exception("model %s failed on a chat request", name)
            return error_response(500, describe_error(exc))
        return JSONResponse(
            {
                **meta,
                "object": "chat.completion",
                "choices": [
                    {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                    for i, (message, finish) in enumerate(choice_reply(c, call) for c in completions)
                ],
                "usage": usage_of(completions),
            }
        )

    return app


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


__all__ = ["ServeError", "ServerThread", "bind", "create_app", "serve"]
