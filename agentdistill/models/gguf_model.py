"""GGUFChatModel: a ChatModel over one llama.cpp model and context (see gguf_backend for how one is loaded).

One loaded model serves many threads (a lock around generate: a llama.cpp context is not thread-safe).
Consecutive calls that share a prompt prefix (the steps of one ReAct run) reuse its KV cache: llama-cpp-python
compares the new prompt with the tokens already evaluated and only evaluates the new suffix.
"""

from __future__ import annotations

import codecs
import copy
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentdistill.errors import ModelCallError
from agentdistill.models.base import (
    Completion,
    FinishReason,
    Message,
    StopStreamer,
    TokenCallback,
    Usage,
    check_args,
)
from agentdistill.models.gguf_runtime import wait_policy
from agentdistill.models.llama_threads import ThreadGovernor
from agentdistill.models.token_ids import ids_for_text, tokenizer_id

if TYPE_CHECKING:
    from llama_cpp import Llama

_SEED_SPACE = 2**32 - 1  # llama.cpp reads seed 0xFFFFFFFF as "pick a random seed", so stay below it


class PromptTooLong(ModelCallError):
    """The prompt fills the whole context window, so there is no room to generate."""

    def __init__(self, spec: str, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"{spec}: the prompt has {prompt_tokens} tokens but the context window holds {n_ctx}: shorten the"
            " conversation (fewer steps or shorter observations) or load the model with a larger n_ctx.",
            kind="context_overflow",
        )


# llama.cpp's LLAMA_FTYPE values, as GGUF metadata `general.file_type` stores them.
_FILE_TYPES = {"0": "f32", "1": "f16", "2": "q4_0", "3": "q4_1", "7": "q8_0", "8": "q5_0", "9": "q5_1", "10": "q2_k",
               "11": "q3_k_s", "12": "q3_k_m", "13": "q3_k_l", "14": "q4_k_s", "15": "q4_k_m", "16": "q5_k_s",
               "17": "q5_k_m", "18": "q6_k", "32": "bf16"}  # fmt: skip


class GGUFChatModel:
    """A ChatModel over one llama.cpp model and context. Thread-safe: one generate runs at a time."""

    def __init__(
        self, llama: Llama, *, spec: str, path: Path, n_ctx: int, threads: int, adapt_threads: bool = False
    ) -> None:
        self.spec = spec
        self.path = path
        self.n_ctx = n_ctx
        self.threads = threads
        self._llama = llama
        self._governor = ThreadGovernor(threads, adapt=adapt_threads)
        self._lock = threading.Lock()
        self._is_eog = _eog_check(llama)
        self._template = _chat_formatter(llama)
        self.tokenizer = tokenizer_id(lambda text: llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def renamed(self, spec: str) -> GGUFChatModel:
        """The same weights, context and lock under another spec (`local:NAME` and `gguf:NAME` share one load)."""
        twin = copy.copy(self)
        twin.spec = spec
        return twin

    def unwrap(self) -> Llama:
        """The very llama_cpp.Llama this model runs, for benchmarks. Hold no reference across generate calls."""
        return self._llama

    @property
    def has_chat_template(self) -> bool:
        return self._template is not None

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The GGUF's chat template with a generation prompt; base models without one get a `role: content` text."""
        if self._template is not None:
            return self._template(messages=[dict(m) for m in messages]).prompt
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Prompt token ids, as the transformers backend builds them."""
        prompt = self.render_prompt(messages).encode("utf-8")
        if self._template is not None:  # the rendered template holds its special tokens already
            return self._llama.tokenize(prompt, add_bos=False, special=True)
        return self._llama.tokenize(prompt, add_bos=True, special=False)

    def describe(self) -> dict[str, Any]:
        """What `agentdistill models info --load` prints."""
        import llama_cpp

        meta = self._llama.metadata
        policy = wait_policy()
        return {
            "runs_on": "gguf (llama.cpp)",
            "device": "cpu" if not self._llama.model_params.n_gpu_layers else "gpu offload",
            "dtype": _FILE_TYPES.get(meta.get("general.file_type", ""), meta.get("general.file_type")),
            "parameters": llama_cpp.llama_model_n_params(self._llama.model),
            "path": str(self.path),
            "file_mb": round(self.path.stat().st_size / 1e6, 1),
            "architecture": meta.get("general.architecture"),
            "model_name": meta.get("general.name"),
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "threads_adapt_to_load": self._governor.adapt,
            "threads_now": llama_cpp.llama_n_threads(self._llama.ctx),
            "openmp_wait": f"{policy.policy} ({policy.why})",
            "chat_template": self.has_chat_template,
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "llama_cpp_python": llama_cpp.__version__,
        }

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
        min_tokens: int = 0,
    ) -> list[Completion]:
        """See ChatModel.generate. Samples run one after another with seeds seed, seed+1, ...

        Greedy with n > 1 returns n copies of one generation: they would be identical anyway. `min_tokens`
        decodes past end-of-generation tokens until that many are out (benchmarks force lengths).
        """
        check_args(max_tokens=max_tokens, temperature=temperature, n=n, min_tokens=min_tokens, on_token=on_token)
        stop = [s for s in stop if s]
        started = time.perf_counter()
        sample = temperature > 0
        first = seed if seed is not None else secrets.randbelow(_SEED_SPACE)
        with self._lock:  # a llama.cpp context holds one KV cache and one sampler: never share it between calls
            prompt = self.encode(messages)
            room = self.n_ctx - len(prompt)
            if room < 1:
                raise PromptTooLong(self.spec, len(prompt), self.n_ctx)
            budget = min(max_tokens, room)
            with self._governor.decoding() as threads:
                self._use_threads(threads)
                rows = [
                    self._one(
                        prompt,
                        stop=stop,
                        budget=budget,
                        temperature=temperature,
                        seed=(first + i) % _SEED_SPACE,
                        on_token=on_token,
                        min_tokens=min(min_tokens, budget),
                        started=started,
                    )
                    for i in range(n if sample else 1)
                ]
        latency = time.perf_counter() - started
        completions = [
            Completion(
                text=text,
                finish_reason=reason,
                usage=Usage(prompt_tokens=len(prompt), completion_tokens=count),
                latency_s=latency,
                ttft_s=ttft,
                token_ids=ids_for_text(sampled, text, self._detokenize),
                prompt_token_ids=tuple(prompt),
                tokenizer=self.tokenizer,
            )
            for text, reason, count, ttft, sampled in rows
        ]
        return completions if sample else completions * n

    def _detokenize(self, ids: Sequence[int]) -> str:
        return self._llama.detokenize(list(ids)).decode("utf-8", errors="replace")

    def _use_threads(self, threads: int) -> None:
        """Decode (and evaluate prompts) with `threads` from now on; llama.cpp applies it to the next batch.

        The count is read back from the context, not remembered here: `renamed` twins share that context.
        """
        import llama_cpp

        if llama_cpp.llama_n_threads(self._llama.ctx) != threads:
            llama_cpp.llama_set_n_threads(self._llama.ctx, threads, threads)

    def _one(
        self,
        prompt: list[int],
        *,
        stop: Sequence[str],
        budget: int,
        temperature: float,
        seed: int,
        on_token: TokenCallback | None,
        min_tokens: int,
        started: float,
    ) -> tuple[str, FinishReason, int, float | None, list[int]]:
        """(text cut at stop, finish reason, tokens generated, seconds to the first token, sampled ids but the
        end token) of one sample.

        Decodes token by token so a stop sequence ends generation at once, also when it spans tokens.
        """
        llama = self._llama
        llama.set_seed(seed)
        out = StopStreamer(stop, on_token)  # cuts at the stop even with no listener
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # holds half a multi-byte character back
        count, ended, ttft, sampled = 0, False, None, []
        # Plain temperature sampling, as the OpenAI API and our transformers backend do: top-k, top-p and
        # min-p off. temp=0 makes llama.cpp pick the argmax.
        tokens = llama.generate(prompt, temp=temperature, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
        try:
            for token in tokens:
                if ttft is None:
                    ttft = time.perf_counter() - started
                count += 1
                if self._is_eog(token):
                    if count > min_tokens:  # the end token counts, as it does in API usage
                        ended = True
                        break
                else:
                    sampled.append(token)
                    if out.feed(utf8.decode(llama.detokenize([token]))):
                        break
                if count >= budget:
                    break
        except RuntimeError as exc:  # llama_decode failed (out of memory, a broken context)
            llama.reset()  # the KV cache may be half-written: evaluate the next prompt from scratch
            raise ModelCallError(
                f"{self.spec}: llama.cpp failed while generating: {exc}. Free some memory or load the model"
                " with a smaller n_ctx, then retry."
            ) from exc
        finally:
            tokens.close()
        stopped = out.stopped or out.feed(utf8.decode(b"", final=True))
        reason: FinishReason = "stop" if stopped or ended else "length"
        return out.finish(), reason, count, ttft, sampled


def _eog_check(llama: Llama) -> Callable[[int], bool]:
    """True for any end-of-generation token (eos, eot, <|im_end|>...), as llama.cpp itself decides."""
    import llama_cpp

    vocab = llama._model.vocab  # the public API has no accessor for the vocab handle
    return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def _chat_formatter(llama: Llama) -> Callable[..., Any] | None:
    """The GGUF's own Jinja chat template (`tokenizer.chat_template`), or None for base models without one."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        add_generation_prompt=True,
    )
