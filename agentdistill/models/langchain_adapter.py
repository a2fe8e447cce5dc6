"""LangChain chat models both ways: ours as a `BaseChatModel`, and any `BaseChatModel` as one of ours.

`AgentdistillChatModel` puts a ChatModel (a packaged model, a student, a llama-server engine) anywhere
LangChain takes a chat model; it streams through LangChain's callbacks, so inside a LangGraph node its
tokens reach `graph.stream(..., stream_mode="messages")`. `LangChainModel` is the other way: a user's
`ChatOpenAI`/`ChatOllama`/any `BaseChatModel` drives our graphs (`build_agent` wraps one it is given, and
the spec `langchain:module:Class` builds one).

`call_through_langchain` is what the recorder uses for every agent call made inside a LangGraph run, so that
`stream_mode="messages"` and LangChain tracers see our graphs' model calls like any LangChain model's.
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from agentdistill.errors import ConfigError
from agentdistill.models.base import (
    ChatModel,
    Completion,
    Message,
    StopStreamer,
    TokenCallback,
    Usage,
    cut_at_stop,
)

_ROLES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


def to_langchain(messages: Sequence[Message]) -> list[BaseMessage]:
    return [_ROLES[m["role"]](content=m["content"]) for m in messages]


def from_langchain(messages: Sequence[BaseMessage]) -> list[Message]:
    out: list[Message] = []
    for m in messages:
        role = {"system": "system", "human": "user", "ai": "assistant"}.get(m.type)
        text = m.content if isinstance(m.content, str) else "".join(
            p.get("text", "") if isinstance(p, dict) else str(p) for p in m.content
        )  # fmt: skip
        if role is None:  # a tool result, as the text protocol shows one
            role, text = "user", f"Observation: {text}" if isinstance(m, ToolMessage) else text
        out.append({"role": role, "content": text})  # type: ignore[typeddict-item]
    return out


class AgentdistillChatModel(BaseChatModel):
    """One of our ChatModels as a LangChain chat model (invoke, stream, batch, callbacks, LangGraph)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any  # a ChatModel; Any because pydantic cannot check a Protocol
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    cache: bool | None = False  # a global LLM cache would answer agent calls from another run
    on_token: Any = None  # also told every delta (the graph's own streaming listener)
    last: Any = None  # the Completion of the latest call, with our usage figures

    @property
    def _llm_type(self) -> str:
        return "agentdistill"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"spec": self.model.spec, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _call(self, messages: list[BaseMessage], stop: list[str] | None, on_token: TokenCallback | None) -> Completion:
        [completion] = self.model.generate(
            from_langchain(messages), stop=stop or (), max_tokens=self.max_tokens, temperature=self.temperature,
            seed=self.seed, on_token=on_token,
        )  # fmt: skip
        self.last = completion
        return completion

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = self._call(messages, stop, self.on_token)
        return ChatResult(generations=[ChatGeneration(message=_ai_message(completion))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # generate() blocks and reports deltas through a callback: run it on a thread, yield what it reports.
        deltas: queue.Queue[tuple[str, Any]] = queue.Queue()
        forward = self.on_token

        def on_token(delta: str) -> None:
            if forward is not None:
                forward(delta)
            deltas.put(("delta", delta))

        def work() -> None:
            try:
                deltas.put(("done", self._call(messages, stop, on_token)))
            except BaseException as exc:  # re-raised on the caller's thread
                deltas.put(("error", exc))

        threading.Thread(target=work, name="agentdistill-lc-stream", daemon=True).start()
        while True:
            kind, payload = deltas.get()
            if kind == "error":
                raise payload
            if kind == "done":
                usage = payload.usage
                yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=_usage(usage)),
                                          generation_info={"finish_reason": payload.finish_reason})  # fmt: skip
                return
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=payload))
            if run_manager is not None:
                run_manager.on_llm_new_token(payload, chunk=chunk)
            yield chunk


def _usage(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}  # fmt: skip


def _ai_message(completion: Completion) -> AIMessage:
    return AIMessage(content=completion.text, usage_metadata=_usage(completion.usage),
                     response_metadata={"finish_reason": completion.finish_reason})  # fmt: skip


def call_through_langchain(
    model: ChatModel,
    messages: Sequence[Message],
    *,
    stop: Sequence[str],
    max_tokens: int,
    temperature: float,
    seed: int | None,
    on_token: TokenCallback | None,
) -> Completion:
    """One call of `model` as a LangChain chat model run: LangGraph's messages stream and tracers see it."""
    adapter = AgentdistillChatModel(model=model, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                    on_token=on_token)  # fmt: skip
    adapter.invoke(to_langchain(messages), stop=list(stop) or None)
    return adapter.last


class LangChainModel:
    """A LangChain `BaseChatModel` as one of our ChatModels: graphs, benchmarks and distillation take it."""

    def __init__(self, chat: BaseChatModel, *, spec: str | None = None) -> None:
        self.chat = chat
        name = getattr(chat, "model_name", None) or getattr(chat, "model", None) or ""
        self.spec = spec or f"langchain:{type(chat).__name__}" + (f":{name}" if isinstance(name, str) and name else "")

    def _kwargs(self, max_tokens: int, temperature: float, seed: int | None) -> dict[str, Any]:
        """The call's settings, for the ones this model class declares (others would be sent to its API)."""
        fields = type(self.chat).model_fields
        wanted = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        return {k: v for k, v in wanted.items() if k in fields and v is not None}

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
        lc_messages = to_langchain(messages)
        kwargs = self._kwargs(max_tokens, temperature, seed)
        out = []
        for _ in range(n):
            if on_token is not None:
                streamer = StopStreamer(stop, on_token)
                for chunk in self.chat.stream(lc_messages, stop=list(stop) or None, **kwargs):
                    if streamer.feed(chunk.text):
                        break
                text, usage = streamer.finish(), None
            else:
                reply = self.chat.invoke(lc_messages, stop=list(stop) or None, **kwargs)
                text, usage = reply.text, getattr(reply, "usage_metadata", None)
            text, _ = cut_at_stop(text, stop)  # a model that ignores `stop` still ends where the graph asked
            tokens = Usage(prompt_tokens=(usage or {}).get("input_tokens", 0),
                           completion_tokens=(usage or {}).get("output_tokens", 0))  # fmt: skip
            out.append(Completion(text=text, finish_reason="stop", usage=tokens))
        return out


def make_langchain_model(rest: str, options: Any = None) -> LangChainModel:
    """`langchain:package.module:Class[?key=value&...]`: the class built with those keyword arguments."""
    target, _, query = rest.partition("?")
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError("model", f"langchain:{rest}", "langchain:package.module:ClassName, e.g. "
                          "langchain:langchain_openai:ChatOpenAI?model=gpt-4o-mini")  # fmt: skip
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        package = module_name.split(".")[0].replace("_", "-")
        raise ConfigError("model", f"langchain:{rest}", f"an importable BaseChatModel class ({exc}); install its "
                          f"package, e.g. pip install {package}") from None  # fmt: skip
    chat = cls(**dict(parse_qsl(query)))
    if not isinstance(chat, BaseChatModel):
        raise ConfigError("model", f"langchain:{rest}", "a LangChain BaseChatModel class")
    return LangChainModel(chat, spec=f"langchain:{rest}")
