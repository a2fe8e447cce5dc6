"""The code agent (Agent Distillation's CodeAct): each step is a Thought and a Python block run in a sandbox.

The block runs in this run's sandbox session (variables persist across cells; a fresh session per run);
what it prints, plus any error, is the Observation; `final_answer(x)` ends the run with answer str(x).
Host tools (KB search, ...) are callable from the code over the sandbox's RPC. Options from the paper:
- FTP (first-thought prefix): a CoT prompt, by the same or another model, writes a first reasoning
  paragraph that opens the first assistant turn. The ChatModel protocol has no assistant-prefill, so the
  model is shown it in the task as "Your first thought: ..." and the kept assistant turn starts with
  "Thought: <first thought>" followed by what the model wrote.
- SAG (self-consistent action generation): n samples in one call; those that fail to parse or raise are
  dropped; the rest vote on their outcome. Each candidate runs in a fork of the session made by replaying
  the run's cells in a fresh worker; the winner's fork becomes the run's session, so no cell runs twice.
"""
# over 200 lines: its nodes share one closure of sandbox, tools and recorder; parsing and SAG are in codeact_parse

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents import codeact_parse as cp
from agentdistill.agents.common import Status, check_question, load_prompt, max_steps_message
from agentdistill.agents.exemplars import ExemplarBank, exemplar_turns
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, Message, assistant, user
from agentdistill.tools.base import Tool
from agentdistill.tools.sandbox import PythonSandbox
from agentdistill.trajectory import Recorder, StepError

__all__ = ["STOP", "CodeActState", "FirstThought", "SAGConfig", "build_codeact_graph"]
STOP, FirstThought, SAGConfig = cp.STOP, cp.FirstThought, cp.SAGConfig


class CodeActState(TypedDict, total=False):
    question: str  # this turn's question (the graph's input)
    run_id: str  # the trajectory run recording this turn
    messages: list[Message]  # this turn's conversation with the model; rebuilt at the start of every turn
    steps: int  # model calls made by the policy this turn
    first_thought: str  # the FTP paragraph ("" when off), prefixed to the first assistant turn
    pending: list[list[Any]]  # [text, cut_off] of each sample `think` drew, for `act` to parse and run
    cells: list[str]  # code run in the session since its worker last (re)started: replayed to fork it
    answer: str | None
    status: Status
    error: str | None  # why the turn ended without an answer (max_steps), for the caller to show
    history: list[list[str]]  # [question, answer] of earlier turns on this thread (kept by the checkpointer)
    stuck: bool  # the last step failed to parse or repeated a cell: the next one is sampled, not greedy


def build_codeact_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    sandbox: PythonSandbox,
    max_steps: int = 6,
    checkpointer: BaseCheckpointSaver | None = None,
    recorder: Recorder | None = None,
    prompts_dir: Path | None = None,
    max_tokens: int = 384,
    first_thought: FirstThought | None = None,
    sag: SAGConfig | None = None,
    resample_temperature: float = 0.0,
    answer_hint: bool = False,
    examples: str = "",
    exemplars: ExemplarBank | None = None,
    exemplars_k: int = 2,
) -> CompiledStateGraph:
    """Teacher or student, the graph is identical: the model is an argument, never looked up.

    Sessions come from a sandbox with `sandbox`'s config and preamble whose host tools are `sandbox.tools`
    plus `tools`. With a checkpointer, each `invoke({"question": q}, config={"configurable": {"thread_id":
    t}})` is a new turn (a new recorded run, a fresh session) that sees the thread's earlier Q and A.
    With `resample_temperature` > 0, a step after an unparsable reply or a repeated cell is sampled at
    that temperature instead of greedily: greedy decoding would write the same reply again. With
    `answer_hint`, a reply without code after the first step that states a number is answered with how to
    end the task with it (small models state "the total is 120" and then wait). `examples` is text of more
    worked examples appended to the system prompt (few-shot; `--option examples=examples_math`). With
    `exemplars`, the `exemplars_k` solved runs whose questions match best are replayed before each task.
    """
    if max_steps < 1:
        raise ConfigError("max_steps", max_steps, "a positive number of model calls per question")
    if exemplars_k < 1:
        raise ConfigError("exemplars_k", exemplars_k, "a positive number of solved runs to show")
    recorder = recorder or Recorder(None, agent="codeact")
    writer = recorder.wrap(first_thought.model or model, role="first_thought") if first_thought else None
    model = recorder.wrap(model, role="policy")  # wrapped once, so no node can forget to record a call
    ftp_template = (first_thought.prompt or load_prompt("codeact_first_thought", prompts_dir)) if first_thought else ""
    host_tools = list({**sandbox.tools, **{t.name: t for t in tools}}.values())
    pool = cp.SessionPool(sandbox, host_tools)
    cp.codeact_messages(
        "", host_tools, prompts_dir=prompts_dir, examples=examples
    )  # a broken override fails now, not mid-chat

    def start(state: CodeActState, config: RunnableConfig) -> dict[str, Any]:
        question = check_question(state.get("question"))
        history = state.get("history") or []
        thread = (config.get("configurable") or {}).get("thread_id")
        run_id = recorder.start(question, meta={"thread_id": thread, "turn": len(history)} if thread else None)
        shots = exemplar_turns(exemplars.select(question, exemplars_k)) if exemplars else []
        messages = cp.codeact_messages(
            question, host_tools, history=history, prompts_dir=prompts_dir, examples=examples, shots=shots
        )
        return {
            "question": question, "run_id": run_id, "messages": messages, "steps": 0, "first_thought": "",
            "pending": [], "cells": [], "answer": None, "status": "running", "error": None, "stuck": False,
        }  # fmt: skip

    def ftp(state: CodeActState) -> dict[str, Any]:
        assert writer is not None and first_thought is not None
        prompt = ftp_template.format(question=state["question"])
        [reply] = writer.generate(
            [user(prompt)], stop=cp.FIRST_THOUGHT_STOP, max_tokens=first_thought.max_tokens, temperature=0.0
        )
        text = cp.clean_first_thought(reply.text)
        recorder.annotate_last(parsed={"first_thought": text})
        history = state.get("history") or []
        messages = cp.codeact_messages(
            state["question"],
            host_tools,
            history=history,
            first_thought=text,
            prompts_dir=prompts_dir,
            examples=examples,
        )
        return {"first_thought": text, "messages": messages}

    def think(state: CodeActState) -> dict[str, Any]:
        n, temperature = (sag.n, sag.temperature) if sag else (1, 0.0)
        seed = None
        if state.get("stuck") and resample_temperature > 0 and not sag:
            temperature, seed = resample_temperature, state["steps"]  # seeded: a rerun samples the same
        replies = model.generate(
            state["messages"], stop=STOP, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed
        )
        return {"pending": [[c.text, c.finish_reason == "length"] for c in replies], "steps": state["steps"] + 1}

    def act(state: CodeActState) -> dict[str, Any]:
        prefix = state["first_thought"] if state["steps"] == 1 else ""
        actions = [cp.parse_code_action(text, cut_off=cut) for text, cut in state["pending"]]
        parsed = [(i, a) for i, a in enumerate(actions) if isinstance(a, cp.CodeAction)]
        update: dict[str, Any] = {"pending": [], "stuck": not parsed}
        if not parsed:
            fault = actions[0]
            assert isinstance(fault, cp.ParseFault)
            recorder.annotate_last(error=StepError("parse_error", fault.message))
            if sag:
                recorder.event("sag_vote", {"n": len(actions), "groups": [], "raised": [],
                                            "unparsable": list(range(len(actions))), "chosen": None})  # fmt: skip
            message = fault.message
            if answer_hint and state["steps"] > 1 and fault.message == cp.NO_CODE_HINT:
                message = cp.answer_hint(state["pending"][0][0]) or message
            said, observation = cp.prefixed(state["pending"][0][0], prefix), f"Observation:\n{message}"
        else:
            if sag:
                chosen = cp.self_consistent(pool, state["run_id"], state["cells"], actions)
                recorder.event("sag_vote", chosen.vote)
                index, result, calls = chosen.index, chosen.result, chosen.calls
                action = dict(parsed)[index]
            else:
                index, action = parsed[0]
                result, calls = pool.execute(pool.get(state["run_id"], state["cells"]), action.code)
            recorder.annotate_last(parsed={"thought": action.thought, "code": action.code, "sample": index})
            for name, args, text, error in calls:
                recorder.tool(name, args, text, error=error)
            final = cp.final_text(result)
            repeated = action.code in state["cells"]
            update["stuck"] = repeated
            observation = cp.render_observation(result.stdout, result.error, final, repeated=repeated)
            error = StepError("execution_error", result.error) if result.error else None
            recorder.tool("python", {"code": action.code}, observation, error=error)
            restarted = result.timed_out or (result.error or "").startswith("SandboxCrash")
            update["cells"] = [] if restarted else [*state["cells"], action.code]  # a restart lost the variables
            said = action.message_text(prefix)
            if final is not None:
                update.update(answer=final, status="ok")
        if update.get("status") != "ok" and state["steps"] >= max_steps:
            update["status"] = "max_steps"
        return {**update, "messages": [*state["messages"], assistant(said), user(observation)]}

    def finish(state: CodeActState) -> dict[str, Any]:
        pool.close(state["run_id"])
        status, answer = state["status"], state.get("answer")
        error = StepError("max_steps", max_steps_message(max_steps)) if status == "max_steps" else None
        recorder.finish(state["run_id"], status=status, answer=answer, error=error)
        history = [*(state.get("history") or []), [state["question"], answer or ""]]
        return {"error": error.message if error else None, "history": history}

    def closing(fn: Callable[[CodeActState], dict[str, Any]]) -> Callable[[CodeActState], dict[str, Any]]:
        """A node that fails (model endpoint down, a bug of ours) frees the run's sandbox worker first."""

        @functools.wraps(fn)
        def node(state: CodeActState) -> dict[str, Any]:
            try:
                return fn(state)
            except Exception:
                pool.close(state["run_id"])
                raise

        return node

    graph = StateGraph(CodeActState)
    # `start` is not wrapped by recorder.node: on a thread, the state it receives still carries the previous
    # turn's run_id, and a failure here (an empty question) must not be booked against that finished run.
    graph.add_node("start", start)
    for node in (ftp, think, act, finish) if first_thought else (think, act, finish):
        graph.add_node(node.__name__, recorder.node(closing(node)))
    graph.add_edge(START, "start")
    graph.add_edge("start", "ftp" if first_thought else "think")
    if first_thought:
        graph.add_edge("ftp", "think")
    graph.add_edge("think", "act")
    graph.add_conditional_edges("act", lambda s: "think" if s["status"] == "running" else "finish", ["think", "finish"])
    graph.add_edge("finish", END)
    # think + act per step, plus start, ftp and finish: the default limit (25) would cut runs of over 11 steps.
    return graph.compile(checkpointer=checkpointer).with_config(recursion_limit=2 * max_steps + 10)
