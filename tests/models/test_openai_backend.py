"""The `openai:` backend over real HTTP on 127.0.0.1 against the scriptable fake server."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from agentdistill.errors import ModelCallError, ModelUnavailable
from agentdistill.models import ChatModel, ModelOptions, make_chat_model, system, user
from agentdistill.models.openai_backend import OpenAIChatModel
from agentdistill.testing.openai_script import Fault
from agentdistill.testing.openai_server import FakeOpenAIServer

REACT = "Thought: look it up\nAction: search\nAction Input: capital\nObservation: invented by the model"
STOP = ["\nObservation:"]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def model_for(
    srv: FakeOpenAIServer | str, *, timeout_s: float = 2.0, max_retries: int = 2, **tuning: float
) -> OpenAIChatModel:
    """Tiny backoff so failure tests stay fast; real runs use the 0.5 s / 20 s defaults."""
    base_url = srv if isinstance(srv, str) else srv.base_url
    options = ModelOptions(base_url=base_url, timeout_s=timeout_s, max_retries=max_retries)
    return OpenAIChatModel.from_spec("fake-model", options, **{"backoff_base_s": 0.01, "backoff_cap_s": 0.05, **tuning})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_generate_returns_text_usage_and_latency(server: FakeOpenAIServer) -> None:
    model = model_for(server)
    [out] = model.generate([system("be brief"), user("hello there")], max_tokens=64, temperature=0.3)
    assert out.text == "You said: hello there"
    assert out.finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (4, 4)  # the server counts words
    assert out.latency_s > 0 and out.ttft_s is None
    [request] = server.chat_requests
    assert request.body["model"] == "fake-model"
    assert request.body["messages"] == [{"role": "system", "content": "be brief"}, user("hello there")]
    assert (request.body["max_tokens"], request.body["temperature"], request.body["n"]) == (64, 0.3, 1)
    assert "stop" not in request.body and "seed" not in request.body and not request.body.get("stream")
    assert request.headers["authorization"] == "Bearer EMPTY"  # no key given: local servers accept any


def test_seed_and_at_most_four_stops_reach_the_server_the_rest_are_cut_here(server: FakeOpenAIServer) -> None:
    server.reply = lambda _messages: "one two three SIX four"
    stops = ["ONE", "TWO", "THREE", "FOUR", "FIVE", " SIX"]
    [out] = model_for(server).generate([user("count")], stop=stops, seed=7)
    assert out.text == "one two three" and out.finish_reason == "stop"
    body = server.chat_requests[0].body
    assert body["stop"] == stops[:4] and body["seed"] == 7


def test_n_choices_each_get_a_completion_and_a_share_of_the_usage(server: FakeOpenAIServer) -> None:
    counter = itertools.count(1)
    server.reply = lambda _messages: "word " * next(counter)
    outs = model_for(server).generate([user("go")], n=3, temperature=1.0)
    assert [o.text for o in outs] == ["word ", "word word ", "word word word "]
    assert [o.usage.completion_tokens for o in outs] == [2, 2, 2]  # one total of 6, split evenly
    assert {o.usage.prompt_tokens for o in outs} == {1} and len({o.latency_s for o in outs}) == 1
    assert [r.body["n"] for r in server.chat_requests] == [3]


def test_a_server_that_ignores_n_is_asked_again_for_the_rest() -> None:
    with FakeOpenAIServer(honor_n=False) as srv:
        outs = model_for(srv).generate([user("go")], n=3)
        assert [o.text for o in outs] == ["You said: go"] * 3
        assert [r.body["n"] for r in srv.chat_requests] == [3, 2, 1]


def test_stop_is_enforced_client_side_when_the_server_ignores_it() -> None:
    with FakeOpenAIServer(REACT, honor_stop=False) as srv:
        [out] = model_for(srv).generate([user("q")], stop=STOP)
        assert out.text == "Thought: look it up\nAction: search\nAction Input: capital"
        assert out.finish_reason == "stop"
        assert srv.chat_requests[0].body["stop"] == STOP


def test_max_tokens_gives_finish_reason_length(server: FakeOpenAIServer) -> None:
    server.reply = lambda _messages: "a b c d e f g"
    [out] = model_for(server).generate([user("q")], max_tokens=3)
    assert (out.text, out.finish_reason, out.usage.completion_tokens) == ("a b c ", "length", 3)


def test_usage_is_estimated_when_the_server_reports_none() -> None:
    with FakeOpenAIServer("x" * 40, report_usage=False) as srv:
        [out] = model_for(srv).generate([user("y" * 80)])
        assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (20, 10)  # ~4 characters a token


@pytest.mark.parametrize("honor_stop", [True, False])
def test_streaming_deltas_add_up_to_the_text_and_never_show_the_stop(honor_stop: bool) -> None:
    with FakeOpenAIServer(REACT, honor_stop=honor_stop, latency_s=0.05, token_interval_s=0.01) as srv:
        deltas: list[str] = []
        [out] = model_for(srv).generate([user("q")], stop=STOP, on_token=deltas.append)
        assert out.text == "Thought: look it up\nAction: search\nAction Input: capital"
        assert "".join(deltas) == out.text and len(deltas) > 3
        assert not any("Obs" in d for d in deltas) and out.finish_reason == "stop"
        assert out.ttft_s is not None and 0.05 <= out.ttft_s < out.latency_s
        body = srv.chat_requests[0].body
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        if honor_stop:  # the whole stream was read, so the server's usage chunk arrived
            assert out.usage.completion_tokens == 9


def test_streaming_needs_n_1(server: FakeOpenAIServer) -> None:
    with pytest.raises(ValueError, match="n=1"):
        model_for(server).generate([user("q")], n=2, on_token=print)
    assert server.chat_requests == []


def test_429_waits_as_long_as_retry_after_says_then_succeeds(server: FakeOpenAIServer) -> None:
    server.inject(Fault.rate_limited(retry_after=1))
    started = time.perf_counter()
    [out] = model_for(server).generate([user("hi")])  # our own backoff is at most 0.05 s here
    waited = time.perf_counter() - started
    assert out.text == "You said: hi" and 0.9 <= waited < 3.0
    first, second = server.chat_requests
    assert 0.9 <= second.received_at - first.received_at < 3.0


def test_retry_after_is_capped(server: FakeOpenAIServer) -> None:
    server.inject(Fault.rate_limited(retry_after=30))
    started = time.perf_counter()
    model_for(server, retry_after_cap_s=0.2).generate([user("hi")])
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("stream", [False, True])
def test_500_then_success(server: FakeOpenAIServer, stream: bool) -> None:
    server.inject(Fault.server_error(500))
    [out] = model_for(server).generate([user("hi")], on_token=(lambda _d: None) if stream else None)
    assert out.text == "You said: hi" and len(server.chat_requests) == 2


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.server_error(500), "http_5xx"),
        (Fault.server_error(503), "http_5xx"),
        (Fault.rate_limited(None), "rate_limited"),
    ],
)
def test_retries_are_bounded_then_a_model_call_error(server: FakeOpenAIServer, fault: Fault, kind: str) -> None:
    server.inject(fault, fault, fault, fault)
    with pytest.raises(ModelCallError, match=r"3 attempts") as err:
        model_for(server, max_retries=2).generate([user("hi")])
    assert err.value.kind == kind and str(fault.status) in str(err.value)
    assert len(server.chat_requests) == 3 and server.pending_faults == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_hung_server_times_out_is_retried_and_fails_in_bounded_time(server: FakeOpenAIServer, stream: bool) -> None:
    server.inject(Fault.hang(10), Fault.hang(10))
    started = time.perf_counter()
    with pytest.raises(ModelCallError) as err:
        model_for(server, timeout_s=0.3, max_retries=1).generate([user("hi")], on_token=print if stream else None)
    elapsed = time.perf_counter() - started
    assert err.value.kind == "timeout" and 0.55 <= elapsed < 2.5
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", [Fault.malformed(), Fault.no_choices()])
def test_malformed_replies_are_retried_then_bad_response(server: FakeOpenAIServer, fault: Fault, stream: bool) -> None:
    server.inject(fault, fault)
    with pytest.raises(ModelCallError) as err:
        model_for(server, max_retries=1).generate([user("hi")], on_token=print if stream else None)
    assert err.value.kind == "bad_response" and len(server.chat_requests) == 2
    server.inject(fault)  # once is survivable
    assert model_for(server, max_retries=1).generate([user("hi")])[0].text == "You said: hi"


def test_a_stream_cut_after_output_is_not_replayed(server: FakeOpenAIServer) -> None:
    server.inject(Fault.drop(after_tokens=2))
    deltas: list[str] = []
    with pytest.raises(ModelCallError) as err:
        model_for(server, max_retries=3).generate([user("one two three")], on_token=deltas.append)
    assert err.value.kind == "bad_response"
    assert "".join(deltas) == "You said: " and len(server.chat_requests) == 1  # a retry would repeat these


def test_a_stream_cut_before_output_is_retried(server: FakeOpenAIServer) -> None:
    server.inject(Fault.drop(after_tokens=0))
    deltas: list[str] = []
    [out] = model_for(server).generate([user("hi")], on_token=deltas.append)
    assert "".join(deltas) == out.text == "You said: hi" and len(server.chat_requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_bad_credentials_are_model_unavailable_at_once(server: FakeOpenAIServer, status: int) -> None:
    server.inject(Fault.unauthorized(status))
    with pytest.raises(ModelUnavailable) as err:
        model_for(server, max_retries=3).generate([user("hi")])
    message = str(err.value)
    assert server.base_url in message and f"HTTP {status}" in message and "\n" not in message
    assert "openai.api_key" in message and "OPENAI_API_KEY" in message and "AGENTDISTILL_OPENAI_API_KEY" in message
    assert len(server.chat_requests) == 1  # retrying cannot fix a key


def test_the_api_key_and_headers_are_sent() -> None:
    with FakeOpenAIServer(api_key="sekret") as srv:
        options = ModelOptions(base_url=srv.base_url, api_key="sekret", headers=(("X-Team", "distill"),))
        assert make_chat_model("openai:fake-model", options).generate([user("hi")])[0].text == "You said: hi"
        headers = srv.chat_requests[0].headers
        assert headers["authorization"] == "Bearer sekret" and headers["x-team"] == "distill"
        with pytest.raises(ModelUnavailable, match="HTTP 401"):
            model_for(srv).generate([user("hi")])  # no key: the server's own check refuses


def test_an_unreachable_endpoint_is_model_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as err:
        model_for(url, max_retries=1).generate([user("hi")])
    assert url in str(err.value) and "start the server" in str(err.value) and "base_url" in str(err.value)
    assert time.perf_counter() - started < 3.0


def test_a_wrong_path_is_a_4xx_error_without_retries(server: FakeOpenAIServer) -> None:
    with pytest.raises(ModelCallError, match="/v1") as err:
        model_for(server.base_url.removesuffix("/v1"), max_retries=3).generate([user("hi")])
    assert err.value.kind == "http_4xx" and len(server.requests) == 1


def test_make_chat_model_builds_the_openai_backend(server: FakeOpenAIServer) -> None:
    model = make_chat_model("openai:x", ModelOptions(base_url=server.base_url))
    assert isinstance(model, OpenAIChatModel) and isinstance(model, ChatModel)
    assert model.spec == "openai:x"
    assert model.generate([user("hi")])[0].text == "You said: hi"
    assert server.chat_requests[0].body["model"] == "x"


def test_one_model_serves_many_threads_at_once() -> None:
    """Requests overlap on the shared client: 8 calls of 0.2 s each take far less than 1.6 s."""
    with FakeOpenAIServer(lambda messages: messages[-1]["content"].upper(), latency_s=0.2) as srv:
        model = model_for(srv)
        model.generate([user("warm")])
        results: dict[int, str] = {}

        def call(i: int) -> None:
            results[i] = model.generate([user(f"q{i}")])[0].text

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: f"Q{i}" for i in range(8)}
        assert time.perf_counter() - started < 1.0
