"""The fake OpenAI server speaks the wire format real clients expect, and its faults do what they say."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from agentdistill.testing.openai_script import Fault
from agentdistill.testing.openai_server import FakeOpenAIServer

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi there"}]}


def test_it_starts_fast_and_lists_its_models() -> None:
    started = time.perf_counter()
    with FakeOpenAIServer(models=["a", "b"]) as srv:
        assert time.perf_counter() - started < 1.0
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        reply = httpx.get(f"{srv.base_url}/models")
        assert reply.status_code == 200
        assert [m["id"] for m in reply.json()["data"]] == ["a", "b"]
        assert httpx.get(f"{srv.base_url}/nope").status_code == 404
        assert [(r.method, r.path) for r in srv.requests] == [("GET", "/v1/models"), ("GET", "/v1/nope")]


def test_a_plain_reply_has_choices_and_usage() -> None:
    with FakeOpenAIServer(lambda messages: f"{len(messages)} message(s)") as srv:
        data = httpx.post(f"{srv.base_url}/chat/completions", json={**CHAT, "n": 2}).json()
        assert [c["message"]["content"] for c in data["choices"]] == ["1 message(s)"] * 2
        assert [c["index"] for c in data["choices"]] == [0, 1]
        assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
        assert srv.chat_requests[0].body["n"] == 2


def test_the_sse_stream_is_framed_like_openai() -> None:
    with FakeOpenAIServer("alpha beta STOP gamma") as srv:
        body = {**CHAT, "stream": True, "stop": ["STOP"], "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body) as reply:
            assert reply.headers["content-type"] == "text/event-stream"
            events = [line for line in reply.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "alpha beta "  # the server applied the stop
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


def test_faults_apply_to_the_next_requests_in_order() -> None:
    with FakeOpenAIServer(faults=[Fault.rate_limited(retry_after=2), Fault.server_error(503)]) as srv:
        srv.inject(Fault.malformed(), Fault.no_choices())
        url = f"{srv.base_url}/chat/completions"
        first = httpx.post(url, json=CHAT)
        assert (first.status_code, first.headers["retry-after"]) == (429, "2")
        assert "injected" in first.json()["error"]["message"]
        assert httpx.post(url, json=CHAT).status_code == 503
        malformed = httpx.post(url, json=CHAT)
        with pytest.raises(json.JSONDecodeError):
            json.loads(malformed.text)
        assert httpx.post(url, json=CHAT).json()["choices"] == []
        assert httpx.post(url, json=CHAT).json()["choices"][0]["message"]["content"] == "You said: hi there"
        assert srv.pending_faults == 0 and len(srv.chat_requests) == 5


def test_an_api_key_is_checked_when_set() -> None:
    with FakeOpenAIServer(api_key="k") as srv:
        url = f"{srv.base_url}/chat/completions"
        assert httpx.post(url, json=CHAT).status_code == 401
        assert httpx.post(url, json=CHAT, headers={"Authorization": "Bearer k"}).status_code == 200


def test_a_hang_outlives_the_client_but_not_the_server() -> None:
    srv = FakeOpenAIServer(faults=[Fault.hang(30)]).start()
    outcome: list[str] = []

    def call() -> None:
        try:
            httpx.post(f"{srv.base_url}/chat/completions", json=CHAT, timeout=0.2)
            outcome.append("answered")
        except httpx.TimeoutException:
            outcome.append("timed out")

    caller = threading.Thread(target=call)
    caller.start()
    caller.join(timeout=5)
    started = time.perf_counter()
    srv.stop()  # the handler is still asleep in its 30 s hang
    assert outcome == ["timed out"] and time.perf_counter() - started < 1.0


def test_latency_delays_each_reply_but_requests_overlap() -> None:
    with FakeOpenAIServer(latency_s=1.0) as srv:
        url = f"{srv.base_url}/chat/completions"
        started = time.perf_counter()
        threads = [threading.Thread(target=httpx.post, args=(url,), kwargs={"json": CHAT}) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        arrivals = [r.received_at for r in srv.chat_requests]
        # overlap, judged on the server's clock: every request arrived before the first one could be answered
        assert len(arrivals) == 5 and max(arrivals) - min(arrivals) < 1.0 <= elapsed
