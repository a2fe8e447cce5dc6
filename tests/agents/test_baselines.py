"""The one-call baselines: `cot` (zero-shot chain of thought) and `reader` (one search, one answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.agents.common import final_answer_text
from agentdistill.agents.factory import KnowledgeBaseRequired, build_agent, metric_options
from agentdistill.errors import ConfigError
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder


@pytest.fixture
def store(home: Path) -> TrajectoryStore:
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("48 / 2 = 24 in May.\n48 + 24 = 72.\nFinal Answer: 72", "72"),
        ("... so **Final Answer: $18.00**.", "$18.00"),
        ("final answer: Canberra.\nQuestion: next one", "Canberra"),
        ("First 3, then Final Answer: 5\nWait, Final Answer: 6", "6"),
        ("The total is \\boxed{42}.", "42"),
        ("Some reasoning.\nThe answer is 10 apples", "The answer is 10 apples"),
        ("", ""),
    ],
)
def test_final_answer_text(text: str, answer: str) -> None:
    assert final_answer_text(text) == answer


def test_cot_makes_one_call_and_records_it(store: TrajectoryStore) -> None:
    model = ScriptedModel(["Half of 48 is 24. 48 + 24 = 72.\nFinal Answer: 72\nProblem: another one"])
    graph = build_agent("cot", model, kb=None, recorder=Recorder(store, agent="cot"))
    out = graph.invoke({"question": "Natalia sold 48 clips in April and half as many in May. How many in all?"})
    assert (out["answer"], out["status"]) == ("72", "ok")
    assert "Problem: another" not in out["reasoning"]  # the stop cut the invented next exercise
    [prompt] = model.history
    assert len(prompt) == 1 and "Final Answer: <number>" in prompt[0]["content"]
    run = store.get(out["run_id"])
    assert run.answer == "72" and run.model_calls == 1 and run.status == "ok"


def test_cot_words_the_prompt_by_the_suites_metric() -> None:
    assert metric_options("cot", "qa", {}) == {"task": "qa"}
    assert metric_options("cot", "math", {"task": "qa"}) == {"task": "qa"}  # the user's choice wins
    assert metric_options("codeact", "math", {"sag_n": 2}) == {"sag_n": 2}
    model = ScriptedModel(["Jaws came out in 1975 and Spielberg directed it.\nFinal Answer: Steven Spielberg"])
    out = build_agent("cot", model, kb=None, recorder=None, task="qa").invoke({"question": "Who directed Jaws?"})
    assert out["answer"] == "Steven Spielberg" and "short phrase" in model.history[0][0]["content"]
    with pytest.raises(ConfigError, match="task"):
        build_agent("cot", model, kb=None, recorder=None, task="poetry")


def test_reader_searches_once_then_answers_from_the_passages(home: Path, store: TrajectoryStore) -> None:
    kb = KnowledgeStore.create("t", home / "kb", embedder=HashingEmbedder(64))
    docs = [{"id": "c", "title": "Canberra", "text": "Canberra is the capital city of Australia."},
            {"id": "s", "title": "Sydney", "text": "Sydney is the largest city of Australia."}]  # fmt: skip
    kb.add(docs, progress=False)
    model = ScriptedModel(["Passage [1] says so.\nFinal Answer: Canberra"])
    out = build_agent("reader", model, kb=kb, recorder=Recorder(store, agent="reader"), k=2).invoke(
        {"question": "What is the capital of Australia?"}
    )
    assert out["answer"] == "Canberra"
    prompt = model.history[0][0]["content"]
    assert "[1] Canberra: Canberra is the capital city of Australia." in prompt and "[2] Sydney" in prompt
    run = store.get(out["run_id"])
    assert run.model_calls == 1 and [s.kind for s in run.steps] == ["tool", "model"]
    with pytest.raises(KnowledgeBaseRequired):
        build_agent("reader", model, kb=None, recorder=None)


def test_codeact_ftp_and_sag_are_plain_cli_options() -> None:
    from agentdistill.agents.codeact import FirstThought, SAGConfig
    from agentdistill.agents.factory import codeact_options

    got = codeact_options({"ftp": True, "ftp_tokens": 96, "sag_n": 4, "sag_temperature": 0.5, "max_tokens": 256})
    assert isinstance(got["first_thought"], FirstThought) and got["first_thought"].max_tokens == 96
    assert got["sag"] == SAGConfig(n=4, temperature=0.5) and got["max_tokens"] == 256
    assert codeact_options({"ftp": "false", "sag_n": 1}) == {}
    with pytest.raises(ConfigError, match="ftp"):
        codeact_options({"ftp": "maybe"})
    model = ScriptedModel(["The clips: 48 + 24.", "Thought: add\n```python\nfinal_answer(48 + 24)\n```"])
    out = build_agent("codeact", model, kb=None, recorder=None, ftp=True).invoke({"question": "48 and half as many?"})
    assert out["answer"] == "72" and "Your first thought" in model.history[1][-1]["content"]


def test_cot_math_falls_back_to_the_last_number_written() -> None:
    model = ScriptedModel(["Each sprint is 60 m, 3 sprints 3 times a week: 60 * 9 = 540 meters in all."])
    out = build_agent("cot", model, kb=None, recorder=None).invoke({"question": "How many meters a week?"})
    assert out["answer"] == "540"


def test_codeact_resamples_after_an_unparsable_reply_when_asked() -> None:
    replies = ["Thought: the answer is 5.", "Thought: add\n```python\nfinal_answer(2 + 3)\n```"]
    model = ScriptedModel(replies)
    out = build_agent("codeact", model, kb=None, recorder=None, resample=True).invoke({"question": "2 + 3?"})
    assert out["answer"] == "5"
    assert [c["temperature"] for c in model.calls] == [0.0, 0.7]  # greedy, then sampled after the parse error
    greedy = ScriptedModel(replies)
    build_agent("codeact", greedy, kb=None, recorder=None).invoke({"question": "2 + 3?"})
    assert [c["temperature"] for c in greedy.calls] == [0.0, 0.0]


def test_codeact_answer_hint_tells_a_stalled_model_how_to_finish() -> None:
    replies = [
        "Thought: compute\n```python\nprint(48 + 24)\n```",
        "Thought: The total is 72 clips.",
        "```python\nfinal_answer(72)\n```",
    ]
    model = ScriptedModel(replies)
    out = build_agent("codeact", model, kb=None, recorder=None, answer_hint=True).invoke({"question": "48 and 24?"})
    assert out["answer"] == "72"
    hint = model.history[2][-1]["content"]
    assert "If 72 is the answer to the task, reply with exactly:" in hint and "final_answer(72)" in hint


def test_codeact_few_shot_examples_come_from_a_named_template() -> None:
    from agentdistill.agents.common import PromptNotFound
    from agentdistill.agents.factory import codeact_options, prompt_hash

    got = codeact_options({"examples": "examples_math"})
    assert got["examples"].startswith("More examples") and "final_answer(80)" in got["examples"]
    with pytest.raises(ConfigError, match="examples.*prompt template"):
        codeact_options({"examples": 3})
    with pytest.raises(PromptNotFound, match="no prompt template 'examples_nope'"):
        codeact_options({"examples": "examples_nope"})
    model = ScriptedModel(["Thought: add\n```python\nfinal_answer(2 + 3)\n```"])
    out = build_agent("codeact", model, kb=None, recorder=None, examples="examples_math").invoke({"question": "2 + 3?"})
    system_prompt = model.history[0][0]["content"]
    assert out["answer"] == "5" and "More examples" in system_prompt and "How many muffins" in system_prompt
    plain = ScriptedModel(["Thought: add\n```python\nfinal_answer(2 + 3)\n```"])
    build_agent("codeact", plain, kb=None, recorder=None).invoke({"question": "2 + 3?"})
    assert "More examples" not in plain.history[0][0]["content"]
    assert prompt_hash("codeact", {"examples": "examples_math"}) != prompt_hash("codeact", {})
