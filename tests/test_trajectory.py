from __future__ import annotations

import operator
import threading
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from agentdistill.errors import ModelCallError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import user
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder, StepError


class EchoState(TypedDict, total=False):
    question: str
    run_id: str
    answer: str
    log: Annotated[list[str], operator.add]


def build_echo_graph(model, recorder: Recorder):  # noqa: ANN001, ANN201
    """A two-node graph shaped like the real agents: start opens a run, ask calls the model and a tool."""
    model = recorder.wrap(model)

    def start(state: EchoState) -> dict:
        return {"run_id": recorder.start(state["question"])}

    def ask(state: EchoState) -> dict:
        [reply] = model.generate([user(state["question"])], stop=["STOP"])
        recorder.tool("echo", {"text": reply.text}, f"echoed {reply.text}")
        recorder.finish(state["run_id"], status="ok", answer=reply.text)
        return {"answer": reply.text}

    graph = StateGraph(EchoState)
    graph.add_node("start", recorder.node(start))
    graph.add_node("ask", recorder.node(ask))
    graph.add_edge(START, "start")
    graph.add_edge("start", "ask")
    graph.add_edge("ask", END)
    return graph.compile()


def test_every_model_and_tool_call_lands_in_the_run(home: Path) -> None:
    store = TrajectoryStore.open(home / "t.db")
    graph = build_echo_graph(ScriptedModel(["Canberra STOP ignored"]), Recorder(store, agent="echo"))
    out = graph.invoke({"question": "capital of Australia?"})
    assert out["answer"] == "Canberra "
    [run] = store.runs()
    assert (run.agent, run.status, run.answer, run.models) == ("echo", "ok", "Canberra ", {"policy": "scripted:inline"})
    model_step, tool_step = run.steps
    assert model_step.kind == "model" and model_step.node == "ask"
    assert model_step.messages_in == [{"role": "user", "content": "capital of Australia?"}]
    assert model_step.completion == "Canberra " and model_step.params["stop"] == ["STOP"]
    assert tool_step.tool == "echo" and tool_step.observation == "echoed Canberra "


def test_concurrent_runs_through_one_graph_keep_their_own_steps(home: Path) -> None:
    store = TrajectoryStore.open(home / "t.db")
    model = ScriptedModel([lambda msgs: msgs[-1]["content"].upper()] * 40)
    graph = build_echo_graph(model, Recorder(store, agent="echo"))
    threads = [threading.Thread(target=graph.invoke, args=({"question": f"q{i}"},)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = store.runs()
    assert len(runs) == 20
    for run in runs:
        assert [s.index for s in run.steps] == [0, 1]
        assert run.steps[0].completion == run.question.upper() == run.answer


def test_a_failing_model_call_ends_the_run_as_error_and_keeps_the_partial_trajectory(home: Path) -> None:
    def dying(_messages):  # noqa: ANN001, ANN202
        raise ModelCallError("endpoint http://127.0.0.1:9/v1 stopped answering", kind="timeout")

    store = TrajectoryStore.open(home / "t.db")
    graph = build_echo_graph(ScriptedModel([dying]), Recorder(store, agent="echo"))
    with pytest.raises(ModelCallError):
        graph.invoke({"question": "q"})
    [run] = store.runs()
    assert run.status == "error" and run.error == StepError(
        "timeout", "endpoint http://127.0.0.1:9/v1 stopped answering"
    )
    [step] = run.steps
    assert step.error is not None and step.error.kind == "timeout" and step.messages_in[0]["content"] == "q"


def test_recorder_without_store_records_nothing_and_still_runs() -> None:
    graph = build_echo_graph(ScriptedModel(["hi"]), Recorder(None, agent="echo"))
    assert graph.invoke({"question": "q"})["answer"] == "hi"


def test_n_samples_are_all_kept(home: Path) -> None:
    store = TrajectoryStore.open(home / "t.db")
    recorder = Recorder(store, agent="sag")
    model = recorder.wrap(ScriptedModel(["a", "b", "c"]))
    node = recorder.node(lambda state: model.generate([user("x")], n=3, temperature=0.7), name="sample")
    run_id = recorder.start("x")
    node({"run_id": run_id})
    recorder.finish(run_id, status="ok", answer="a")
    [step] = store.get(run_id).steps
    assert step.samples == ["a", "b", "c"] and step.params["n"] == 3 and step.completion == "a"


def test_ctrl_c_in_a_node_records_the_run_as_interrupted(home: Path) -> None:
    def interrupted(_messages):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    store = TrajectoryStore.open(home / "t.db")
    graph = build_echo_graph(ScriptedModel([interrupted]), Recorder(store, agent="echo"))
    with pytest.raises(KeyboardInterrupt):
        graph.invoke({"question": "q"})
    [run] = store.runs()
    assert run.status == "error" and run.error is not None and run.error.kind == "interrupted"
