"""ReAct over text: the model writes Thought / Action / Action Input, we run the tool and reply "Observation: ...".

Small models follow this text protocol far better than JSON tool calls (LLaMP, FireAct). Stop sequences
cut generation at "Observation:", so the model never reads an observation it invented. Every model fault
(an unparsable turn, an unknown tool, bad arguments, a tool that raises) goes back as an observation
the model can act on; a bug of ours raises. `tool_calling="native"` lets an `openai:` model choose tools
through the API instead (react_native.py); its calls are rendered back into the text protocol, so the
graph and the recorded trajectories are the same and a student can still replace its teacher.
"""
# over 200 lines: its nodes share one closure of tools, recorder and templates; observation helpers: react_context

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.common import Status, check_question, earlier_turns, load_prompt, max_steps_message
from agentdistill.agents.react_context import CONTEXT_CHARS, SHORTENED_NOTE, action_key, clip, fit_context
from agentdistill.agents.react_native import NativeToolModel
from agentdistill.agents.react_parse import FinalAnswer, ReactAction, parse_react, to_tool_call
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, Message, assistant, system, user
from agentdistill.tools.base import ParseFault, Tool, ToolCall, render_tools, run_tool
from agentdistill.trajectory import Recorder, StepError

__all__ = [
    "LAST_CALL_NOTE",
    "SHORTENED_NOTE",
    "STOP",
    "FinalAnswer",
    "ReactAction",
    "ReactState",
    "action_key",
    "build_react_graph",
    "fit_context",
    "parse_react",
    "react_messages",
]

STOP = ["\nObservation:", "Observation:"]  # small models invent observations; cut generation there
# Small models repeat an action word for word until max_steps; the note tells them (Qwen-0.5B often ignores it).
REPEAT_NOTE = "(You already ran this exact action in this question: use its result, try another input, or answer.)"
# Said before the last allowed call: without it, half of Qwen-1.5B's HotpotQA runs spent the budget searching
# and ended with no answer although the facts were already in the observations.
LAST_CALL_NOTE = "(This is your last step: write your Final Answer now, from the observations above.)"


class ReactState(TypedDict, total=False):
    question: str  # this turn's question (the graph's input)
    run_id: str  # the trajectory run recording this turn
    messages: list[Message]  # this turn's conversation with the model; rebuilt at the start of every turn
    steps: int  # model calls made this turn
    action: dict[str, Any] | None  # what `think` parsed for `act`: {"tool", "args"} or {"fault"}
    done_actions: list[str]  # tool calls run this turn (canonical JSON), to point out a repeated one
    candidate: str | None  # a Final Answer written after an Action (a guess made before the tool ran)
    answer: str | None
    status: Status
    error: str | None  # why the turn ended without an answer (max_steps), for the caller to show
    history: list[list[str]]  # [question, answer] of earlier turns on this thread (kept by the checkpointer)


def react_messages(
    question: str,
    history: Sequence[Sequence[str]],
    tools: Sequence[Tool],
    prompts_dir: Path | None = None,
    system_prompt: str = "react_system",
) -> list[Message]:
    """The opening messages of a turn: format + tool list as system, earlier turns + the question as user."""
    system_text = load_prompt(system_prompt, prompts_dir).format(
        tools=render_tools(tools), tool_names=", ".join(t.name for t in tools) or "none"
    )
    user_text = load_prompt("react_user", prompts_dir).format(question=question, history=earlier_turns(history))
    return [system(system_text.strip()), user(user_text.strip())]


def build_react_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    max_steps: int = 8,
    checkpointer: BaseCheckpointSaver | None = None,
    recorder: Recorder | None = None,
    prompts_dir: Path | None = None,
    max_tokens: int = 256,
    tool_calling: Literal["text", "native"] = "text",
    last_call_note: bool = True,
    search_first: int = 0,
    context_chars: int = CONTEXT_CHARS,
    system_prompt: str = "react_system",
    on_repeat: Literal["note", "answer"] = "note",
) -> CompiledStateGraph:
    """Teacher or student, the graph is identical: the model is an argument, never looked up.

    `tool_calling="native"` offers the tools through the API (openai: models only); the default text
    protocol works with every model. `last_call_note` tells the model, before its last allowed call, to answer
    now (within max_steps, not an extra call). `search_first=k` opens every turn with `search(question, k)` run by
    the graph, its passages shown under the question (no model call spent; off by default and when there is no
    `search` tool): it makes react answer like the one-call reader in ~1.2 calls, but on HotpotQA with
    Qwen2.5-Coder-1.5B it scored below that reader (F1 0.385 vs 0.485 on 77 items), so it stays an option.
    When the conversation passes `context_chars`, the oldest observations (never the latest) are shortened.
    `system_prompt` names the template of the format and its worked example (another agent's tools need theirs).
    `on_repeat` is what a word-for-word repeated action gets: "note" runs it again with a note saying so; "answer"
    does not run it, and asks the model instead, in a short reader-style call (role `answer`), for the final answer
    from this turn's observations (a 0.5B model repeats its first search until max_steps whatever the note says).
    With a checkpointer, each `invoke({"question": q}, config={"configurable": {"thread_id": t}})` is a new turn
    (a new recorded run) that sees the thread's earlier questions and answers.
    """
    if max_steps < 1:
        raise ConfigError("max_steps", max_steps, "a positive number of model calls per question")
    if tool_calling not in ("text", "native"):
        raise ConfigError("tool_calling", tool_calling, "text or native")
    if context_chars < 1000:
        raise ConfigError("context_chars", context_chars, "at least 1000 characters of conversation per model call")
    if on_repeat not in ("note", "answer"):
        raise ConfigError("on_repeat", on_repeat, "note (run it again, with a note) or answer (ask for the answer)")
    if not 0 <= search_first <= 10:
        raise ConfigError("search_first", search_first, "0 (off) or the number of passages to open with, up to 10")
    recorder = recorder or Recorder(None, agent="react")
    if tool_calling == "native":
        model = NativeToolModel(model, tools)  # inside the recorder, so the trajectory holds the rendered text
    answerer = recorder.wrap(model, role="answer") if on_repeat == "answer" else None
    model = recorder.wrap(model, role="policy")  # wrapped once, so no node can forget to record a call
    by_name: Mapping[str, Tool] = {tool.name: tool for tool in tools}
    react_messages("", [], tools, prompts_dir, system_prompt)  # a broken override template fails now, not mid-chat
    # The cue after the observation matters: without it Qwen2.5-Coder-0.5B often echoes "Observation: ..."
    # back, which the stop sequence cuts to an empty turn.
    observation_template = load_prompt("react_observation", prompts_dir).strip()
    first_search_template = load_prompt("react_first_search", prompts_dir)
    answer_template = load_prompt("react_answer", prompts_dir) if answerer else ""

    def answer_from_observations(state: ReactState, messages: list[Message]) -> str:
        assert answerer is not None
        seen = "\n\n".join(m["content"] for m in messages[2:] if m["role"] == "user")
        prompt = answer_template.format(question=state["question"], observations=seen)
        [reply] = answerer.generate([user(prompt)], stop=STOP, max_tokens=max_tokens, temperature=0.0)
        final, lines = parse_react(reply.text), reply.text.strip().splitlines()
        text = final.text if isinstance(final, FinalAnswer) else (lines[0].strip() if lines else "")
        recorder.annotate_last(parsed={"final_answer": text})
        return text

    def start(state: ReactState, config: RunnableConfig) -> dict[str, Any]:
        question = check_question(state.get("question"))
        history = state.get("history") or []
        thread = (config.get("configurable") or {}).get("thread_id")
        run_id = recorder.start(question, meta={"thread_id": thread, "turn": len(history)} if thread else None)
        messages = react_messages(question, history, tools, prompts_dir, system_prompt)
        return {
            "question": question, "run_id": run_id, "messages": messages,
            "steps": 0, "action": None, "done_actions": [], "candidate": None, "answer": None, "status": "running",
            "error": None,
        }  # fmt: skip

    def first_search(state: ReactState) -> dict[str, Any]:
        takes_k = "k" in by_name["search"].parameters.get("properties", {})  # a user's own search may not
        call = ToolCall("search", {"query": state["question"], **({"k": search_first} if takes_k else {})})
        result = run_tool(by_name, call)
        error = StepError(result.error_kind, result.text) if result.error_kind else None
        recorder.tool(call.name, call.args, result.text, error=error)
        # Shown under the question, not as an Action the model wrote: given such a turn, Qwen2.5-Coder-1.5B copied
        # it (the whole question as the query) five times over instead of looking for the missing fact.
        messages = list(state["messages"])
        # Not clipped to OBSERVATION_LIMIT: five passages run past it, and the one-call reader reads them whole.
        found = first_search_template.format(passages=clip(result.text, context_chars // 2)).strip()
        messages[-1] = user(f"{messages[-1]['content']}\n\n{found}")
        return {"messages": messages, "done_actions": [action_key(call.name, call.args)]}

    def think(state: ReactState) -> dict[str, Any]:
        fitted = fit_context(state["messages"], context_chars)
        [reply] = model.generate(fitted, stop=STOP, max_tokens=max_tokens, temperature=0.0)
        parsed, steps = parse_react(reply.text), state["steps"] + 1
        update: dict[str, Any] = {"steps": steps}
        if isinstance(parsed, FinalAnswer):
            recorder.annotate_last(parsed={"thought": parsed.thought, "final_answer": parsed.text})
            return {**update, "messages": [*fitted, assistant(reply.text)], "answer": parsed.text,
                    "status": "ok"}  # fmt: skip
        if isinstance(parsed, ReactAction):
            recorder.annotate_last(parsed={"thought": parsed.thought, "tool": parsed.tool, "args": parsed.args})
            args = parsed.args if isinstance(parsed.args, Mapping) else {"input": parsed.args}
            if answerer is not None and action_key(parsed.tool, args) in (state.get("done_actions") or []):
                text = answer_from_observations(state, fitted)
                if text:
                    return {**update, "messages": [*fitted, assistant(parsed.kept)], "answer": text, "status": "ok"}
            kept, action = parsed.kept, {"tool": parsed.tool, "args": parsed.args}
            update["candidate"] = parsed.candidate or state.get("candidate")
        else:
            recorder.annotate_last(error=StepError("parse_error", parsed.message))
            kept, action = reply.text, {"fault": parsed.message}
        done = steps >= max_steps  # the last call's action would never be seen again, so it is not run
        return {**update, "messages": [*fitted, assistant(kept)], "action": None if done else action,
                "status": "max_steps" if done else "running"}  # fmt: skip

    def act(state: ReactState) -> dict[str, Any]:
        action, done = state["action"] or {}, list(state.get("done_actions") or [])
        if "fault" in action:  # already recorded on the model step as a parse_error
            observation = clip(run_tool(by_name, ParseFault(action["fault"])).text)
        else:
            call = to_tool_call(action["tool"], action["args"], by_name)
            result = run_tool(by_name, call, report_exceptions=True)
            observation, kind = result.text, result.error_kind
            recorder.tool(call.name, call.args, observation, error=StepError(kind, observation) if kind else None)
            key = action_key(call.name, call.args)
            note = f"\n{REPEAT_NOTE}" if key in done else ""
            observation, done = clip(observation) + note, [*done, key]
        if last_call_note and state["steps"] + 1 == max_steps:
            observation += f"\n{LAST_CALL_NOTE}"
        # Clipped once, before the notes: clipping again would cut them off a long result.
        messages = [*state["messages"], user(observation_template.format(observation=observation))]
        return {"messages": messages, "action": None, "done_actions": done}

    def finish(state: ReactState) -> dict[str, Any]:
        status = state["status"]
        # At max_steps the best answer so far is a Final Answer the model wrote after an Action, if any;
        # an observation is not an answer, so otherwise there is none.
        answer = state.get("answer") if status == "ok" else state.get("candidate")
        error = StepError("max_steps", max_steps_message(max_steps)) if status == "max_steps" else None
        recorder.finish(state["run_id"], status=status, answer=answer, error=error)
        history = [*(state.get("history") or []), [state["question"], answer or ""]]
        return {"answer": answer, "error": error.message if error else None, "history": history}

    def step(state: ReactState) -> dict[str, Any]:
        # think and act share one node: each LangGraph superstep costs ~0.3 ms, half the per-step overhead.
        update = think(state)
        if update.get("action") is None:
            return update
        return {**update, **act({**state, **update})}

    graph = StateGraph(ReactState)
    # `start` is not wrapped by recorder.node: on a thread, the state it receives still carries the previous
    # turn's run_id, and a failure here (an empty question) must not be booked against that finished run.
    graph.add_node("start", start)
    for node in (step, finish):
        graph.add_node(node.__name__, recorder.node(node))
    graph.add_edge(START, "start")
    if search_first and "search" in by_name:
        graph.add_node("first_search", recorder.node(first_search))
        graph.add_edge("start", "first_search")
        graph.add_edge("first_search", "step")
    else:
        graph.add_edge("start", "step")
    graph.add_conditional_edges("step", lambda s: "step" if s["status"] == "running" else "finish", ["step", "finish"])
    graph.add_edge("finish", END)
    # one superstep per model call, plus start, first_search and finish: the default limit (25) would cut long runs.
    return graph.compile(checkpointer=checkpointer).with_config(recursion_limit=max_steps + 11)
