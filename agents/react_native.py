"""Native tool calling for the react graph: the model picks tools through the API, the trajectory stays text.

`NativeToolModel` offers the tools as OpenAI function schemas and renders each native call back into
the graph's text protocol (`Action: search` / `Action Input: {...}`). So the graph, its parser and the
recorded trajectories are identical in both modes, and a teacher that used native calls can still be
distilled into a small student that writes the text protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agentdistill.agents.react_parse import parse_react
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback
from agentdistill.tools.base import ParseFault, Tool


def tool_schemas(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """OpenAI function-calling schemas for `tools`."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def render_completion(completion: Completion) -> Completion:
    """The completion as the text protocol: its first native call as Action lines, else its text as an answer.

    Only the first call is kept: the graph runs one tool per step, as in the text protocol.
    """
    content = completion.text.strip()
    if completion.tool_calls:
        call = completion.tool_calls[0]
        thought = f"Thought: {content}\n" if content else ""
        return replace(completion, text=f"{thought}Action: {call.name}\nAction Input: {call.arguments}")
    if content and isinstance(parse_react(content), ParseFault):
        # A plain reply without a tool call is the model's answer in native mode.
        return replace(completion, text=f"Final Answer: {content}")
    return completion


class NativeToolModel:
    """Wraps a model that supports `with_tools` (the `openai:` backend) so its tool calls read as ReAct text."""

    def __init__(self, inner: ChatModel, tools: Sequence[Tool]) -> None:
        bind = getattr(inner, "with_tools", None)
        if bind is None:
            raise ConfigError(
                "tool_calling", "native", f"a model with native tool calls (an openai: model), not {inner.spec}; "
                "use tool_calling='text', which works with every model"
            )  # fmt: skip
        self.inner = bind(tool_schemas(tools))
        self.spec = inner.spec

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        completions = self.inner.generate(
            messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed
        )
        rendered = [render_completion(c) for c in completions]
        if on_token is not None and rendered:
            on_token(rendered[0].text)  # native calls are not streamed: the listener gets the step at once
        return rendered
