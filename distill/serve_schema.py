"""The chat completions request `agentdistill serve` accepts: OpenAI's fields, checked by pydantic.

A request this server cannot honour exactly is refused with a 400 (serve.py turns the validation errors into
OpenAI error JSON) rather than answered differently from what was asked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentdistill.distill.serve_tools import call_block, choice_line, response_block, tool_names
from agentdistill.models.base import Message

MAX_N = 16  # samples per request; more is a mistake, not a workload


class _TextPart(BaseModel):
    type: Literal["text"]  # image or audio parts are refused: a text model would silently ignore them
    text: str


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, ...: nothing a text chat template shows

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's earlier native calls

    def to_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or ())
        if self.role == "tool":  # a call's result: the next user turn, as Qwen's template shows it
            return {"role": "user", "content": response_block(text)}
        if self.tool_calls:
            blocks = [call_block(c.get("function", {}).get("name", ""), c.get("function", {}).get("arguments"))
                      for c in self.tool_calls]  # fmt: skip
            text = "\n".join([text, *blocks] if text else blocks)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class _StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completions request this server acts on; others (user, ...) are ignored.

    Settings that would change the answer but that a ChatModel cannot honour (top_p < 1, penalties,
    logprobs) are refused with a 400 rather than silently dropped. `tools` are offered in the prompt and
    `<tool_call>` blocks in the reply come back as `tool_calls` (distill/serve_tools.py).
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[_ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @field_validator("top_p")
    @classmethod
    def _plain_top_p(cls, value: float | None) -> float | None:
        if value is not None and value != 1:
            raise ValueError("only top_p=1 is supported: this server samples with temperature alone")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("penalties are not supported: leave them unset or 0")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("logprobs are not supported by this server")
        return value

    @field_validator("tools")
    @classmethod
    def _function_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        tool_names(value or [])
        return value

    @model_validator(mode="after")
    def _known_choice(self) -> ChatRequest:
        choice_line(self.tool_choice, tool_names(self.tools or []))
        if self.tool_choice not in (None, "auto", "none") and not self.tools:
            raise ValueError("tool_choice needs tools: offer the functions in `tools`")
        return self

    @property
    def offered_tools(self) -> list[dict[str, Any]]:
        """The tools the model is shown: none when tool_choice is "none"."""
        return [] if self.tool_choice == "none" else list(self.tools or [])

    @property
    def stops(self) -> list[str]:
        raw = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return [s for s in raw if s]
