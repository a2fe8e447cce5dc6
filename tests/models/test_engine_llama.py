"""The engine with the real llama-server (`agentdistill engine build`) on the packaged SmolLM2-135M.

Skipped where llama-server is not built or llama.cpp does not run (the probe's reason is the skip reason).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.models import ModelOptions, make_chat_model, system, user
from agentdistill.models.engine import server_binary
from agentdistill.models.engine_manager import stop_engine
from agentdistill.models.engine_model import EngineChatModel, open_model
from agentdistill.models.gguf_backend import gguf_unavailable_reason

pytestmark = pytest.mark.integration

PROMPTS = [
    [system("You are a helpful assistant."), user("Count from 1 to 10, separated by commas.")],
    [user("What is the capital of France? Answer in one sentence.")],
    [system("Answer with Thought/Action lines."), user("Question: Who directed Jaws?")],
]


@pytest.fixture(scope="module", autouse=True)
def needs_llama_server() -> None:
    if server_binary() is None:
        pytest.skip("llama-server is not built (agentdistill engine build)")
    reason = gguf_unavailable_reason()
    if reason:
        pytest.skip(f"llama.cpp is unusable here: {reason}")


def test_greedy_tokens_through_the_engine_equal_the_in_process_ones(home: Path) -> None:
    inproc = make_chat_model("gguf:smollm2-135m", ModelOptions(threads=2))
    with open_model("gguf:smollm2-135m", ModelOptions(threads=2), concurrency=2, engine="server", home=home) as engine:
        assert isinstance(engine, EngineChatModel)
        for messages in PROMPTS:
            [ours] = inproc.generate(messages, max_tokens=40)
            [served] = engine.generate(messages, max_tokens=40)
            assert served.text == ours.text
            assert served.usage == ours.usage  # same template, same prompt tokens, same count generated
            # token-exact records: the server's sampled ids (from its logprobs entries) are the in-process ones
            assert served.token_ids == ours.token_ids and served.token_ids
            assert served.tokenizer == ours.tokenizer == inproc.tokenizer and served.logprob is not None
        [cut] = engine.generate(PROMPTS[0], max_tokens=40, stop=[", 4"])
        assert cut.text == "1, 2, 3" and cut.finish_reason == "stop"
        assert inproc._detokenize(cut.token_ids) == "1, 2, 3"
        streamed: list[str] = []
        [whole] = engine.generate(PROMPTS[1], max_tokens=20, on_token=streamed.append)
        assert "".join(streamed) == whole.text and len(streamed) > 1


def test_concurrent_requests_all_come_back_complete(home: Path) -> None:
    with open_model("gguf:smollm2-135m", ModelOptions(threads=2), concurrency=4, engine="server", home=home) as engine:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda m: engine.generate(m, max_tokens=24)[0], PROMPTS * 2))
    assert len(replies) == 6 and all(r.text and r.usage.completion_tokens > 0 for r in replies)
    assert replies[1].text == replies[4].text  # the same question twice, answered the same


def test_engine_cli_start_status_stop(home: Path) -> None:
    runner = CliRunner()
    try:
        started = runner.invoke(cli, ["engine", "start", "smollm2-135m", "--parallel", "2", "--json"])
        assert started.exit_code == 0, started.output
        info = json.loads(started.stdout)
        assert info["url"].startswith("http://127.0.0.1:") and info["parallel"] == 2
        listed = json.loads(runner.invoke(cli, ["engine", "status", "--json"]).stdout)
        assert [row["model"] for row in listed] == ["smollm2-135m"] and listed[0]["persistent"] is True
        again = json.loads(runner.invoke(cli, ["engine", "start", "gguf:smollm2-135m", "--json"]).stdout)
        assert again["pid"] == info["pid"]  # reused
        stopped = runner.invoke(cli, ["engine", "stop", "local:smollm2-135m"])
        assert "stopped smollm2-135m" in stopped.output
        assert json.loads(runner.invoke(cli, ["engine", "status", "--json"]).stdout) == []
    finally:  # a persistent engine outlives a failed test otherwise
        stop_engine(home)
