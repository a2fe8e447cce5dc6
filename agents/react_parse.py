"""Parse one ReAct turn (Thought / Action / Action Input / Final Answer) the way small models really write it.

Small models drift from the format in predictable ways: JSON arguments with single quotes or code
fences, a bare string instead of a JSON object, `search[...]` in the Action line, markdown bold around
the keywords, and (Qwen2.5-Coder-0.5B in particular) an Action, its Action Input *and* a Final Answer in
the same turn. The parser accepts all of these and turns everything else into a ParseFault whose message
shows the model the format, so the fault can go back to it as an observation.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentdistill.tools.base import ParseFault, Tool, ToolCall

_KEY = r"^[ \t]*[*_]*{}[*_]*[ \t]*:[*_]*[ \t]*"
_ACTION = re.compile(_KEY.format(r"Action") + r"(.*)$", re.I | re.M)
_INPUT = re.compile(_KEY.format(r"Action[ \t]+Input") + r"(.*)$", re.I | re.M)
_FINAL = re.compile(r"[*_]*Final[ \t]+Answer[*_]*[ \t]*:[*_]*[ \t]*", re.I)
_THOUGHT = re.compile(r"^[ \t]*[*_]*Thought[*_]*[ \t]*:[*_]*[ \t]*", re.I)
# A line starting one of these ends a Final Answer: the model has begun an imagined next cycle.
_NEXT_SECTION = re.compile(r"^[ \t]*[*_]*(Thought|Action|Action Input|Observation|Question)[*_]*[ \t]*:", re.I | re.M)
_INLINE_CALL = re.compile(r"^([A-Za-z_][\w.-]*)\s*([\[(])(.*)([\])])\s*$", re.S)

FORMAT_HINT = (
    "Write either\nThought: <your reasoning>\nAction: <tool name>\nAction Input: <JSON object of arguments>\n"
    "or, when you know the answer,\nThought: <your reasoning>\nFinal Answer: <the answer>"
)


@dataclass(frozen=True)
class ReactAction:
    """A tool call the model asked for. `args` is a dict, or a bare string meant for the tool's first parameter."""

    thought: str
    tool: str
    args: Mapping[str, Any] | str = field(hash=False)
    candidate: str | None = None  # a Final Answer written after the Action in the same turn (dropped, kept as a guess)
    kept: str = ""  # the turn cut after its Action Input: what goes back into the conversation


@dataclass(frozen=True)
class FinalAnswer:
    text: str
    thought: str = ""


def parse_react(text: str) -> ReactAction | FinalAnswer | ParseFault:
    """One model turn -> the action it asks for, its final answer, or a fault the model can fix.

    "Final Answer:" wins only when no Action comes before it. Qwen2.5-Coder-0.5B often writes
    Action + Action Input and then a Final Answer in the same turn; that answer was written before the
    tool ran, so it is a guess: we run the tool and keep the guess only as `candidate` (the best answer
    so far if the run hits max_steps). Everything after the Action Input block is discarded.
    """
    action = _ACTION.search(text)
    final = _FINAL.search(text)
    if action is not None and (final is None or action.start() < final.start()):
        candidate = _final_text(text[final.end() :]) if final is not None else None
        return _parse_action(text, action, candidate or None)
    if final is not None:
        answer = _final_text(text[final.end() :])
        if not answer:
            return ParseFault(f"Error: your Final Answer is empty. {FORMAT_HINT}", text)
        return FinalAnswer(answer, _thought(text[: final.start()]))
    if not text.strip():
        return ParseFault(f"Error: your reply was empty. {FORMAT_HINT}", text)
    return ParseFault(f"Error: no 'Action:' or 'Final Answer:' line found. {FORMAT_HINT}", text)


def to_tool_call(tool: str, args: Mapping[str, Any] | str, by_name: Mapping[str, Tool]) -> ToolCall:
    """Resolve the tool name (case-insensitively) and map a bare string to the tool's first parameter."""
    name = tool if tool in by_name else next((n for n in by_name if n.lower() == tool.lower()), tool)
    if not isinstance(args, str):
        return ToolCall(name, dict(args))
    known = by_name.get(name)
    if known is None:  # run_tool will report the unknown name; keep the input for the trajectory
        return ToolCall(name, {"input": args} if args.strip() else {})
    params = list(known.parameters["properties"])
    return ToolCall(name, {params[0]: args} if args.strip() and params else {})


def _parse_action(text: str, action: re.Match[str], candidate: str | None) -> ReactAction | ParseFault:
    thought = _thought(text[: action.start()])
    tool = action.group(1).strip().strip("`*\"'").rstrip(".").strip()
    inline: str | None = None
    call = _INLINE_CALL.match(tool)
    if call is not None:  # `search[capital of France]` (FireAct/HotpotQA style) or `search(query="...")`
        tool, inline = call.group(1), call.group(3).strip()
        if call.group(2) == "(":
            parsed = _call_args(inline)
            if parsed is not None:
                return ReactAction(thought, tool, parsed, candidate, text[: action.end()].rstrip())
    if not tool:
        return ParseFault(f"Error: the Action line names no tool. {FORMAT_HINT}", text)
    found = _INPUT.search(text, action.end())
    if found is None:
        return ReactAction(thought, tool, _strip_quotes(inline or ""), candidate, text[: action.end()].rstrip())
    block, end = _input_block(text, found)
    args = _input_value(block)
    if isinstance(args, ParseFault):
        return args
    return ReactAction(thought, tool, args, candidate, text[:end].rstrip())


def _input_block(text: str, found: re.Match[str]) -> tuple[str, int]:
    """The Action Input text and where it ends: its line, or more lines for a fence or an open JSON brace."""
    lines = [found.group(1)]
    pos = found.end()
    rest = text[pos:].split("\n")[1:]

    def take() -> bool:
        nonlocal pos
        if not rest:
            return False
        line = rest.pop(0)
        lines.append(line)
        pos += len(line) + 1
        return True

    while not "".join(lines).strip() and take():  # "Action Input:" alone, the value on the next line
        pass
    joined = "\n".join(lines).strip()
    if joined.startswith("```"):
        while joined.count("```") < 2 and take():
            joined = "\n".join(lines).strip()
    elif joined.startswith("{"):
        while joined.count("{") > joined.count("}") and take():
            joined = "\n".join(lines).strip()
    return joined, pos


def _input_value(block: str) -> Mapping[str, Any] | str | ParseFault:
    text = block.strip()
    fence = re.match(r"^```[\w-]*\s*\n?(.*?)\n?\s*(```|$)", text, re.S)
    if fence is not None:
        text = fence.group(1).strip()
    text = text.strip("`").strip()
    if not text.startswith(("{", "[", '"')):
        return _strip_quotes(text)
    value = _literal(text)
    if value is _FAILED:
        if text.startswith("{"):
            return ParseFault(
                # a neutral example: Qwen2.5-Coder-0.5B copied a concrete one ("capital of Australia") as its
                # next query, whatever the question was about
                f"Error: Action Input is not valid JSON: {text[:80]!r}. Write a JSON object with the tool's "
                'argument names in double quotes, e.g. {"argument_name": "value"}.',
                block,
            )
        return _strip_quotes(text)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value if isinstance(value, str) else json.dumps(value)


_FAILED = object()


def _literal(text: str) -> Any:
    """JSON first; then a Python literal (small models write {'query': 'x'}), kept only if JSON-representable."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    except RecursionError:  # nested deeper than the parser recurses: no argument a tool can take
        return _FAILED
    # bare keys, as small models write them ({"elements": ["Fe"], exact: True}): quoted, then read again
    for candidate in dict.fromkeys((text, _BARE_KEY.sub(r'\1"\2":', text))):
        try:
            value = ast.literal_eval(candidate)
            return json.loads(json.dumps(value))  # sets, tuples-as-keys, bytes: not arguments a tool can take
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _FAILED


_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_]\w*)\s*:(?!//)")


def _call_args(inner: str) -> Mapping[str, Any] | str | None:
    """`query="x", k=2` or `"x"` from `search(...)`; None when it is not a literal call (then a bare string)."""
    try:
        node = ast.parse(f"f({inner})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call):
        return None
    try:
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        positional = [ast.literal_eval(a) for a in node.args]
        kwargs, positional = json.loads(json.dumps([kwargs, positional]))  # arguments must be JSON values
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if positional and not kwargs and len(positional) == 1 and isinstance(positional[0], str):
        return positional[0]
    if positional:
        return None
    return kwargs


def _final_text(rest: str) -> str:
    cut = _NEXT_SECTION.search(rest)
    return (rest[: cut.start()] if cut else rest).strip()


def _thought(prefix: str) -> str:
    return _THOUGHT.sub("", prefix.strip(), count=1).strip()


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text
