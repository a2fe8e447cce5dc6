"""The chat area over FastAPI's TestClient: turns on scripted models, their SSE events, stop, threads, guards.

The TestClient runs each request to its end before handing back the response, so a test reads a turn's event
stream once the turn is over (the log replays it whole) and stops a turn from the test thread while it runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agentdistill.commands.chat import chat
from agentdistill.config import Settings
from agentdistill.memory.threads import ThreadIndex
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ChatModel
from agentdistill.models.base import Completion, Message, TokenCallback, Usage
from agentdistill.web.app import create_app
from agentdistill.web.chat_turns import ChatService
from agentdistill.web.security import UIConfig

EVALUATE = 'Thought: I compute it.\nAction: evaluate\nAction Input: {"expression": "2^10 + 1"}'
XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]

Client = tuple[TestClient, dict[str, str]]


def script(home: Path, replies: Sequence[str], name: str = "script.json") -> str:
    path = home / name
    path.write_text(json.dumps(list(replies)), encoding="utf-8")
    return f"scripted:{path}"


@pytest.fixture
def make_client(home: Path) -> Iterator[Callable[..., Client]]:
    """A client of a fresh app over the test's home (optionally with the chat's models made by `make_model`)."""
    clients: list[TestClient] = []

    def make(make_model: Callable[[str], ChatModel] | None = None) -> Client:
        app = create_app(Settings(home=home), UIConfig())
        if make_model is not None:
            app.state.chat = ChatService(app.state.web.settings, make_model=make_model)
        client = TestClient(app)
        client.__enter__()  # runs the lifespan, whose end closes the chat's stores
        clients.append(client)
        return client, {"X-CSRF-Token": app.state.web.ui.csrf_secret}

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def events(client: TestClient, turn_id: str, last_event_id: str | None = None) -> list[dict[str, Any]]:
    """The turn's SSE events as dicts (the `id` and `event` fields of each frame checked against its data)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    response = client.get(f"/api/chat/turns/{turn_id}/events", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    out = []
    for frame in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":"))
        data = json.loads(fields["data"])
        assert fields["event"] == data["kind"] and isinstance(data["t"], float)
        out.append({"id": int(fields["id"]), **data})
    return out


def ask(client: Client, question: str, **fields: str) -> dict[str, Any]:
    """POST a turn; its 202 body."""
    http, headers = client
    response = http.post("/api/chat/turns", json={"question": question, "kb": "none", **fields}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_react_turn_streams_its_tool_step_and_answer_and_the_thread_remembers_it(
    home: Path, make_client: Callable[..., Client]
) -> None:
    model = script(home, [EVALUATE, "Thought: done\nFinal Answer: 1025", "Final Answer: 1026"])
    client = make_client()
    first = ask(client, "What is 2^10 + 1?", model=model)
    got = events(client[0], first["turn_id"])
    assert [e["id"] for e in got] == list(range(len(got)))
    tokens = "".join(e["text"] for e in got if e["kind"] == "token")
    assert tokens.startswith("Thought: I compute it.\nAction: evaluate") and "Final Answer: 1025" in tokens
    [tool] = [e["step"] for e in got if e["kind"] == "step" and e["step"]["kind"] == "tool"]
    assert (tool["tool"], tool["args"]) == ("evaluate", {"expression": "2^10 + 1"}) and "1025" in tool["observation"]
    answer = got[-1]
    assert answer["kind"] == "answer" and (answer["answer"], answer["status"]) == ("1025", "ok")
    assert (answer["thread"], answer["steps"], answer["tool_calls"]) == (first["thread"], 2, 1)
    assert [e["t"] for e in got] == sorted(e["t"] for e in got)

    with TrajectoryStore.open(home / "trajectories.db") as store:
        run = store.get(answer["run_id"])
    assert (run.agent, run.status, run.answer) == ("react", "ok", "1025")
    assert run.meta == {"interface": "ui", "thread_id": first["thread"], "turn": 0}
    index = ThreadIndex(home / "threads.db")
    assert [(r[0], r[1], r[2], r[3]) for r in index.rows()] == [(first["thread"], "react", "What is 2^10 + 1?", 1)]
    index.close()

    second = ask(client, "and one more?", model=model, thread=first["thread"])
    assert events(client[0], second["turn_id"])[-1]["answer"] == "1026"
    with TrajectoryStore.open(home / "trajectories.db") as store:
        later = store.get(events(client[0], second["turn_id"])[-1]["run_id"])
    assert "Q: What is 2^10 + 1?\nA: 1025" in later.steps[0].messages_in[1]["content"]  # the first turn's history
    assert len(client[0].app.state.chat.agents) == 1  # the second turn reused the built agent (and its script)
    page = client[0].get(f"/chat?thread={first['thread']}").text
    assert page.index("What is 2^10 + 1?") < page.index("1025") < page.index("and one more?") < page.index("1026")


def test_a_late_reader_gets_every_event_and_last_event_id_resumes_after_it(
    home: Path, make_client: Callable[..., Client]
) -> None:
    client = make_client()
    turn = ask(client, "hi", model=script(home, ["Final Answer: hello"]))
    time.sleep(0.2)  # over before anyone listens
    whole = events(client[0], turn["turn_id"])
    assert whole[-1]["answer"] == "hello" and whole[0]["kind"] == "token"
    assert events(client[0], turn["turn_id"], last_event_id="1") == whole[2:]
    assert client[0].get("/api/chat/turns/nope/events").status_code == 404


class SlowModel:
    """Streams `tokens` words 10 ms apart (the first call only); later calls answer at once."""

    spec = "slow:test"

    def __init__(self, tokens: int = 300) -> None:
        self.tokens = tokens
        self.streaming = threading.Event()
        self.calls = 0
        self.sent = 0

    def generate(
        self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 512,
        temperature: float = 0.0, n: int = 1, seed: int | None = None, on_token: TokenCallback | None = None,
    ) -> list[Completion]:  # fmt: skip
        self.calls += 1
        if self.calls > 1:
            return [Completion(text="Final Answer: fine", usage=Usage(1, 3))]
        for i in range(self.tokens):
            if on_token is not None:
                on_token(f"word{i} ")
            self.sent += 1
            if i == 2:
                self.streaming.set()
            time.sleep(0.01)
        return [Completion(text="Final Answer: too late", usage=Usage(1, 3))]


def test_stop_ends_the_turn_at_the_next_token_and_the_thread_takes_the_next_message(
    home: Path, make_client: Callable[..., Client]
) -> None:
    model = SlowModel()
    client = make_client(make_model=lambda spec: model)
    http, headers = client
    turn = ask(client, "count slowly", model="slow:test")
    assert model.streaming.wait(10)
    same_thread = {"question": "and?", "thread": turn["thread"], "kb": "none"}
    busy = http.post("/api/chat/turns", json=same_thread, headers=headers)
    assert busy.status_code == 409 and busy.json()["field"] == "thread"
    assert http.post(f"/api/chat/turns/{turn['turn_id']}/stop", headers=headers).json() == {"stopping": True}
    got = events(http, turn["turn_id"])
    answer = got[-1]
    assert (answer["kind"], answer["status"], answer["answer"]) == ("answer", "interrupted", None)
    assert 3 <= len([e for e in got if e["kind"] == "token"]) < model.tokens and model.sent < model.tokens
    with TrajectoryStore.open(home / "trajectories.db") as store:
        run = store.get(answer["run_id"])
    assert (run.status, run.error.kind if run.error else None) == ("error", "interrupted")
    assert http.post(f"/api/chat/turns/{turn['turn_id']}/stop", headers=headers).json() == {"stopping": False}

    again = ask(client, "are you there?", model="slow:test", thread=turn["thread"])
    last = events(http, again["turn_id"])[-1]
    assert (last["status"], last["answer"], last["thread"]) == ("ok", "fine", turn["thread"])
    page = http.get(f"/chat?thread={turn['thread']}").text
    assert "are you there?" in page and "count slowly" not in page  # a stopped turn is not in the history


def test_posts_without_the_csrf_token_are_refused(home: Path, make_client: Callable[..., Client]) -> None:
    http, headers = make_client()
    body = {"question": "hi", "model": script(home, ["Final Answer: hello"]), "kb": "none"}
    assert http.post("/api/chat/turns", json=body).status_code == 403
    assert http.post("/api/chat/turns", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert http.post("/api/chat/turns/x/stop").status_code == 403
    assert not (home / "trajectories.db").exists() or http.app.state.chat.store.count() == 0


def test_markup_in_replies_and_questions_stays_text(home: Path, make_client: Callable[..., Client]) -> None:
    client = make_client()
    model = script(home, [f"Final Answer: {XSS[0]} {XSS[1]}", f"Final Answer: {XSS[1]}"])
    first = ask(client, XSS[1], model=model)
    got = events(client[0], first["turn_id"])
    assert got[-1]["answer"] == f"{XSS[0]} {XSS[1]}"  # the payload travels as JSON data, for textContent
    ask(client, XSS[0], model=model, thread=first["thread"])
    time.sleep(0.2)
    for url in (f"/chat?thread={first['thread']}", "/chat"):
        page = client[0].get(url).text
        for payload in XSS:
            assert payload not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the thread list's first question, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client[0].get(f"/chat?thread={first['thread']}").text
    script_text = (Path(__file__).parents[2] / "agentdistill" / "web" / "static" / "chat.js").read_text()
    assert "innerHTML" not in script_text and "insertAdjacentHTML" not in script_text


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"agent": "reactt", "question": "hi"}, "agent", "choose one of react, codeact"),
        ({"question": "   "}, "question", "the question is empty"),
        ({"question": "hi", "model": "bogus:x"}, "model", "the prefix must be one of"),
        ({"question": "hi", "model": "scripted:no/such.json"}, "model", "does not exist"),
        ({"question": "hi", "kb": "nosuchkb"}, "kb", "agentdistill kb build nosuchkb"),
        ({"question": "hi", "catalog": "/tmp/x"}, "catalog", "a field of the recbot agent"),
        ({"question": 5}, "question", "question must be text"),
        (["not", "an", "object"], "body", "send a JSON object"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    make_client: Callable[..., Client], body: Any, field: str, says: str
) -> None:
    http, headers = make_client()
    response = http.post("/api/chat/turns", json=body, headers=headers)
    assert response.status_code == 400 and response.json()["field"] == field
    assert says in response.json()["error"]


def test_a_terminal_thread_resumes_in_the_web_and_the_other_way_round(
    home: Path, make_client: Callable[..., Client]
) -> None:
    cli = ["--model", script(home, ["Final Answer: Canberra"], "a.json"), "--kb", "none", "--thread", "t1"]
    CliRunner().invoke(chat, cli, input="capital of Australia?\n", catch_exceptions=False)
    client = make_client()
    page = client[0].get("/chat?thread=t1").text
    assert 'data-thread-id="t1"' in page and "capital of Australia?" in page and "Canberra" in page
    assert '<option value="react" selected>' in page
    mismatch = client[0].post(
        "/api/chat/turns", json={"question": "hi", "agent": "cot", "thread": "t1"}, headers=client[1]
    )
    assert mismatch.status_code == 400 and mismatch.json()["field"] == "agent"
    assert "react agent, not cot" in mismatch.json()["error"]

    turn = ask(client, "and its population?", model=script(home, ["Final Answer: 467,000"], "b.json"), thread="t1")
    assert events(client[0], turn["turn_id"])[-1]["answer"] == "467,000"
    cli[1] = script(home, ["Final Answer: 26 million"], "c.json")
    again = CliRunner().invoke(chat, cli, input="and of the country?\n/exit\n", catch_exceptions=False)
    assert "thread t1 (resumed, 2 earlier turns)" in again.output and "answer: 26 million" in again.output
    with sqlite3.connect(home / "threads.db") as db:
        assert db.execute("SELECT turns FROM chat_threads WHERE thread_id='t1'").fetchone() == (3,)


def test_the_page_has_the_form_and_lists_threads_newest_first(home: Path, make_client: Callable[..., Client]) -> None:
    client = make_client()
    model = script(home, ["Final Answer: a", "Final Answer: b"])
    first = ask(client, "first thread", model=model)
    events(client[0], first["turn_id"])
    second = ask(client, "second thread", model=model)
    events(client[0], second["turn_id"])
    page = client[0].get("/chat").text
    ids = ("chat-form", "agent", "model", "question", "send", "stop", "new-thread", "threads", "messages", "status")
    assert all(f'id="{name}"' in page for name in ids) and 'src="/static/chat.js"' in page
    assert f'value="{Settings(home=home).model}"' in page
    assert page.index(f'data-thread-id="{second["thread"]}"') < page.index(f'data-thread-id="{first["thread"]}"')
    assert f'href="/chat?thread={first["thread"]}"' in page
    assert client[0].get("/static/chat.js").status_code == 200


def test_paths_outside_the_home_are_refused_naming_the_field(
    home: Path, make_client: Callable[..., Client], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "script.json").write_text(json.dumps(["Final Answer: x"]), encoding="utf-8")
    http, headers = make_client()
    cases = [({"model": f"scripted:{outside / 'script.json'}"}, "model"),
             ({"model": "hf:../elsewhere"}, "model"),
             ({"agent": "recbot", "catalog": str(outside)}, "catalog"),
             ({"agent": "materials", "materials": "../elsewhere"}, "materials")]  # fmt: skip
    for fields, field in cases:
        response = http.post("/api/chat/turns", json={"question": "hi", "kb": "none", **fields}, headers=headers)
        assert response.status_code == 400 and response.json()["field"] == field, (fields, response.text)
        assert "outside the home" in response.json()["error"]
    # a name, not a path: an OpenAI-compatible model id may hold a slash
    from agentdistill.web.chat import parse_turn

    key, _, _ = parse_turn({"question": "hi", "model": "openai:Qwen/Qwen2.5-7B"}, "local:x", home)
    assert key.model == "openai:Qwen/Qwen2.5-7B"
