"""`chat` and `ask` through CliRunner with `--model scripted:FILE`, asserting output and the real SQLite rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.agents.common import EmptyQuestion
from agentdistill.commands.chat import ask, chat
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.knowledge_bases import build_store, sample_questions_path
from agentdistill.memory.store_files import StoreNotFound
from agentdistill.memory.threads import ThreadAgentMismatch
from agentdistill.memory.trajectories import TrajectoryStore

EVALUATE = 'Thought: I compute it.\nAction: evaluate\nAction Input: {"expression": "2^10 + 1"}'


def script(home: Path, replies: list[str], name: str = "script.json") -> str:
    path = home / name
    path.write_text(json.dumps(replies), encoding="utf-8")
    return f"scripted:{path}"


def invoke(command, args: list[str], stdin: str | None = None):  # noqa: ANN001, ANN201 - click test plumbing
    return CliRunner().invoke(command, args, input=stdin, catch_exceptions=False)


def test_chat_streams_shows_tool_calls_and_records_the_turn(home: Path) -> None:
    model = script(home, [EVALUATE, "Thought: done\nFinal Answer: 1025"])
    result = invoke(chat, ["--model", model, "--kb", "none", "--thread", "t1"], "What is 2^10 + 1?\n/threads\n/exit\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "thread t1 (new)" in out
    assert 'Thought: I compute it.\nAction: evaluate\nAction Input: {"expression": "2^10 + 1"}\n' in out  # streamed
    assert '  -> evaluate(expression="2^10 + 1")\n' in out and "1025" in out.split("-> evaluate")[1]
    assert "answer: 1025\n" in out and "2 model calls | 1 tool calls" in out
    [listed] = [line for line in out.splitlines() if " turns " in line]
    assert listed.startswith("you> * t1  react     1 turns") and listed.endswith("What is 2^10 + 1?")
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run] = store.runs()
    assert (run.agent, run.status, run.answer, run.question) == ("react", "ok", "1025", "What is 2^10 + 1?")
    assert run.meta == {"thread_id": "t1", "turn": 0} and [s.kind for s in run.steps] == ["model", "tool", "model"]
    with sqlite3.connect(home / "threads.db") as db:
        assert db.execute("SELECT count(*) FROM checkpoints WHERE thread_id='t1'").fetchone()[0] > 0
        assert db.execute("SELECT agent, first_question, turns FROM chat_threads").fetchall() == [
            ("react", "What is 2^10 + 1?", 1)
        ]


def test_a_thread_survives_a_restart(home: Path) -> None:
    first = invoke(chat, ["--model", script(home, ["Final Answer: Canberra"], "a.json"), "--kb", "none", "--thread",
                          "t1"], "capital of Australia?\n")  # fmt: skip
    assert "answer: Canberra" in first.output
    second = invoke(chat, ["--model", script(home, ["Final Answer: 467,000"], "b.json"), "--kb", "none", "--thread",
                           "t1"], "and its population?\n/exit\n")  # fmt: skip
    assert "thread t1 (resumed, 1 earlier turns)" in second.output and "answer: 467,000" in second.output
    with TrajectoryStore.open(home / "trajectories.db") as store:
        runs = store.runs()
    assert [r.meta["turn"] for r in runs] == [0, 1]
    prompt = runs[1].steps[0].messages_in[1]["content"]
    assert (
        prompt
        == "Earlier in this conversation:\nQ: capital of Australia?\nA: Canberra\n\nQuestion: and its population?"
    )


def test_quiet_shows_only_the_answer_and_new_starts_another_thread(home: Path) -> None:
    model = script(home, [EVALUATE, "Final Answer: 1025", "Final Answer: hello"])
    result = invoke(chat, ["--model", model, "--kb", "none", "--quiet"], "2^10+1?\n/new\nhi\n/threads\n/bogus\n")
    out = result.output
    assert "Thought:" not in out and "->" not in out and "model calls" not in out
    assert "1025\n" in out and "hello\n" in out and "new thread " in out
    assert "unknown command '/bogus'" in out
    listed = [line for line in out.splitlines() if " turns " in line]
    assert len(listed) == 2 and listed[0].startswith("you> * ") and "hi" in listed[0] and "2^10+1?" in listed[1]
    with TrajectoryStore.open(home / "trajectories.db") as store:
        threads = {r.meta["thread_id"] for r in store.runs()}
    assert len(threads) == 2


def test_a_thread_belongs_to_its_agent(home: Path) -> None:
    invoke(chat, ["--model", script(home, ["Final Answer: x"]), "--kb", "none", "--thread", "t1"], "q?\n")
    with pytest.raises(ThreadAgentMismatch, match="--agent react --thread t1"):
        invoke(chat, ["--agent", "codeact", "--model", script(home, []), "--kb", "none", "--thread", "t1"], "")


def test_ask_prints_the_answer(home: Path) -> None:
    result = invoke(ask, ["What is 2^10 + 1?", "--model", script(home, [EVALUATE, "Final Answer: 1025"]), "--kb",
                          "none"])  # fmt: skip
    assert (result.exit_code, result.stdout) == (0, "1025\n")
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run] = store.runs()
    assert (run.status, run.answer, run.meta) == ("ok", "1025", {"interface": "ask"})


def test_ask_json(home: Path) -> None:
    result = invoke(ask, ["2^10 + 1?", "--json", "--model", script(home, [EVALUATE, "Final Answer: 1025"]), "--kb",
                          "none"])  # fmt: skip
    data = json.loads(result.stdout)
    assert (data["answer"], data["status"], data["steps"], data["tool_calls"], data["error"]) == (
        "1025",
        "ok",
        2,
        1,
        None,
    )
    assert data["tokens"] == data["prompt_tokens"] + data["completion_tokens"] > 0 and data["latency_s"] >= 0
    with TrajectoryStore.open(home / "trajectories.db") as store:
        assert store.get(data["run_id"]).answer == "1025"


def test_ask_without_an_answer_exits_1_with_the_reason(home: Path) -> None:
    result = invoke(ask, ["q?", "--max-steps", "2", "--model", script(home, ["no format", "still none"]), "--kb",
                          "none"])  # fmt: skip
    assert result.exit_code == 1 and result.stdout == ""
    assert "[max_steps] stopped after 2 steps" in result.stderr


def test_ask_empty_question_is_a_clear_error(home: Path) -> None:
    with pytest.raises(EmptyQuestion):
        invoke(ask, ["  ", "--model", script(home, []), "--kb", "none"])


def test_ask_searches_a_named_knowledge_base(home: Path) -> None:
    docs = [{"id": "c", "title": "Canberra", "text": "Canberra is the capital city of Australia."}]
    build_store("geo", home / "kb", docs, embedder=HashingEmbedder(64), progress=False)
    model = script(home, ['Action: search\nAction Input: {"query": "capital of Australia"}', "Final Answer: Canberra"])
    result = invoke(ask, ["capital of Australia?", "--kb", "geo", "--model", model, "--json"])
    assert json.loads(result.stdout)["answer"] == "Canberra"
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run] = store.runs()
    assert run.steps[1].observation == "[1] Canberra: Canberra is the capital city of Australia."


def test_a_missing_knowledge_base_names_the_fix(home: Path) -> None:
    with pytest.raises(StoreNotFound, match="agentdistill kb build nope"):
        invoke(ask, ["q?", "--kb", "nope", "--model", script(home, [])])


@pytest.mark.integration
def test_the_sample_knowledge_base_is_built_on_first_use(home: Path) -> None:
    question = json.loads(sample_questions_path().read_text(encoding="utf-8").splitlines()[0])
    title = question["supporting_titles"][0]
    action = f'Action: search\nAction Input: {{"query": "{title}"}}'
    result = invoke(ask, [question["question"], "--model", script(home, [action, "Final Answer: x"])])
    assert "building the sample knowledge base" in result.stderr and result.stdout == "x\n"
    assert (home / "kb" / "sample").is_dir()
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run] = store.runs()
    assert f"] {title}:" in run.steps[1].observation  # MiniLM finds the supporting passage by its title
