"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose replies and failures a test scripts.

Tests and benchmarks talk to it over real sockets, so the `openai:` backend is exercised exactly as it
would be against vLLM or llama.cpp: SSE framing, status codes, Retry-After, hung and malformed replies.
The stdlib server starts in milliseconds and needs nothing beyond Python.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentdistill.testing.openai_script import Fault, RecordedRequest, Reply, echo

_QUIET_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class FakeOpenAIServer:
    """`with FakeOpenAIServer(reply) as srv:` serves /v1/chat/completions and /v1/models at `srv.base_url`.

    Faults queued with `inject` replace the next chat requests, one each, in order. `latency_s` delays every
    chat reply (the concurrency benchmark uses it to stand in for a slow teacher); `token_interval_s` spaces
    streamed tokens. Setting `honor_stop`/`honor_n`/`report_usage` False imitates servers that ignore those.
    A "token" here is one whitespace-delimited word with its trailing space. When a request carries `tools`,
    a reply written as JSON `{"tool_calls": [{"name": ..., "arguments": {...}}], "content": ...}` comes back
    as native tool calls (non-streaming responses only).
    """

    def __init__(
        self,
        reply: Reply | str = echo,
        *,
        latency_s: float = 0.0,
        token_interval_s: float = 0.0,
        honor_stop: bool = True,
        honor_n: bool = True,
        report_usage: bool = True,
        models: Sequence[str] = ("fake-model",),
        api_key: str | None = None,
        faults: Iterable[Fault] = (),
    ) -> None:
        self.reply: Reply = (lambda _messages: reply) if isinstance(reply, str) else reply
        self.latency_s = latency_s
        self.token_interval_s = token_interval_s
        self.honor_stop = honor_stop
        self.honor_n = honor_n
        self.report_usage = report_usage
        self.models = list(models)
        self.api_key = api_key  # when set, requests must carry `Authorization: Bearer <api_key>`
        self._faults: deque[Fault] = deque(faults)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = 0

    # lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._closing.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung and delayed requests are woken so shutdown never waits on them."""
        if self._httpd is None:
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running: use `with FakeOpenAIServer() as srv:`")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # scripting and assertions ----------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next chat requests, one request each."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # used by the handler ---------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _next_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"chatcmpl-fake-{self._ids}"

    def _wait(self, seconds: float) -> bool:
        """Sleep unless shutting down; False means the server is closing and the request should be dropped."""
        return seconds <= 0 or not self._closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must never keep the test process alive
    request_queue_size = 256  # the concurrency benchmark opens many connections at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: FakeOpenAIServer):
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-reply (timeout, stop sequence seen) is normal here, not worth a traceback
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as they would with vLLM
    disable_nagle_algorithm = True  # headers and body go out in separate writes: Nagle would add ~40 ms
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        app = self.server.app
        app._record(RecordedRequest("GET", self.path, self._headers(), None))
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route GET {self.path}", "not_found")
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "agentdistill"} for m in app.models]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        app._record(RecordedRequest("POST", self.path, self._headers(), body))
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}", "not_found")
        if app.api_key is not None and self.headers.get("Authorization") != f"Bearer {app.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "body must be JSON with a `messages` list", "invalid_request_error")
        fault = app._next_fault()
        if fault is not None and fault.kind == "hang" and not app._wait(fault.seconds):
            return self._drop()
        if not app._wait(app.latency_s):
            return self._drop()
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._error(fault.status, f"injected HTTP {fault.status}", "injected", headers)
        choices = self._choices(body) if not (fault and fault.kind == "no_choices") else []
        if body.get("stream"):
            return self._stream(body, choices, fault)
        if fault is not None and fault.kind == "drop":
            return self._drop()
        if fault is not None and fault.kind == "malformed":
            return self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ', "application/json")
        self._json(200, self._completion(body, choices))

    # replies ---------------------------------------------------------------------------------------

    def _choices(self, body: dict[str, Any]) -> list[tuple[list[str], str]]:
        """(tokens, finish_reason) per choice, after the server-side stop and max_tokens handling."""
        app = self.server.app
        n = max(1, int(body.get("n") or 1)) if app.honor_n else 1
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else [s for s in stop if s]
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        out = []
        for _ in range(n):
            text, finish = app.reply(body["messages"]), "stop"
            if app.honor_stop:
                cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
                text = text[: min(cuts)] if cuts else text
            tokens = _tokens(text)
            if limit is not None and len(tokens) > int(limit):
                tokens, finish = tokens[: int(limit)], "length"
            out.append((tokens, finish))
        return out

    def _usage(self, body: dict[str, Any], choices: list[tuple[list[str], str]]) -> dict[str, int]:
        prompt = sum(len(_tokens(str(m.get("content") or ""))) for m in body["messages"])
        completion = sum(len(tokens) for tokens, _ in choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], choices: list[tuple[list[str], str]]) -> dict[str, Any]:
        app = self.server.app
        out: dict[str, Any] = {
            "id": app._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {"index": i, "message": self._message("".join(tokens), body), "finish_reason": finish}
                for i, (tokens, finish) in enumerate(choices)
            ],
        }
        for choice in out["choices"]:
            if choice["message"].get("tool_calls"):
                choice["finish_reason"] = "tool_calls"
        if app.report_usage:
            out["usage"] = self._usage(body, choices)
        return out

    def _message(self, text: str, body: dict[str, Any]) -> dict[str, Any]:
        """The assistant message; with `tools` in the request, a reply `{"tool_calls": [...]}` becomes native calls."""
        if not body.get("tools") or not text.lstrip().startswith('{"tool_calls"'):
            return {"role": "assistant", "content": text}
        scripted = json.loads(text)
        calls = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
            for i, c in enumerate(scripted["tool_calls"])
        ]  # fmt: skip
        return {"role": "assistant", "content": scripted.get("content"), "tool_calls": calls}

    def _stream(self, body: dict[str, Any], choices: list[tuple[list[str], str]], fault: Fault | None) -> None:
        app = self.server.app
        head = {"id": app._next_id(), "object": "chat.completion.chunk", "created": int(time.time())}
        head["model"] = body.get("model", "")

        def event(payload: str) -> None:
            self._chunk(f"data: {payload}\n\n".encode())

        def chunk(choices_part: list[dict[str, Any]], **extra: Any) -> None:
            event(json.dumps({**head, "choices": choices_part, **extra}))

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if fault is not None and fault.kind == "malformed":
                event('{"choices": [{"index": 0, "delta": {"content": "Hel')
            sent = 0
            for index, (tokens, finish) in enumerate(choices):
                chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                for token in tokens:
                    if fault is not None and fault.kind == "drop" and sent >= fault.after_tokens:
                        return self._drop()
                    if not app._wait(app.token_interval_s):
                        return self._drop()
                    sent += 1
                    chunk([{"index": index, "delta": {"content": token}, "finish_reason": None}])
                chunk([{"index": index, "delta": {}, "finish_reason": finish}])
            if app.report_usage and (body.get("stream_options") or {}).get("include_usage"):
                chunk([], usage=self._usage(body, choices))
            event("[DONE]")
            self._chunk(b"")
        except _QUIET_ERRORS:
            self.close_connection = True  # the client stopped reading (a stop sequence, or it gave up)

    # plumbing --------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _error(self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": code, "code": code, "param": None}}, headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except _QUIET_ERRORS:
            self.close_connection = True

    def _drop(self) -> None:
        """Hang up without finishing the reply (shutdown, or an injected drop)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client already hung up


def _tokens(text: str) -> list[str]:
    """Words with their trailing whitespace: deltas that look like a tokenizer's, and join back exactly."""
    out, cur = [], ""
    for ch in text:
        if cur and not ch.isspace() and cur[-1].isspace():
            out.append(cur)
            cur = ""
        cur += ch
    if cur:
        out.append(cur)
    return out
