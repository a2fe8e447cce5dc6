"""A stand-in for llama-server with the same command line, for engine tests on machines without the build.

Serves GET /health and POST /v1/chat/completions (echoing the last user message) on --host/--port.
FAKE_LLAMA_MODE picks a fault: ok | exit_at_start | never_healthy | exit_after:N | hang_after:N (N chat
requests answered first). Each start appends one line to $FAKE_LLAMA_STARTS when that is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--alias", default="model")
    parser.add_argument("--api-key")
    args, _ = parser.parse_known_args()
    mode, _, count = os.environ.get("FAKE_LLAMA_MODE", "ok").partition(":")
    if os.environ.get("FAKE_LLAMA_STARTS"):
        with open(os.environ["FAKE_LLAMA_STARTS"], "a", encoding="utf-8") as starts:
            starts.write(f"{os.getpid()} {args.port}\n")
    print(f"fake llama-server {mode} on {args.host}:{args.port}", flush=True)
    if mode == "exit_at_start":
        print("error: failed to load model", flush=True)
        return 1
    state = {"served": 0, "limit": int(count) if count else None}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            return

        def _hung(self) -> bool:
            return mode == "hang_after" and state["served"] >= state["limit"]

        def do_GET(self) -> None:
            if self.path == "/health" and mode != "never_healthy" and not self._hung():
                return self._json(200, {"status": "ok"})
            if self._hung():
                time.sleep(60)
            self._json(503, {"error": {"message": "Loading model"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if args.api_key and self.headers.get("Authorization") != f"Bearer {args.api_key}":
                return self._json(401, {"error": {"message": "Invalid API Key"}})
            if self._hung():
                time.sleep(60)
                return
            state["served"] += 1
            if mode == "exit_after" and state["served"] > state["limit"]:
                os._exit(139)  # as a segfault would end it
            last = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
            text = f"echo: {last}"
            self._json(200, {
                "id": "x", "object": "chat.completion", "model": args.alias,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(last.split()), "completion_tokens": len(text.split())},
            })  # fmt: skip

        def _json(self, status: int, data: dict) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(f"couldn't bind HTTP server socket, hostname: {args.host}, port: {args.port}: {exc}", flush=True)
        return 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
