"""The LAG graph with scripted models, a dict-backed search tool and a real SQLite trajectory store."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.common import EmptyQuestion
from agentdistill.agents.lag import INSUFFICIENT, MissingSearchTool, build_lag_graph
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import Message
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder, Run, Step

JAWS = "Who is the spouse of the director of Jaws?"
PASSAGES = {
    "Jaws (film)": "Jaws is a 1975 American thriller film directed by Steven Spielberg.",
    "Steven Spielberg": "Steven Spielberg's spouse is the actress Kate Capshaw; they married in 1991.",
}


def plan(*subs: tuple[str, str, list[str]]) -> str:
    return json.dumps({"subquestions": [{"id": i, "question": q, "depends_on": d} for i, q, d in subs]})


JAWS_PLAN = plan(("q1", "Who directed Jaws?", []), ("q2", "Who is the spouse of #q1?", ["q1"]))


class DictSearch:
    """A search tool over {title: text}: passages sharing a word (of 4+ letters) with the query, best first."""

    def __init__(self, passages: Mapping[str, str], *, min_overlap: int = 1) -> None:
        self.passages = dict(passages)
        self.min_overlap = min_overlap  # 0 ranks every passage: a tiny per-item store returns all of it
        self.queries: list[str] = []

    def tool(self) -> Tool:
        def search(query: str, k: int = 3) -> str:
            """Search the knowledge base for `query`; return up to k numbered passages with titles."""
            self.queries.append(query)
            words = set(re.findall(r"\w{4,}", query.lower()))
            scored = [
                (len(words & set(re.findall(r"\w{4,}", f"{t} {x}".lower()))), t) for t, x in self.passages.items()
            ]
            hits = [t for score, t in sorted(scored, key=lambda p: -p[0]) if score >= self.min_overlap][:k]
            return "\n".join(f"[{i}] {t}: {self.passages[t]}" for i, t in enumerate(hits, 1)) or "No passages match."

        return Tool.from_function(search)


def last(messages: Sequence[Message]) -> str:
    return messages[-1]["content"]


def open_store(home: Path) -> tuple[TrajectoryStore, Recorder]:
    store = TrajectoryStore.open(home / "t.db")
    return store, Recorder(store, agent="lag")


def events(run: Run, name: str) -> list[Step]:
    return [s for s in run.steps if s.kind == "event" and s.role == name]


def test_second_subquestion_is_rewritten_with_the_first_answer_before_retrieval(home: Path) -> None:
    search = DictSearch(PASSAGES)
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [search.tool()], recorder=recorder).invoke({"question": JAWS})
    assert (out["answer"], out["status"], out["steps"]) == ("Kate Capshaw", "ok", 4)
    assert search.queries == ["Who directed Jaws?", "Who is the spouse of Steven Spielberg?"]
    assert "Question: Who is the spouse of Steven Spielberg?" in last(model.history[2])
    assert "[1] Steven Spielberg: Steven Spielberg's spouse is" in last(model.history[2])
    assert "q2: Who is the spouse of Steven Spielberg? -> Kate Capshaw" in last(model.history[3])
    [run] = store.runs()
    assert (run.status, run.answer, run.model_calls) == ("ok", "Kate Capshaw", 4)
    assert [s.tool for s in run.steps if s.kind == "tool"] == ["search", "search"]
    assert run.steps[0].parsed == json.loads(JAWS_PLAN)


def test_dependency_without_placeholder_is_rewritten_by_the_model_in_one_call(home: Path) -> None:
    search = DictSearch(PASSAGES)
    no_placeholder = plan(("q1", "Who directed Jaws?", []), ("q2", "Who is the director's spouse?", ["q1"]))
    model = ScriptedModel(
        [no_placeholder, "Steven Spielberg", "Who is Steven Spielberg's spouse?\nextra", "Kate Capshaw", "Kate Capshaw"]
    )
    out = build_lag_graph(model, [search.tool()]).invoke({"question": JAWS})
    assert out["answer"] == "Kate Capshaw"
    assert "q1: Steven Spielberg" in last(model.history[2]) and "Question: Who is the director's spouse?" in last(
        model.history[2]
    )
    assert search.queries[1] == "Who is Steven Spielberg's spouse?"
    assert [e["rewrite_by"] for e in out["chain"]] == ["none", "model"]


def test_invalid_json_is_shown_to_the_model_and_a_fenced_retry_is_accepted(home: Path) -> None:
    search = DictSearch(PASSAGES)
    fenced = f"Sorry! Fixed:\n```json\n{JAWS_PLAN}\n```"
    model = ScriptedModel(["q1 = who directed jaws", fenced, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [search.tool()], recorder=recorder).invoke({"question": JAWS})
    assert out["answer"] == "Kate Capshaw" and len(out["faults"]) == 1
    retry = model.history[1]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert retry[1]["content"] == "q1 = who directed jaws" and "no JSON found" in last(retry)
    [run] = store.runs()
    assert run.steps[0].error is not None and run.steps[0].error.kind == "parse_error"
    assert run.steps[1].error is None and run.steps[1].parsed is not None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (plan(("q1", "A?", ["q2"]), ("q2", "B?", ["q1"])), "cycle (q1 -> q2, q2 -> q1)"),
        (plan(("q1", "A?", []), ("q2", "B of #q1?", ["q1", "q3"])), "q2 depends on q3, which is not a sub-question"),
    ],
)
def test_cycles_and_dangling_references_are_rejected_with_the_reason(home: Path, bad: str, message: str) -> None:
    model = ScriptedModel([bad, JAWS_PLAN, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"])
    out = build_lag_graph(model, [DictSearch(PASSAGES).tool()]).invoke({"question": JAWS})
    assert message in last(model.history[1]) and message in out["faults"][0]
    assert out["answer"] == "Kate Capshaw"


def test_after_the_retries_the_question_itself_is_the_only_subquestion(home: Path) -> None:
    search = DictSearch(PASSAGES)
    model = ScriptedModel(["no idea", "still no idea", "Kate Capshaw"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [search.tool()], recorder=recorder, max_decompose_retries=1).invoke({"question": JAWS})
    assert (out["answer"], out["status"], out["steps"]) == ("Kate Capshaw", "ok", 3)  # no synthesis for one hop
    assert search.queries == [JAWS] and len(out["faults"]) == 2
    [run] = store.runs()
    [fault] = events(run, "lag_fault")
    assert fault.data["stage"] == "decompose" and len(fault.data["errors"]) == 2


def test_terminator_stops_with_insufficient_information_without_synthesis(home: Path) -> None:
    search = DictSearch({"Jaws (film)": PASSAGES["Jaws (film)"]})
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "UNANSWERABLE"])  # a synthesis call would exhaust it
    store, recorder = open_store(home)
    out = build_lag_graph(model, [search.tool()], recorder=recorder).invoke({"question": JAWS})
    assert (out["answer"], out["status"], out["terminated"]) == (INSUFFICIENT, "ok", "q2")
    assert model.remaining == 0 and len(model.history) == 3
    [run] = store.runs()
    assert (run.status, run.answer) == ("ok", INSUFFICIENT)
    [stop] = events(run, "terminated")
    assert stop.data["subquestion"] == "q2" and stop.data["question"] == "Who is the spouse of Steven Spielberg?"


def test_read_fallback_answers_from_the_questions_passages_and_the_facts_found(home: Path) -> None:
    search = DictSearch(PASSAGES)
    reply = "Passage 2 names the spouse.\nFinal Answer: Kate Capshaw"
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "UNANSWERABLE", reply])
    store, recorder = open_store(home)
    graph = build_lag_graph(model, [search.tool()], recorder=recorder, on_missing="read", read_k=2)
    out = graph.invoke({"question": JAWS})
    assert (out["answer"], out["status"], out["terminated"]) == ("Kate Capshaw", "ok", "q2")
    assert model.remaining == 0 and search.queries[-1] == JAWS  # the last search is the question itself
    read_prompt = last(model.history[-1])
    assert "- Who directed Jaws? Steven Spielberg" in read_prompt and "Kate Capshaw" in read_prompt
    [run] = store.runs()
    assert (run.status, run.answer) == ("ok", "Kate Capshaw")
    [stop] = events(run, "terminated")
    assert stop.data["then"] == "read"


def test_read_fallback_counts_against_max_steps(home: Path) -> None:
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "UNANSWERABLE"])
    graph = build_lag_graph(model, [DictSearch(PASSAGES).tool()], max_steps=3, on_missing="read")
    out = graph.invoke({"question": JAWS})
    assert (out["status"], out["answer"], model.remaining) == ("max_steps", INSUFFICIENT, 0)


def test_unknown_on_missing_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="on_missing.*'stop' or 'read'"):
        build_lag_graph(ScriptedModel([]), [DictSearch(PASSAGES).tool()], on_missing="guess")


def test_max_steps_bounds_model_calls(home: Path) -> None:
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [DictSearch(PASSAGES).tool()], max_steps=2, recorder=recorder).invoke(
        {"question": JAWS}
    )
    assert (out["status"], out["steps"], out["answer"]) == ("max_steps", 2, None)
    assert len(model.history) == 2
    [run] = store.runs()
    assert run.status == "max_steps" and run.error is not None and "2 steps" in run.error.message


def test_endless_invalid_plans_end_in_max_steps(home: Path) -> None:
    model = ScriptedModel(["{not json"], repeat_last=True)
    out = build_lag_graph(model, [DictSearch(PASSAGES).tool()], max_steps=3, max_decompose_retries=100).invoke(
        {"question": JAWS}
    )
    assert (out["status"], out["steps"], len(out["faults"])) == ("max_steps", 3, 3)


def test_chain_is_recorded_and_returned(home: Path) -> None:
    model = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [DictSearch(PASSAGES).tool()], recorder=recorder).invoke({"question": JAWS})
    assert [(e["id"], e["query"], e["passages"], e["answer"]) for e in out["chain"]] == [
        ("q1", "Who directed Jaws?", ["Jaws (film)"], "Steven Spielberg"),
        ("q2", "Who is the spouse of Steven Spielberg?", ["Steven Spielberg", "Jaws (film)"], "Kate Capshaw"),
    ]
    [run] = store.runs()
    [chain] = events(run, "lag_chain")
    assert chain.data["chain"] == out["chain"] and chain.data["subquestions"] == json.loads(JAWS_PLAN)["subquestions"]
    assert (chain.data["answer"], chain.data["status"], chain.data["terminated"]) == ("Kate Capshaw", "ok", None)
    assert run.steps[-1].role == "lag_chain"


def test_a_raising_search_tool_is_reported_to_the_model(home: Path) -> None:
    def search(query: str) -> str:
        """Search that is down."""
        raise ConnectionError("index offline")

    model = ScriptedModel(['[{"id": "q1", "question": "Who directed Jaws?"}]', "UNANSWERABLE"])
    store, recorder = open_store(home)
    out = build_lag_graph(model, [Tool.from_function(search)], recorder=recorder).invoke({"question": "Jaws?"})
    assert out["answer"] == INSUFFICIENT
    assert "Error: tool 'search' failed: ConnectionError: index offline" in last(model.history[1])
    [run] = store.runs()
    [tool_step] = [s for s in run.steps if s.kind == "tool"]
    assert (
        tool_step.error is not None
        and tool_step.error.kind == "tool_exception"
        and tool_step.tool_args == {"query": "Who directed Jaws?"}
    )


def test_bad_inputs_fail_clearly(home: Path) -> None:
    def lookup(title: str) -> str:
        """Look up a page."""
        return title

    with pytest.raises(MissingSearchTool, match="needs a tool named 'search' \\(got: lookup\\)"):
        build_lag_graph(ScriptedModel([]), [Tool.from_function(lookup)])
    with pytest.raises(ConfigError, match="max_steps"):
        build_lag_graph(ScriptedModel([]), [DictSearch({}).tool()], max_steps=0)
    with pytest.raises(EmptyQuestion):
        build_lag_graph(ScriptedModel([]), [DictSearch({}).tool()]).invoke({"question": "  "})


def test_a_thread_resumes_after_a_restart_with_earlier_turns_as_context(home: Path) -> None:
    search = DictSearch(PASSAGES)
    store, recorder = open_store(home)
    config = {"configurable": {"thread_id": "t1"}}
    first = ScriptedModel([JAWS_PLAN, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"])
    with sqlite3.connect(home / "threads.db", check_same_thread=False) as conn:
        build_lag_graph(first, [search.tool()], checkpointer=SqliteSaver(conn), recorder=recorder).invoke(
            {"question": JAWS}, config
        )
    follow_up = "When did she marry him?"
    second = ScriptedModel([plan(("q1", "When did Kate Capshaw marry Steven Spielberg?", [])), "1991"])
    with sqlite3.connect(home / "threads.db", check_same_thread=False) as conn:
        out = build_lag_graph(second, [search.tool()], checkpointer=SqliteSaver(conn), recorder=recorder).invoke(
            {"question": follow_up}, config
        )
    assert f"Q: {JAWS}\nA: Kate Capshaw" in last(second.history[0])
    assert (out["answer"], out["status"], out["steps"]) == ("1991", "ok", 2)
    assert out["history"] == [[JAWS, "Kate Capshaw"], [follow_up, "1991"]]
    assert [m["content"] for m in out["messages"]] == [JAWS, "Kate Capshaw", follow_up, "1991"]
    runs = store.runs()
    assert [r.question for r in runs] == [JAWS, follow_up] and runs[0].id != runs[1].id
    assert [e["id"] for e in out["chain"]] == ["q1"]  # the per-turn chain was reset


# -- real data: one MuSiQue item and its contrast pair (same question, one supporting paragraph withheld) --


def gold_model(item: dict) -> ScriptedModel:
    """Follows the item's gold decomposition; answers a hop only when its supporting paragraph is shown."""
    hops = item["question_decomposition"]
    paragraphs = {p["idx"]: p for p in item["paragraphs"]}
    subs = [
        (f"q{n}", re.sub(r"#(\d+)", r"#q\1", h["question"]), [f"q{d}" for d in re.findall(r"#(\d+)", h["question"])])
        for n, h in enumerate(hops, 1)
    ]

    def answer(hop: dict) -> Callable[[Sequence[Message]], str]:
        needed = paragraphs[hop["paragraph_support_idx"]]["paragraph_text"]
        return lambda messages: hop["answer"] if needed in last(messages) else "UNANSWERABLE"

    def synthesize(messages: Sequence[Message]) -> str:
        return re.findall(r"-> (.+)", last(messages))[-1]

    return ScriptedModel([plan(*subs), *(answer(h) for h in hops), synthesize])


def musique_search(item: dict, withheld: int | None = None) -> DictSearch:
    kept = [p for p in item["paragraphs"] if p["idx"] != withheld]
    return DictSearch({f"{p['title']} #{p['idx']}": p["paragraph_text"] for p in kept}, min_overlap=0)


@pytest.fixture
def musique_item(shared_data: Path) -> dict:
    path = shared_data / "musique" / "dev_shared.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with path.open(encoding="utf-8") as lines:
        return json.loads(next(lines))


def test_musique_item_with_all_paragraphs_gets_the_gold_answer(home: Path, musique_item: dict) -> None:
    search = musique_search(musique_item)
    store, recorder = open_store(home)
    out = build_lag_graph(gold_model(musique_item), [search.tool()], recorder=recorder, k=5).invoke(
        {"question": musique_item["question"]}
    )
    assert out["status"] == "ok" and out["answer"] in musique_item["answers"]
    gold = musique_item["question_decomposition"]
    assert [e["answer"] for e in out["chain"]] == [h["answer"] for h in gold]
    titles = {p["idx"]: f"{p['title']} #{p['idx']}" for p in musique_item["paragraphs"]}
    assert all(titles[h["paragraph_support_idx"]] in e["passages"] for h, e in zip(gold, out["chain"], strict=True))
    assert gold[0]["answer"] in search.queries[1]  # the second hop was searched with the first hop's answer
    [run] = store.runs()
    assert (run.status, run.answer) == ("ok", out["answer"]) and events(run, "lag_chain")


def test_musique_item_with_a_withheld_paragraph_is_insufficient_information(home: Path, musique_item: dict) -> None:
    last_hop = musique_item["question_decomposition"][-1]
    model = gold_model(musique_item)
    search = musique_search(musique_item, withheld=last_hop["paragraph_support_idx"])
    out = build_lag_graph(model, [search.tool()], k=5).invoke({"question": musique_item["question"]})
    assert (out["answer"], out["status"]) == (INSUFFICIENT, "ok")
    assert out["terminated"] == f"q{len(musique_item['question_decomposition'])}"
    assert model.remaining == 1  # the synthesis reply was never asked for
