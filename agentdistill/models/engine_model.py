"""Local models on a managed llama-server: the ChatModel the graphs get, and when it is used.

`open_model(spec, ...)` is how bench and distill get their model: with `engine="auto"` a `local:`/`gguf:`
spec with more than one item in flight runs on an engine with that many slots (started or reused), driven
through the OpenAI-compatible backend, so graphs, trajectories and stop handling are those of any
`openai:` model; the completions carry the spec the user gave. Otherwise, or when llama-server is not
built or will not start, the model runs in-process as before, with one line saying why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from agentdistill.errors import ModelCallError, ModelUnavailable
from agentdistill.models import make_chat_model
from agentdistill.models.base import ChatModel, Completion, Message, ModelOptions, TokenCallback
from agentdistill.models.engine import EngineConfig, EngineError, server_binary
from agentdistill.models.engine_manager import Engine, start_engine
from agentdistill.models.token_ids import tokenizer_id

EngineMode = Literal["auto", "server", "inproc"]
ENGINE_MODES: tuple[str, ...] = ("auto", "server", "inproc")
Say = Callable[[str], None]


class EngineChatModel:
    """A ChatModel over an engine's OpenAI API that keeps the user's spec; restarts a dead server once.

    The call that found the server dead still fails (the runner records that item as an error, and
    `bench run --resume` runs it again); later calls go to the restarted server.
    """

    def __init__(self, spec: str, engine: Engine, options: ModelOptions) -> None:
        self.spec = spec
        self.engine = engine
        self._options = options
        self.tokenizer = gguf_tokenizer_id(engine.config.model_path)
        self._client = self._connect()

    def _connect(self) -> ChatModel:
        from agentdistill.models.openai_backend import OpenAIChatModel

        return OpenAIChatModel(
            self.engine.config.name,
            base_url=self.engine.base_url,
            api_key=self.engine.state.api_key,
            timeout_s=self._options.timeout_s,
            max_retries=1,  # a local server that fails twice is down, not busy: restart it instead
            backoff_base_s=0.2,
            tokenizer=self.tokenizer,  # the server's sampled ids come back with each completion
        )

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
        client = self._client
        try:
            return client.generate(
                messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed, on_token=on_token
            )
        except (ModelUnavailable, ModelCallError) as exc:
            if self.engine.restart_if_dead():
                self._client = self._connect()
                raise ModelUnavailable(
                    f"{self.spec}: llama-server died and was restarted; this call failed: {exc}"
                ) from exc
            raise

    def describe(self) -> dict:
        state = self.engine.state
        return {
            "runs_on": "llama-server (engine)",
            "url": state.url,
            "parallel": state.parallel,
            "model": state.model_path,
        }


@functools.lru_cache(maxsize=8)
def gguf_tokenizer_id(path: Path) -> str | None:
    """The tokenizer id (models/token_ids.py) of a GGUF, from its vocabulary alone (no weights loaded); None when
    llama-cpp-python cannot read it (then no token ids are recorded: the text is all there is)."""
    try:
        from llama_cpp import Llama

        llama = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ImportError, ValueError, OSError):
        return None
    try:
        return tokenizer_id(lambda text: llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
    finally:
        llama.close()


def gguf_for_spec(spec: str) -> tuple[Path, str] | None:
    """(GGUF file, name) that a `local:`/`gguf:` spec runs on llama.cpp, or None for other specs."""
    from agentdistill.models.gguf_backend import load_gguf_target

    backend, _, rest = spec.partition(":")
    if backend not in ("local", "gguf") or not rest:
        return None
    return load_gguf_target(rest)


def engine_config(spec: str, *, parallel: int, ctx: int = 4096, threads: int | None = None) -> EngineConfig | None:
    found = gguf_for_spec(spec)
    if found is None:
        return None
    path, name = found
    return EngineConfig(model_path=path, name=name, parallel=parallel, ctx=ctx, threads=threads)


@contextlib.contextmanager
def open_model(
    spec: str,
    options: ModelOptions,
    *,
    concurrency: int,
    engine: EngineMode = "auto",
    home: Path,
    say: Say | None = None,
    slots: int | None = None,
) -> Iterator[ChatModel]:
    """The model for a run with `concurrency` items in flight; an engine it started is released after.

    `slots` is the engine's --parallel (default: `concurrency`); fewer slots than items in flight keep every
    slot busy while some items run code or wait, and the extra requests queue in the server.
    """
    say = say or (lambda message: None)
    chosen = _engine_for(spec, options, concurrency=concurrency, mode=engine, home=home, say=say, slots=slots)
    if chosen is None:
        yield make_chat_model(spec, options)
        return
    # A busy engine answers late, not never (4 slots of a 1.5B model decode ~10 tok/s each on 2 cores):
    # only a call slower than this counts as a hung server.
    patient = dataclasses.replace(options, timeout_s=max(options.timeout_s, 600.0))
    try:
        yield EngineChatModel(spec, chosen, patient)
    finally:
        chosen.release()


def _engine_for(
    spec: str,
    options: ModelOptions,
    *,
    concurrency: int,
    mode: EngineMode,
    home: Path,
    say: Say,
    slots: int | None = None,
) -> Engine | None:
    if mode == "inproc":
        return None
    backend = spec.partition(":")[0]
    if backend not in ("local", "gguf"):
        if mode == "server":
            raise EngineError(f"--engine server runs local:/gguf: models on llama-server; {spec} is not one")
        return None
    if mode == "auto" and concurrency < 2:
        return None  # one stream decodes as fast in-process, without starting a server
    if options.adapter:
        if mode == "server":
            raise EngineError("--engine server cannot apply a LoRA adapter: merge it and export the student to GGUF")
        return None
    if server_binary() is None:
        if mode == "server":
            raise EngineError("llama-server is not built: run `agentdistill engine build`")
        say("llama-server is not built (`agentdistill engine build`): running the model in-process, one item at a time")
        return None
    config = engine_config(spec, parallel=max(1, min(slots or concurrency, concurrency)), threads=options.threads)
    assert config is not None
    try:
        engine = start_engine(config, home=home, say=say)
    except EngineError as exc:
        if mode == "server":
            raise
        say(f"{exc}: running the model in-process instead")
        return None
    say(f"{spec} runs on llama-server {engine.state.url} with {engine.state.parallel} slots")
    return engine
