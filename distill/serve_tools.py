"""Native tool calls for `serve`: the offered tools go into the prompt, `<tool_call>` blocks come out as calls.

The format is the Hermes one that Qwen2.5's chat template writes (a `<tools>` list in the system prompt, a
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` block per call, results as `<tool_response>`),
so the packaged Qwen models call tools the way they were trained to; any ChatModel gets the same text, which
is what vLLM's hermes parser expects as well. The rendering is ours rather than each tokenizer's template
because a ChatModel takes role/content messages, not tool schemas, and every backend must render alike.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from agentdistill.models.base import Message

TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> \
XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""
_CHOICE = {
    "required": "You must call at least one of the functions above.",
    "function": "You must call the function {name}.",
}
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


class ToolSpecError(ValueError):
    """A `tools` or `tool_choice` value this server cannot act on (shown to the client as a 400)."""


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The function names of OpenAI tool schemas; anything but `{"type": "function", "function": {"name"}}` fails."""
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ToolSpecError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., ...}}}}")
        names.append(function["name"])
    return names


def choice_line(choice: str | Mapping[str, Any] | None, names: Sequence[str]) -> str | None:
    """What `tool_choice` adds to the prompt: None for "auto"; raises for values the API does not define."""
    if choice in (None, "auto", "none"):
        return None
    if choice == "required":
        return _CHOICE["required"]
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise ToolSpecError(f"tool_choice names function {name!r}, which is not among the tools offered")
        return _CHOICE["function"].format(name=name)
    raise ToolSpecError("tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {...}}")


def offer_tools(
    messages: Sequence[Message], tools: Sequence[Mapping[str, Any]], choice: str | Mapping[str, Any] | None
) -> list[Message]:
    """`messages` with the tools described at the end of the system prompt (a system message is added if none)."""
    schemas = "\n".join(json.dumps(dict(t["function"]) | {"type": "function"}, ensure_ascii=False) for t in tools)
    text = TOOLS_PROMPT.format(tools=schemas)
    if line := choice_line(choice, tool_names(tools)):
        text += f"\n{line}"
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content'].rstrip()}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def call_block(name: str, arguments: str | Mapping[str, Any] | None) -> str:
    """An earlier assistant call as the model would have written it."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            pass  # shown as the client sent it
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments or {}}, ensure_ascii=False)}\n</tool_call>"


def response_block(content: str) -> str:
    """A tool's result, as the model sees it in the next user turn."""
    return f"<tool_response>\n{content}\n</tool_response>"


def _call(name: str, arguments: Any) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}  # fmt: skip


def parse_tool_calls(text: str, names: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """The reply's text outside `<tool_call>` blocks, and its calls as OpenAI `tool_calls` entries.

    A block that is not JSON with a known function name stays in the text: a client then sees what the
    model wrote instead of a call that would fail. An unclosed last block (the reply ran out of tokens or
    stopped at a stop string) is still read, and so is a reply that is only a call's JSON without the tags.
    """
    calls, kept, last = [], [], 0
    for match in _BLOCK.finditer(text):
        try:
            data = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or data.get("name") not in names:
            continue
        calls.append(_call(data["name"], data.get("arguments", data.get("parameters", {}))))
        kept.append(text[last : match.start()])
        last = match.end()
    kept.append(text[last:])
    if not calls and (bare := _bare_call(text, names)):  # small models drop the tags around the JSON
        return "", [bare]
    return "".join(kept).strip() if calls else text, calls


def _bare_call(text: str, names: Sequence[str]) -> dict[str, Any] | None:
    """A reply that is nothing but one call's JSON (optionally fenced): Qwen2.5-Coder-0.5B wrote one in 5 such."""
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("name") not in names or not isinstance(data.get("arguments"), dict):
        return None
    return _call(data["name"], data["arguments"])
