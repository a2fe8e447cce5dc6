"""Token-to-client latency of the chat UI's event stream: how long a streamed token takes to reach a reader.

    python benchmarks/perf/ui_stream_latency.py [--tokens 200] [--interval-ms 10] [--turns 5] [--json]

A real uvicorn server runs `agentdistill ui`'s app on a free loopback port in a thread of this process; its chat
uses a paced model that emits `--tokens` tokens `--interval-ms` apart and notes when it emitted each
(time.monotonic). An httpx client starts a react turn, reads its Server-Sent Events and notes when each token event
arrives. Server and client share the process, hence the clock: latency = arrival - emission, split into
emission -> the server's event stamp (the turn's callbacks and the event log) and that stamp -> arrival (the
SSE response, the middleware and the socket). The first turn warms up (graph built, imports done) and is not
counted. A browser adds its own parsing and rendering on top (measured elsewhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from common import machine_summary

from agentdistill.config import Settings
from agentdistill.models.base import Completion, Message, TokenCallback, Usage
from agentdistill.testing.live_server import live_server
from agentdistill.web.app import create_app
from agentdistill.web.chat_turns import ChatService
from agentdistill.web.security import UIConfig


class PacedModel:
    """Emits `tokens` words at a steady pace, then a final answer; `emitted` holds each token's emit time."""

    spec = "paced:bench"

    def __init__(self, tokens: int, interval_s: float) -> None:
        self.tokens = tokens
        self.interval_s = interval_s
        self.emitted: list[float] = []

    def generate(
        self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 512,
        temperature: float = 0.0, n: int = 1, seed: int | None = None, on_token: TokenCallback | None = None,
    ) -> list[Completion]:  # fmt: skip
        self.emitted = []
        words = [f"w{i} " for i in range(self.tokens)] + ["\nFinal Answer: done"]
        start = time.monotonic()
        for i, word in enumerate(words):
            delay = start + i * self.interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.emitted.append(time.monotonic())
            if on_token is not None:
                on_token(word)
        return [Completion(text="".join(words), usage=Usage(len(messages), len(words)))]


def app_for(home: Path, model: PacedModel) -> tuple[Any, str]:
    """The UI app over `home`, its chat answering with `model`: (app, csrf token)."""
    ui = UIConfig()
    app = create_app(Settings(home=home), ui)
    app.state.chat = ChatService(app.state.web.settings, make_model=lambda spec: model)
    return app, ui.csrf_secret


def one_turn(client: httpx.Client, csrf: str, thread: str | None) -> tuple[list[float], list[float], str]:
    """Start a turn and read its stream: (each token's arrival time, its server stamp, the thread)."""
    body = {"question": "stream please", "agent": "react", "model": "paced:bench", "kb": "none", "thread": thread}
    started = client.post("/api/chat/turns", json=body, headers={"X-CSRF-Token": csrf})
    started.raise_for_status()
    turn = started.json()
    arrived, stamped = [], []
    with client.stream("GET", f"/api/chat/turns/{turn['turn_id']}/events") as stream:
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            now = time.monotonic()
            event = json.loads(line[6:])
            if event["kind"] == "token":
                arrived.append(now)
                stamped.append(event["t"])
            elif event["kind"] in ("answer", "error"):
                if event.get("status") != "ok":
                    raise RuntimeError(f"the turn did not answer: {event}")
                break
    return arrived, stamped, turn["thread"]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(ms), "p95": percentile(ms, 0.95), "max": max(ms)}


def measure(tokens: int, interval_s: float, turns: int) -> dict[str, Any]:
    model = PacedModel(tokens, interval_s)
    with tempfile.TemporaryDirectory(prefix="ui-latency-") as tmp:
        app, csrf = app_for(Path(tmp), model)
        total, server_side, wire, rates = [], [], [], []
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            chat_thread = None
            for turn in range(turns + 1):  # turn 0 warms up
                arrived, stamped, chat_thread = one_turn(client, csrf, chat_thread)
                if len(arrived) != len(model.emitted):
                    raise RuntimeError(f"{len(model.emitted)} tokens emitted, {len(arrived)} arrived")
                if not turn:
                    continue
                total += [(a - e) * 1000 for a, e in zip(arrived, model.emitted, strict=True)]
                server_side += [(s - e) * 1000 for s, e in zip(stamped, model.emitted, strict=True)]
                wire += [(a - s) * 1000 for a, s in zip(arrived, stamped, strict=True)]
                rates.append((len(arrived) - 1) / (arrived[-1] - arrived[0]))
    return {
        "machine": machine_summary(), "tokens": tokens + 1, "interval_ms": interval_s * 1000, "turns": turns,
        "latency_ms": summary(total), "emit_to_event_ms": summary(server_side), "event_to_client_ms": summary(wire),
        "tokens_per_s": statistics.median(rates), "paced_tokens_per_s": 1 / interval_s if interval_s else None,
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [
        result["machine"],
        f"{result['turns']} turns x {result['tokens']} tokens, one every {result['interval_ms']:g} ms",
        f"{'ms':<28}{'median':>9}{'p95':>9}{'max':>9}",
    ]
    for key, label in (("latency_ms", "emit -> client (total)"), ("emit_to_event_ms", "emit -> server event"),
                       ("event_to_client_ms", "server event -> client")):  # fmt: skip
        row = result[key]
        lines.append(f"{label:<28}{row['median']:>9.2f}{row['p95']:>9.2f}{row['max']:>9.2f}")
    paced = result["paced_tokens_per_s"]
    lines.append(f"tokens/s received: {result['tokens_per_s']:.1f}" + (f" (paced at {paced:.1f})" if paced else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per turn")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="pause between tokens (0: as fast as it can)")
    parser.add_argument("--turns", type=int, default=5, help="measured turns, after one warm-up turn")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.turns < 1 or args.interval_ms < 0:
        parser.error("--tokens must be at least 2, --turns at least 1, --interval-ms 0 or more")
    result = measure(args.tokens, args.interval_ms / 1000, args.turns)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
