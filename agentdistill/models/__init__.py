"""`make_chat_model(spec)` is the only way code gets a model. The backend table is fixed: nothing registers itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agentdistill.errors import UnknownModelSpec
from agentdistill.models.base import (
    ChatModel,
    Completion,
    Message,
    ModelOptions,
    Usage,
    assistant,
    system,
    user,
)


def _openai(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.openai_backend import OpenAIChatModel

    return OpenAIChatModel.from_spec(rest, options)


def _local(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.transformers_backend import load_packaged_model

    return load_packaged_model(rest, options)


def _hf(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.transformers_backend import load_hf_dir

    return load_hf_dir(rest, options)


def _scripted(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.scripted import ScriptedModel

    return ScriptedModel.from_file(rest, options)


_BACKENDS: Mapping[str, Callable[[str, ModelOptions], ChatModel]] = {
    "openai": _openai,
    "local": _local,
    "hf": _hf,
    "student": _hf,  # a distilled student dir: same loader, named for what it is
    "scripted": _scripted,
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def make_chat_model(spec: str, options: ModelOptions | None = None) -> ChatModel:
    """`spec` is `<backend>:<rest>`, e.g. `openai:gpt-4o-mini`, `local:smollm2-135m` or `hf:./students/run3`."""
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in _BACKENDS or not rest:
        raise UnknownModelSpec(spec, known=backend_names())
    return _BACKENDS[backend](rest, options or ModelOptions())


__all__ = [
    "ChatModel",
    "Completion",
    "Message",
    "ModelOptions",
    "Usage",
    "assistant",
    "backend_names",
    "make_chat_model",
    "system",
    "user",
]
