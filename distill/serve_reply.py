"""The replies `agentdistill serve` sends: choices, usage, OpenAI error bodies and server-sent event framing.

A `GenerateCall` is a request as the model is called with it; `choice_reply` turns each completion back into an
API choice, with `<tool_call>` blocks as `tool_calls` when tools were offered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from agentdistill.distill.serve_tools import parse_tool_calls
from agentdistill.errors import AgentDistillError
from agentdistill.models.base import Completion, Message

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


@dataclass(frozen=True)
class GenerateCall:
    """One generate call, as the request asks for it."""

    messages: list[Message]
    stop: list[str]
    max_tokens: int
    temperature: float
    n: int
    seed: int | None
    tool_names: tuple[str, ...] = ()  # functions offered: the replies are parsed for calls to them

    @property
    def streams_tokens(self) -> bool:
        """One sample without tools streams as it decodes; calls are only known once the reply is whole."""
        return self.n == 1 and not self.tool_names


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    """An OpenAI-style error body, which the openai SDK (and so our client) reads the message from."""
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status)


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON of an OpenAI error: message, type (from the status), param and code."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def describe_error(exc: BaseException) -> str:
    """A model failure in words for the client: our errors as they are, others with their type."""
    return str(exc) if isinstance(exc, AgentDistillError) else f"{type(exc).__name__}: {exc}"


def _finish(completion: Completion) -> str:
    return "length" if completion.finish_reason == "length" else "stop"


def choice_reply(completion: Completion, call: GenerateCall) -> tuple[dict[str, Any], str]:
    """A choice's message and finish reason; with tools offered, its `<tool_call>` blocks become `tool_calls`."""
    if not call.tool_names:
        return {"role": "assistant", "content": completion.text}, _finish(completion)
    text, calls = parse_tool_calls(completion.text, call.tool_names)
    if not calls:
        return {"role": "assistant", "content": text}, _finish(completion)
    return {"role": "assistant", "content": text or None, "tool_calls": calls}, "tool_calls"


def usage_of(completions: Sequence[Completion]) -> dict[str, int]:
    """The API's usage: the prompt once, every choice's completion tokens summed."""
    prompt = completions[0].usage.prompt_tokens if completions else 0
    completion = sum(c.usage.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse_event(payload: dict[str, Any]) -> str:
    """One server-sent event carrying `payload` as JSON."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
