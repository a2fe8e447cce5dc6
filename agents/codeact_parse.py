"""The code agent's parts outside the graph: configs, reply parsing, prompts, observations, sessions, the vote.

Kept apart from agents/codeact.py so the graph file stays short and each piece is testable on its own.
"""

from __future__ import annotations

import ast
import contextvars
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentdistill.agents.common import load_prompt
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, Completion, Message, system, user
from agentdistill.tools.base import ParseFault, Tool, call_tool, render_tools
from agentdistill.tools.sandbox import CodeResult, PythonSandbox, SandboxSession
from agentdistill.trajectory import StepError

ToolCallLog = list[tuple[str, dict[str, Any], str, StepError | None]]  # (tool, args, text, error) per call

# Small models go on to invent the Observation, or even open their turn with one (Qwen2.5-Coder-0.5B did);
# smolagents-style models close the block with <end_code>. The closing fence itself is not a stop: "```\n"
# also opens an untagged block, so we cut after parsing (Qwen ends its turn after the fence anyway).
STOP = ["\nObservation:", "Observation:", "<end_code>"]
FIRST_THOUGHT_STOP = ["```", "\nObservation:", "<end_code>"]  # the first thought is prose: no code, no result
OBSERVATION_LIMIT = 3000  # characters of printed output shown to the model; small contexts fill fast

_OPEN = re.compile(r"```[ \t]*(?:python|py|Python|python3)?[ \t]*\n")
_CLOSE = re.compile(r"\n?[ \t]*```")
_THOUGHT = re.compile(r"^\s*Thought\s*:\s*", re.IGNORECASE)

NO_CODE_HINT = (
    "Error: no code block found. Write a line 'Thought: ...' and then one block:\n"
    "```python\n# your code\nprint(...)\n```\n"
    "When you know the answer, call final_answer(answer) in a code block."
)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def answer_hint(text: str) -> str | None:
    """NO_CODE_HINT made concrete for a reply that states a number: how to give it as the answer."""
    found = _LAST_NUMBER.findall(text)
    if not found:
        return None
    number = found[-1].replace(",", "").rstrip(".")
    return (
        f"Error: no code block found. If {number} is the answer to the task, reply with exactly:\n"
        f"```python\nfinal_answer({number})\n```\nOtherwise write a line 'Thought: ...' and then one code block."
    )


CUT_HINT = (
    "Error: your code block was cut off before its closing ``` (too long). Write shorter code; "
    "split the work over several steps."
)


@dataclass(frozen=True)
class FirstThought:
    """First-thought prefix: a CoT paragraph written before the first step and prefixed to it."""

    model: ChatModel | None = None  # who writes it; None = the policy model itself
    prompt: str | None = None  # template with {question}; None = prompts/codeact_first_thought.txt
    max_tokens: int = 160  # one paragraph; CPU decoding is slow


@dataclass(frozen=True)
class SAGConfig:
    """Self-consistent action generation: sample n actions per step and keep the majority outcome."""

    n: int = 5  # samples per step, drawn in one generate(n=...) call
    temperature: float = 0.7  # sampling temperature; 0 would make every sample the same

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError("sag.n", self.n, "a positive number of samples per step")
        if self.temperature < 0:
            raise ConfigError("sag.temperature", self.temperature, "a temperature >= 0 (0.7 is typical)")


@dataclass(frozen=True)
class CodeAction:
    """One parsed step: the reasoning before the block and the code inside it."""

    thought: str
    code: str

    def message_text(self, prefix: str = "") -> str:
        """The assistant turn as kept in the history: what ran, nothing the model wrote after the block."""
        thought = " ".join(part for part in (prefix.strip(), self.thought) if part) or "I write code for this step."
        return f"Thought: {thought}\n```python\n{self.code}\n```"


def parse_code_action(text: str, *, cut_off: bool = False) -> CodeAction | ParseFault:
    """The first code block of `text` and the thought before it, or a ParseFault with a hint for the model.

    A block without a closing fence is accepted when generation stopped on a stop sequence (the model
    wrote `<end_code>` or began an Observation), not when it ran out of tokens (`cut_off`): then the
    code is probably truncated and running it would only produce a confusing SyntaxError.
    """
    opened = _OPEN.search(text)
    if opened is None:
        return _bare_final_answer(text) or ParseFault(NO_CODE_HINT, text)
    rest = text[opened.end() :]
    closed = _CLOSE.search(rest)
    if closed is None and cut_off:
        return ParseFault(CUT_HINT, text)
    code = (rest[: closed.start()] if closed else rest).rstrip()
    if not code.strip():
        return ParseFault("Error: the code block is empty. " + NO_CODE_HINT.removeprefix("Error: "), text)
    thought = _THOUGHT.sub("", text[: opened.start()]).strip()
    return CodeAction(thought=" ".join(thought.split()), code=code)


def _bare_final_answer(text: str) -> CodeAction | None:
    """A reply that is just `final_answer(...)` without a fence (after an optional Thought) runs as that code.

    Qwen2.5-Coder-1.5B answered this way on most GSM8K items right after an Observation held the result, then
    repeated it until max_steps. Only a final_answer call is taken this way: fence-less prose is never run.
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    thought = [line for line in lines if _THOUGHT.match(line)]
    code = "\n".join(line for line in lines if not _THOUGHT.match(line)).strip()
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    call = tree.body[0].value if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "final_answer"):
        return None
    said = " ".join(_THOUGHT.sub("", line).strip() for line in thought)
    return CodeAction(thought=" ".join(said.split()), code=code)


def parse_completion(completion: Completion) -> CodeAction | ParseFault:
    return parse_code_action(completion.text, cut_off=completion.finish_reason == "length")


def clean_first_thought(text: str) -> str:
    """One paragraph of prose: a leading "Thought:" dropped and whitespace collapsed, so it reads as a prefix."""
    return " ".join(_THOUGHT.sub("", text).split())


def prefixed(text: str, prefix: str) -> str:
    """An unparsable reply as kept in the history: the first thought still opens the assistant turn."""
    if not prefix:
        return text
    return f"Thought: {prefix} {_THOUGHT.sub('', text).lstrip()}".rstrip()


REPEAT_HINT = "Note: you ran this same code before. If the output above answers the task, call final_answer(...)."


def render_observation(stdout: str, error: str | None, final: str | None, *, repeated: bool = False) -> str:
    """What the model reads after its code ran: printed output, then the error, then the final answer.

    `repeated` (the cell was run before) adds a nudge: small models otherwise re-run a cell that already
    printed the answer until max_steps (seen with Qwen2.5-Coder-0.5B on GSM8K).
    """
    if len(stdout) > OBSERVATION_LIMIT:
        stdout = stdout[:OBSERVATION_LIMIT] + "\n...(output truncated: print less)"
    parts = [stdout.rstrip()] if stdout.strip() else []
    if error:
        parts.append(error.rstrip() if error.lstrip().startswith("Error") else f"Error: {error.rstrip()}")
    if final is not None:
        parts.append(f"final_answer called with {final}")
    elif repeated and not error:
        parts.append(REPEAT_HINT)
    body = "\n".join(parts) or "(no output: use print() to see values)"
    return f"Observation:\n{body}"


def codeact_messages(
    question: str,
    tools: Sequence[Tool],
    *,
    history: Sequence[Sequence[str]] = (),
    first_thought: str | None = None,
    prompts_dir: str | Path | None = None,
    examples: str = "",
    shots: Sequence[Message] = (),
) -> list[Message]:
    """System prompt (format, tools, worked example, then any extra `examples` text), any `shots` (earlier
    solved runs replayed as turns), and the task; earlier turns of a chat come as context.

    The first thought goes in the user turn ("Your first thought: ...") because the ChatModel protocol has
    no assistant-prefill: every backend renders a trailing assistant message as a closed turn.
    """
    tool_lines = render_tools(tools) if tools else "(no extra tools)"
    prompt = load_prompt("codeact_system", prompts_dir).format(tools=tool_lines)
    messages = [system(f"{prompt.rstrip()}\n\n{examples.strip()}" if examples.strip() else prompt), *shots]
    lines = []
    if history:
        lines.append("Earlier in this conversation:")
        lines += [f"Q: {q}\nA: {a}" for q, a in history]
        lines.append("")
    lines.append(f"Task: {question}")
    if first_thought:
        lines.append(f"\nYour first thought: {first_thought}\nContinue from this thought: write the code for it.")
    else:
        # Without this line Qwen2.5-Coder-0.5B ended 1 reply in 3 after its Thought, with the arithmetic done
        # in prose and no code block (4/12 GSM8K train items, vs 1/12 with it), and then repeated that to max_steps.
        lines.append("\nReply with one line 'Thought: ...' and then one ```python code block.")
    messages.append(user("\n".join(lines)))
    return messages


def vote_key(stdout: str, final: str | None) -> str:
    """What candidates are compared on: the final answer when one was given, else what the code printed."""
    return f"final_answer: {final}" if final is not None else f"stdout: {' '.join(stdout.split())}"


@dataclass
class Vote:
    """Majority vote over candidate outcomes; groups keep first-seen order so ties go to the earliest sample."""

    groups: dict[str, list[int]] = field(default_factory=dict)

    def add(self, index: int, key: str) -> None:
        self.groups.setdefault(key, []).append(index)

    def winner(self) -> tuple[str, int] | None:
        """(key, representative sample index) of the largest group, or None when nothing ran cleanly."""
        if not self.groups:
            return None
        key = max(self.groups, key=lambda k: len(self.groups[k]))  # max keeps the first of equal groups
        return key, self.groups[key][0]

    def to_data(self) -> list[dict[str, Any]]:
        return [{"key": k, "members": list(v), "count": len(v)} for k, v in self.groups.items()]


def final_text(result: CodeResult) -> str | None:
    """The run's answer when the cell called final_answer (final_answer(None) still counts)."""
    return str(result.final_answer) if result.final_answer_called else None


class SessionPool:
    """The live sandbox session of each run; a session can be forked by replaying a run's cells.

    Its sandbox has the caller's config and preamble; every host tool is guarded so that one which raises
    is reported to the code as "Error: tool X failed" (and logged as tool_exception) instead of killing the
    worker, and the calls each cell makes are logged so the graph can record the ones that count.
    """

    def __init__(self, sandbox: PythonSandbox, tools: Sequence[Tool]) -> None:
        self._log = contextvars.ContextVar[ToolCallLog | None](f"codeact-calls-{id(self)}", default=None)
        guarded = [self._guard(tool) for tool in tools]
        self.sandbox = PythonSandbox(sandbox.config, preamble=sandbox.preamble, tools=guarded)
        self.live: dict[str, SandboxSession] = {}

    def execute(self, session: SandboxSession, code: str) -> tuple[CodeResult, ToolCallLog]:
        """Run one cell; also return the host-tool calls it made."""
        calls: ToolCallLog = []
        token = self._log.set(calls)
        try:
            return session.run(code), calls
        finally:
            self._log.reset(token)

    def fork(self, cells: Sequence[str]) -> SandboxSession:
        """A fresh session brought to the state of `cells` (their output and tool calls are dropped)."""
        session = self.sandbox.session()
        for cell in cells:
            session.run(cell)
        return session

    def get(self, run_id: str, cells: Sequence[str]) -> SandboxSession:
        """The run's session; after a process restart (checkpointed thread) it is rebuilt from `cells`."""
        if run_id not in self.live:
            self.live[run_id] = self.fork(cells)
        return self.live[run_id]

    def adopt(self, run_id: str, session: SandboxSession) -> None:
        self.close(run_id)
        self.live[run_id] = session

    def close(self, run_id: str) -> None:
        session = self.live.pop(run_id, None)
        if session is not None:
            session.close()

    def _guard(self, tool: Tool) -> Tool:
        def call(**kwargs: Any) -> str:
            result = call_tool(tool, kwargs, report_exceptions=True)
            text = result.text
            error = StepError("tool_exception", text) if result.error_kind == "tool_exception" else None
            calls = self._log.get()
            if calls is not None:  # None while replaying cells into a fork: those calls were recorded already
                calls.append((tool.name, dict(kwargs), text, error))
            return text

        return replace(tool, fn=call)


@dataclass(frozen=True)
class Chosen:
    """SAG's pick for one step: the sample, its outcome (already run in the run's new session), the vote."""

    index: int
    result: CodeResult
    calls: ToolCallLog
    vote: dict[str, Any]  # the "sag_vote" event: groups with members and counts, raised, unparsable, chosen


def self_consistent(
    pool: SessionPool, run_id: str, cells: Sequence[str], actions: Sequence[CodeAction | ParseFault]
) -> Chosen:
    """Run each parsed sample in its own fork, majority-vote on the outcomes of those that did not raise, and
    make the winner's fork the run's session. All raised: the first parsed one is kept, so the model sees
    its error. Needs at least one parsed action."""
    parsed = [(i, a) for i, a in enumerate(actions) if isinstance(a, CodeAction)]
    vote, raised, trials = Vote(), [], {}
    try:
        for index, action in parsed:
            fork = pool.fork(cells)
            result, calls = pool.execute(fork, action.code)
            trials[index] = (fork, result, calls)
            if result.error is not None:
                raised.append({"index": index, "error": result.error})
            else:
                vote.add(index, vote_key(result.stdout, final_text(result)))
        won = vote.winner()
        chosen = won[1] if won else parsed[0][0]
        fork, result, calls = trials.pop(chosen)
        pool.adopt(run_id, fork)
    finally:
        for other, _, _ in trials.values():
            other.close()
    data = {
        "n": len(actions), "groups": vote.to_data(), "raised": raised, "chosen": chosen, "fallback": won is None,
        "unparsable": [i for i, a in enumerate(actions) if not isinstance(a, CodeAction)],
    }  # fmt: skip
    return Chosen(chosen, result, calls, data)
