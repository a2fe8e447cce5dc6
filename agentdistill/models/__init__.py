"""`make_chat_model(spec)` is the only way code gets a model. The backend table is fixed: nothing registers itself."""

from __future__ import annotations

import sys
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


def local_backend(options: ModelOptions | None = None) -> tuple[str, str | None]:
    """("gguf", None) when `local:` runs on llama.cpp, else ("transformers", why gguf is not used).

    llama.cpp is 6-9x faster on CPU, but llama-cpp-python compiles on install and may be missing or
    built for instructions this CPU cannot run (the probe decides, in a child process); a LoRA adapter
    only applies to HF weights.
    """
    from agentdistill.models.gguf_backend import gguf_unavailable_reason

    if options is not None and options.adapter:
        return "transformers", "an adapter is set, and adapters apply to HF weights only"
    reason = gguf_unavailable_reason()
    return ("transformers", reason) if reason else ("gguf", None)


def _local(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models import llama_probe

    backend, why = local_backend(options)
    if backend == "gguf":
        from agentdistill.models.gguf_backend import load_packaged_gguf

        try:
            return load_packaged_gguf(rest, options, spec=f"local:{rest}")
        except llama_probe.LlamaCppUnusable as exc:  # this model's own probe failed where the smallest one passed
            why = str(exc)
    if why and not options.adapter and llama_probe.find_install() is not None:  # installed but unusable: say why, once
        _say_once(f"local:{rest} runs on transformers: {why}")
    return _transformers(rest, options, spec=f"local:{rest}")


_SAID: set[str] = set()  # messages already printed by this process


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(f"agentdistill: {message}", file=sys.stderr, flush=True)


def _transformers(rest: str, options: ModelOptions, *, spec: str | None = None) -> ChatModel:
    from agentdistill.models.transformers_backend import load_packaged_model

    model = load_packaged_model(rest, options)
    spec = spec or f"transformers:{rest}"
    return model if model.spec == spec else model.renamed(spec)


def _gguf(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.gguf_backend import load_gguf

    return load_gguf(rest, options)


def _hf(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.transformers_backend import load_hf_dir

    return load_hf_dir(rest, options)


def _student(rest: str, options: ModelOptions) -> ChatModel:
    from pathlib import Path

    if not Path(rest).expanduser().exists() and "/" not in rest:  # a shipped student by name
        from agentdistill.models.students import load_student

        return load_student(rest, options)
    model = _hf(rest, options)
    spec = f"student:{rest}"
    return model if model.spec == spec else model.renamed(spec)  # type: ignore[attr-defined]


def _scripted(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.scripted import ScriptedModel

    return ScriptedModel.from_file(rest, options)


def _langchain(rest: str, options: ModelOptions) -> ChatModel:
    from agentdistill.models.langchain_adapter import make_langchain_model

    return make_langchain_model(rest, options)


_BACKENDS: Mapping[str, Callable[[str, ModelOptions], ChatModel]] = {
    "openai": _openai,
    "local": _local,  # gguf when llama-cpp-python is installed, else transformers
    "gguf": _gguf,
    "transformers": _transformers,  # a packaged model on transformers, whatever `local:` picks
    "hf": _hf,
    "student": _student,  # a shipped student by name, or a distilled student dir (the hf loader)
    "scripted": _scripted,
    "langchain": _langchain,  # langchain:package.module:Class?key=value: any LangChain BaseChatModel
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def split_spec(spec: str) -> tuple[str, str]:
    """(backend, rest) of a model spec such as `local:smollm2-135m`; UnknownModelSpec names the valid prefixes."""
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in _BACKENDS or not rest:
        raise UnknownModelSpec(spec, known=backend_names())
    return backend, rest


def make_chat_model(spec: str, options: ModelOptions | None = None) -> ChatModel:
    """`spec` is `<backend>:<rest>`, e.g. `openai:gpt-4o-mini`, `local:smollm2-135m`, `gguf:./m.gguf`."""
    backend, rest = split_spec(spec)
    return _BACKENDS[backend](rest, options or ModelOptions())


__all__ = [
    "ChatModel",
    "Completion",
    "Message",
    "ModelOptions",
    "Usage",
    "assistant",
    "backend_names",
    "local_backend",
    "make_chat_model",
    "split_spec",
    "system",
    "user",
]
