"""`agentdistill serve` over real HTTP on 127.0.0.1: our own `openai:` client against a served model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agentdistill.agents.factory import build_agent
from agentdistill.agents.react import STOP
from agentdistill.distill.serve import ServerThread, create_app
from agentdistill.errors import ModelCallError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ChatModel, ModelOptions, make_chat_model, system, user
from agentdistill.models.base import Completion, Message, StopStreamer, TokenCallback, Usage
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder

NAME = "student"
REACT = "Thought: look it up\nAction: search\nAction Input: capital\nObservation: invented by the model"


@contextmanager
def served(model: ChatModel, **options: object) -> Iterator[ServerThread]:
    with ServerThread(create_app(model, model_name=NAME, **options)) as srv:  # type: ignore[arg-type]
        yield srv


def client(srv: ServerThread, name: str = NAME) -> ChatModel:
    """Our production client; no retries, so a failure shows the server's first answer."""
    return make_chat_model(f"openai:{name}", ModelOptions(base_url=srv.base_url, max_retries=0, timeout_s=20))


def post(srv: ServerThread, body: object, **kw: object) -> httpx.Response:
    return httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=20, **kw)  # type: ignore[arg-type]


def sse_payloads(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


class SlowModel:
    """Streams `words` tokens one by one with a pause, and counts how many calls overlap."""

    spec = "slow:test"

    def __init__(self, words: int = 5, pause_s: float = 0.02) -> None:
        self.words, self.pause_s = words, pause_s
        self.active = self.peak = self.finished = self.aborted = 0
        self._lock = threading.Lock()

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
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            streamer = StopStreamer(stop, on_token)
            for i in range(self.words):
                time.sleep(self.pause_s)
                try:
                    streamer.feed(f"w{i} ")
                except Exception:
                    with self._lock:
                        self.aborted += 1
                    raise
            text = streamer.finish()
            with self._lock:
                self.finished += 1
            return [Completion(text=text, usage=Usage(3, self.words))] * n
        finally:
            with self._lock:
                self.active -= 1


def test_plain_completion_with_usage_and_model_list() -> None:
    model = ScriptedModel(["The capital of Australia is Canberra."])
    with served(model) as srv:
        [out] = client(srv).generate(
            [system("Be brief."), user("What is the capital of Australia?")], max_tokens=40, temperature=0
        )
        listed = httpx.get(f"{srv.base_url}/models", timeout=5).json()
    assert (out.text, out.finish_reason) == ("The capital of Australia is Canberra.", "stop")
    # ScriptedModel counts words: prompt 2 + 6 words, completion 6 words; the client reads the server's usage
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (8, 6)
    assert model.history == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of Australia?"}]
    ]
    assert model.calls == [{"stop": [], "max_tokens": 40, "temperature": 0.0, "n": 1}]
    assert [m["id"] for m in listed["data"]] == [NAME] and listed["object"] == "list"


def test_request_fields_map_onto_generate() -> None:
    model = ScriptedModel(["a", "b", "c"])
    with served(model, default_max_tokens=77) as srv:
        plain = post(srv, {"model": NAME, "messages": [{"role": "user", "content": "hi"}]}).json()
        developer = {"role": "developer", "content": [{"type": "text", "text": "x"}]}
        post(srv, {"messages": [developer], "max_completion_tokens": 5, "max_tokens": 9, "temperature": 0.3,
                   "stop": "\n", "seed": 1})  # fmt: skip
        post(srv, {"messages": [{"role": "user", "content": "y"}], "stop": ["", "END"], "top_p": 1})
    assert plain["object"] == "chat.completion" and plain["model"] == NAME and plain["id"].startswith("chatcmpl-")
    assert plain["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop", "logprobs": None}
    ]
    assert model.calls == [
        {"stop": [], "max_tokens": 77, "temperature": 1.0, "n": 1},  # defaults: ours, and the API's temperature
        {"stop": ["\n"], "max_tokens": 5, "temperature": 0.3, "n": 1},  # max_completion_tokens wins
        {"stop": ["END"], "max_tokens": 77, "temperature": 1.0, "n": 1},
    ]
    assert model.history[1] == [{"role": "system", "content": "x"}]  # developer -> system, text parts joined


def test_stop_is_enforced_by_the_server_itself() -> None:
    model = ScriptedModel([REACT, REACT])
    with served(model) as srv:
        raw = post(srv, {"messages": [{"role": "user", "content": "q"}], "stop": ["\nObservation:"]}).json()
        [out] = client(srv).generate([user("q")], stop=["\nObservation:"])
    expected = "Thought: look it up\nAction: search\nAction Input: capital"
    assert raw["choices"][0]["message"]["content"] == expected  # raw HTTP: no client-side cut involved
    assert out.text == expected and model.calls[1]["stop"] == ["\nObservation:"]


def test_n_samples_come_back_in_order_with_summed_usage() -> None:
    model, raw_model = ScriptedModel(["one", "two words", "three more words"]), ScriptedModel(["x y", "z"])
    with served(model) as srv:
        outs = client(srv).generate([user("pick")], n=3, temperature=0.8)
    assert [c.text for c in outs] == ["one", "two words", "three more words"]
    assert sum(c.usage.completion_tokens for c in outs) == 6 and model.calls[0]["n"] == 3
    with served(raw_model) as srv:
        body = post(srv, {"messages": [{"role": "user", "content": "p"}], "n": 2}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}


def test_streaming_deltas_join_to_the_final_text() -> None:
    model = ScriptedModel([REACT])
    deltas: list[str] = []
    with served(model) as srv:
        [out] = client(srv).generate([user("q")], stop=["\nObservation:"], on_token=deltas.append)
    assert len(deltas) > 3  # really streamed, word by word
    assert "".join(deltas) == out.text == "Thought: look it up\nAction: search\nAction Input: capital"
    assert out.usage.completion_tokens == len(out.text.split()) and out.ttft_s is not None


def test_sse_framing_finish_and_usage_chunk() -> None:
    model = ScriptedModel(["alpha beta gamma"])
    with served(model) as srv:
        response = post(
            srv,
            {"messages": [{"role": "user", "content": "go on"}], "stream": True, "max_tokens": 2,
             "stream_options": {"include_usage": True}},
        )  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == NAME for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "alpha beta gamma"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
    }


def test_streaming_with_n_sends_every_choice() -> None:
    model = ScriptedModel(["first one", "second"])
    with served(model) as srv:
        response = post(srv, {"messages": [{"role": "user", "content": "q"}], "stream": True, "n": 2})
    chunks = [json.loads(p) for p in sse_payloads(response.text)[:-1]]
    texts = {0: "", 1: ""}
    for c in chunks:
        for choice in c["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: "first one", 1: "second"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n: Input should be greater than or equal to 1"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5}, "only top_p=1 is supported"),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, "tools[0] must be"),
        ({"prompt": "hi"}, "messages: Field required"),
    ],
)
def test_bad_requests_get_400_with_an_openai_error(body: dict, fragment: str) -> None:
    model = ScriptedModel([])
    with served(model) as srv:
        response = post(srv, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"
    assert model.history == []  # the model never ran


def test_malformed_json_and_unknown_routes() -> None:
    with served(ScriptedModel([])) as srv:
        broken = httpx.post(
            f"{srv.base_url}/chat/completions", content=b'{"messages": [', headers={"content-type": "application/json"}
        )
        missing = httpx.get(f"{srv.base_url}/completions")
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]["message"]
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_our_client_reports_the_servers_400_message() -> None:
    with served(ScriptedModel([])) as srv, pytest.raises(ModelCallError) as caught:
        client(srv).generate([{"role": "wizard", "content": "hi"}])  # type: ignore[list-item]
    assert caught.value.kind == "http_4xx" and "HTTP 400" in str(caught.value) and "role" in str(caught.value)


def test_another_model_name_is_404() -> None:
    with served(ScriptedModel(["x"])) as srv, pytest.raises(ModelCallError) as caught:
        client(srv, name="gpt-4o").generate([user("hi")])
    assert "HTTP 404" in str(caught.value) and "this server serves `student`" in str(caught.value)


def test_model_failure_is_500_with_the_message() -> None:
    model = ScriptedModel([])  # exhausted at once: ScriptExhausted
    with served(model) as srv:
        raw = post(srv, {"messages": [{"role": "user", "content": "hi"}]})
        with pytest.raises(ModelCallError) as plain:
            client(srv).generate([user("hi")])
        with pytest.raises(ModelCallError) as streamed:
            client(srv).generate([user("hi")], on_token=lambda _: None)
    assert raw.status_code == 500
    assert raw.json()["error"]["message"] == "ScriptExhausted: scripted model asked for reply 1 of 0"
    assert plain.value.kind == "http_5xx" and "ScriptExhausted" in str(plain.value)
    assert "failed mid-stream" in str(streamed.value) and "ScriptExhausted" in str(streamed.value)


def test_api_key_is_required_when_set() -> None:
    with served(ScriptedModel(["ok"]), api_key="sekret") as srv:
        denied = post(srv, {"messages": [{"role": "user", "content": "hi"}]})
        allowed = post(
            srv, {"messages": [{"role": "user", "content": "hi"}]}, headers={"Authorization": "Bearer sekret"}
        )
        health = httpx.get(f"http://127.0.0.1:{srv.port}/health")
    assert denied.status_code == 401 and "API key" in denied.json()["error"]["message"]
    assert allowed.json()["choices"][0]["message"]["content"] == "ok" and health.json() == {"status": "ok"}


def test_one_request_generates_at_a_time_by_default() -> None:
    model = SlowModel(words=4, pause_s=0.02)
    with served(model) as srv:
        threads = [threading.Thread(target=client(srv).generate, args=([user(f"q{i}")],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert (model.finished, model.peak) == (4, 1)


def test_max_concurrent_lets_requests_overlap() -> None:
    model = SlowModel(words=10, pause_s=0.02)
    with served(model, max_concurrent=4) as srv:
        threads = [threading.Thread(target=client(srv).generate, args=([user(f"q{i}")],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert model.finished == 4 and model.peak > 1


def test_a_client_hanging_up_mid_stream_stops_the_generation() -> None:
    model = SlowModel(words=200, pause_s=0.01)
    with served(model) as srv:
        body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=20) as response:
            for line in response.iter_lines():
                if '"w1 "' in line:
                    break  # leaving the block closes the connection
        deadline = time.monotonic() + 10
        while model.aborted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        after = SlowModel(words=2)
    assert (model.aborted, model.finished) == (1, 0)  # stopped long before 200 words
    with served(after) as srv:
        assert client(srv).generate([user("next")])[0].text == "w0 w1 "


def test_react_graph_runs_through_the_served_endpoint(home: Path) -> None:
    """The student replaces the teacher across processes: the graph only sees an `openai:` spec."""
    corpus = {"capital of australia": "[1] Canberra: Canberra is the capital city of Australia."}

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base for `query`."""
        return corpus.get(query.lower().strip(), "No passages match.")

    student = ScriptedModel([
        'Thought: look it up\nAction: search\nAction Input: {"query": "capital of Australia"}\nObservation: made up',
        "Thought: I know it\nFinal Answer: Canberra",
    ])  # fmt: skip
    with served(student) as srv, TrajectoryStore.open(home / "t.db") as store:
        remote = client(srv)
        graph = build_agent("react", remote, kb=None, recorder=Recorder(store, agent="react"),
                            tools=[Tool.from_function(search)])  # fmt: skip
        out = graph.invoke({"question": "What is the capital of Australia?"})
        [run] = store.runs()
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    assert all(call["stop"] == STOP for call in student.calls)  # the graph's stops crossed the wire
    assert "made up" not in run.steps[0].completion  # the invented observation was cut server-side
    assert "Canberra is the capital city" in student.history[1][-1]["content"]  # the real tool result came back
    assert run.steps[0].model == f"openai:{NAME}"


def test_cli_serves_a_model_in_another_process(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["Hello from another process."]), encoding="utf-8")
    code = "import sys; from agentdistill.commands.serve import serve; serve.main(sys.argv[1:])"
    env = {**os.environ, "AGENTDISTILL_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--model", f"scripted:{replies}", "--port", "0", "--name", "teacher",
         "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert found, line
        model = make_chat_model("openai:teacher", ModelOptions(base_url=found.group(1), max_retries=0, timeout_s=20))
        [out] = model.generate([user("hi")])  # the socket listens before the line is printed: no retry needed
        assert out.text == "Hello from another process."
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode in (0, -15)  # uvicorn shuts down gracefully on SIGTERM


@pytest.mark.integration
def test_served_smollm2_answers_like_the_model_in_process(student_hf_dir: Path) -> None:
    """Real weights over real HTTP: greedy output identical to calling the same model directly."""
    model = make_chat_model(f"hf:{student_hf_dir}", ModelOptions(device="cpu"))
    model = model.variant(reuse_prefix=False)  # type: ignore[attr-defined]  # both sides compute from scratch
    messages = [system("You are a helpful assistant."), user("What is the capital of France? One word.")]
    [local] = model.generate(messages, max_tokens=8, temperature=0)
    deltas: list[str] = []
    with served(model) as srv:
        remote = client(srv)
        [over_http] = remote.generate(messages, max_tokens=8, temperature=0)
        [streamed] = remote.generate(messages, max_tokens=8, temperature=0, on_token=deltas.append)
    assert local.text.strip()
    assert over_http.text == streamed.text == "".join(deltas) == local.text
    assert over_http.finish_reason == local.finish_reason
    assert (over_http.usage.prompt_tokens, over_http.usage.completion_tokens) == (
        local.usage.prompt_tokens,
        local.usage.completion_tokens,
    )


def test_max_tokens_past_the_cap_is_a_400_naming_it() -> None:
    with served(SlowModel(words=2), max_tokens_cap=64) as srv:
        too_many = post(srv, {"messages": [{"role": "user", "content": "go"}], "max_tokens": 10**30})
        assert too_many.status_code == 400
        error = too_many.json()["error"]
        assert error["param"] == "max_tokens" and "at most 64 tokens per request" in error["message"]
        assert post(srv, {"messages": [{"role": "user", "content": "go"}], "max_tokens": 64}).status_code == 200


def test_a_client_leaving_a_plain_request_stops_its_generation_and_frees_the_slot() -> None:
    model = SlowModel(words=2000, pause_s=0.01)
    with served(model) as srv:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{srv.base_url}/chat/completions", json={"messages": [{"role": "user", "content": "go"}]},
                       timeout=0.5)  # fmt: skip
        deadline = time.monotonic() + 10
        while model.aborted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (model.aborted, model.finished) == (1, 0)  # not the 20 s the 2000 words would take
        model.words = 2
        started = time.monotonic()
        assert client(srv).generate([user("next")])[0].text == "w0 w1 "  # the one slot is free again
        assert time.monotonic() - started < 5


SLOW_SERVER = """
import sys, time
from agentdistill.distill.serve import serve
from agentdistill.models.base import Completion, StopStreamer, Usage

class Endless:
    spec = "endless:test"
    def generate(self, messages, *, stop=(), max_tokens=512, temperature=0.0, n=1, seed=None, on_token=None):
        streamer = StopStreamer(stop, on_token)
        for i in range(100_000):
            time.sleep(0.01)
            streamer.feed("w ")
        return [Completion(text=streamer.finish(), usage=Usage(1, 1))]

serve(Endless(), port=0, log_level="warning", api_key=sys.argv[1] if len(sys.argv) > 1 else None,
      on_ready=lambda url: print(url, file=sys.stderr, flush=True))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_server_within_five_seconds_mid_generation(sig: str) -> None:
    import signal

    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVER], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        base_url = proc.stderr.readline().strip()
        waiting = threading.Thread(
            target=lambda: httpx.post(f"{base_url}/chat/completions", timeout=60,
                                      json={"messages": [{"role": "user", "content": "go"}], "max_tokens": 8000}),
        )  # fmt: skip
        waiting.start()
        time.sleep(1.0)  # the generation is under way
        started = time.monotonic()
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=5)
        assert time.monotonic() - started < 5
        waiting.join(timeout=5)
    finally:
        proc.kill()
        proc.wait()


def test_the_cli_reads_the_api_key_from_the_environment_or_a_file(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["ok"] * 4), encoding="utf-8")
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    code = "import sys; from agentdistill.commands.serve import serve; serve.main(sys.argv[1:])"
    for extra, env_key, key in (([], "from-env", "from-env"), (["--api-key-file", str(key_file)], None, "from-file")):
        env = {**os.environ, "AGENTDISTILL_HOME": str(tmp_path)}
        env.pop("AGENTDISTILL_API_KEY", None)
        if env_key:
            env["AGENTDISTILL_API_KEY"] = env_key
        proc = subprocess.Popen([sys.executable, "-c", code, "--model", f"scripted:{replies}", "--port", "0",
                                 "--name", NAME, "--log-level", "warning", *extra],
                                stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            found = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
            assert found, line
            url = f"{found.group(1)}/chat/completions"
            body = {"messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(url, json=body, timeout=20).status_code == 401
            answer = httpx.post(url, json=body, timeout=20, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "ok"
            assert key not in " ".join(proc.args)  # type: ignore[arg-type]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
