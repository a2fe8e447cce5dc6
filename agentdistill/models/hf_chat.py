"""The chat model over loaded transformers weights: one generate call, made as fast as transformers allows.

Loading and the process-wide model cache live in transformers_backend.py. Speed, where a plain
generate() leaves it on the table:
* a run's next prompt usually extends its last one, so the keys/values of the last prompt (and of the
  completion the model wrote) are kept and only the new suffix is run (prefix_cache.py);
* `n` samples share one prefill of the prompt and decode as one batch;
* concurrent callers can be batched into one generate (batcher.py; on by default on GPUs only).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList

from agentdistill.models.base import Completion, Message, StopStreamer, TokenCallback, Usage, check_args
from agentdistill.models.batcher import BatchStats, RequestBatcher
from agentdistill.models.decoding import DeltaStreamer, Row, RowStops, finish_row, seeded
from agentdistill.models.prefix_cache import PrefixCache, PrefixStats, crop_to
from agentdistill.models.token_ids import ids_for_text, tokenizer_id


@dataclass(frozen=True)
class _Request:
    """One generate call as the batcher queues it (n=1; sampled n>1 calls are a batch already)."""

    messages: tuple[Message, ...]
    stop: tuple[str, ...]
    max_tokens: int
    min_tokens: int
    temperature: float

    @property
    def batch_key(self) -> tuple[float, int]:
        """Requests share a batch only if generate() takes the same settings for all of them."""
        return (self.temperature, self.min_tokens)


@dataclass(frozen=True)
class _Result:
    rows: list[Row]
    prompt_tokens: int  # the request's whole prompt, reused prefix included (what an API bills)
    ttft_s: float | None = None


class TransformersChatModel:
    """A ChatModel over an HF causal LM and its tokenizer. Thread-safe: one generate runs at a time.

    `reuse_prefix` keeps the keys/values of recent prompts for the next call that extends one.
    `batch_requests` batches concurrent callers; None means on for cuda, where a batch costs about what
    one request does, and off on CPU: there it helps too (4 fresh concurrent requests ran 1.9x faster
    on 2 cores), but batched rows skip prefix reuse, which agent runs on CPU depend on, and a greedy
    answer would then depend on which requests happened to share its batch.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        spec: str,
        device: str,
        dtype: str,
        lock: threading.Lock | None = None,
        reuse_prefix: bool = True,
        batch_requests: bool | None = None,
        max_batch: int = 8,
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self._model = model
        self._tokenizer = tokenizer
        self._lock = lock or threading.Lock()
        eos = model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self._eos: set[int] = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self._eos), 0)
        self._pad: int = pad
        # Our own DynamicCache objects only behave like generate's default cache for standard attention models.
        self._cacheable = type(model)._supports_default_dynamic_cache() and (
            model.generation_config.cache_implementation in (None, "dynamic")
        )
        self._prefix = PrefixCache() if reuse_prefix and self._cacheable else None
        self.tokenizer = tokenizer_id(lambda text: tokenizer.encode(text, add_special_tokens=False))
        self._max_batch = max_batch  # requests per batch; more wait for the next one
        self._batcher = self._make_batcher(device.startswith("cuda") if batch_requests is None else batch_requests)

    def renamed(self, spec: str) -> TransformersChatModel:
        """The same weights, lock, caches and batcher under another spec (`hf:DIR` of a dir loaded as `local:NAME`)."""
        view = copy.copy(self)
        view.spec = spec
        return view

    def variant(self, *, reuse_prefix: bool | None = None, batch_requests: bool | None = None) -> TransformersChatModel:
        """The same weights and lock with other speed settings (benchmarks compare them; None keeps the current one)."""
        view = copy.copy(self)
        if reuse_prefix is not None:
            view._prefix = PrefixCache() if reuse_prefix and self._cacheable else None
        # Always a new batcher: the old one runs its batches on the original's prefix cache.
        view._batcher = view._make_batcher(self._batcher is not None if batch_requests is None else batch_requests)
        return view

    def _make_batcher(self, enabled: bool) -> RequestBatcher[_Request, _Result] | None:
        if not enabled:
            return None
        return RequestBatcher(self._run_batch, key=lambda r: r.batch_key, max_batch=self._max_batch)

    def unwrap(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """(hf_model, tokenizer): the very weights this model runs, for benchmarks and training.

        Whoever holds the weights may change them, so cached keys/values are dropped.
        """
        self.clear_prefix_cache()
        return self._model, self._tokenizer

    def clear_prefix_cache(self) -> None:
        with self._lock:
            if self._prefix is not None:
                self._prefix.clear()

    @property
    def prefix_cache(self) -> PrefixCache | None:
        """This model's prefix cache (its settings and stats); None when reuse is off."""
        return self._prefix

    @property
    def prefix_stats(self) -> PrefixStats | None:
        """Prompt tokens reused from and fed past the prefix cache; None when reuse is off."""
        return self._prefix.stats if self._prefix is not None else None

    @property
    def batch_stats(self) -> BatchStats | None:
        """Batches the request batcher ran; None when batching is off."""
        return self._batcher.stats if self._batcher is not None else None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tokenizer, "chat_template", None))

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The chat template with a generation prompt; base models without one get a `role: content` transcript."""
        if self.has_chat_template:
            return self._tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
            )
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, messages: Sequence[Message]) -> torch.Tensor:
        """Prompt token ids, shape (1, len), on the model's device."""
        # A rendered template already holds its special tokens; only the plain transcript needs BOS added.
        enc = self._tokenizer(
            self.render_prompt(messages), add_special_tokens=not self.has_chat_template, return_tensors="pt"
        )
        return enc["input_ids"].to(self._model.device)

    def describe(self) -> dict[str, Any]:
        """What `agentdistill models info --load` prints: where it runs, in what precision, how big it is."""
        config = getattr(self._model, "config", None)
        return {
            "runs_on": "transformers",
            "device": str(self._model.device),
            "dtype": str(next(self._model.parameters()).dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in self._model.parameters()),
            "architecture": getattr(config, "model_type", None),
            "context_length": self.context_length,
            "chat_template": self.has_chat_template,
            "prefix_reuse": self._prefix is not None,
            "request_batching": self._batcher is not None,
        }

    @property
    def context_length(self) -> int | None:
        """The model's context window (max_position_embeddings), None when its config does not say."""
        value = getattr(getattr(self._model, "config", None), "max_position_embeddings", None)
        return value if isinstance(value, int) else None

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
        """See ChatModel.generate. `min_tokens` suppresses end-of-sequence that early (benchmarks force lengths).

        Greedy with n > 1 returns n copies of one generation: they would be identical anyway. Usage
        counts the prompt once per call (each completion carries it, as the API reports it) and each
        sample's own completion tokens.
        """
        check_args(max_tokens=max_tokens, temperature=temperature, n=n, min_tokens=min_tokens, on_token=on_token)
        started = time.perf_counter()
        sample = temperature > 0
        request = _Request(tuple(messages), tuple(s for s in stop if s), max_tokens, min_tokens, temperature)
        if sample and n > 1:
            with self._lock:  # tokenizers and the global torch RNG are not safe to share between threads
                result = self._sample_n(request, n, seed)
        elif self._batcher is not None and on_token is None and not (sample and seed is not None):
            result = self._batcher.submit(request)  # a seeded sample needs the RNG to itself
        else:
            with self._lock, seeded(seed if sample else None, self._model.device):
                result = self._generate_one(request, on_token, started)
        latency = time.perf_counter() - started
        prompt_ids = tuple(self.encode(request.messages)[0].tolist())  # ms of tokenising; generate keeps no copy
        completions = [
            Completion(
                text=row.text,
                finish_reason=row.finish_reason,
                usage=Usage(prompt_tokens=result.prompt_tokens, completion_tokens=row.completion_tokens),
                latency_s=latency,
                ttft_s=result.ttft_s,
                token_ids=ids_for_text(row.ids, row.text, self._decode),
                prompt_token_ids=prompt_ids,
                tokenizer=self.tokenizer,
            )
            for row in result.rows
        ]
        return completions if sample else completions * n

    def _generate_one(self, request: _Request, on_token: TokenCallback | None, started: float) -> _Result:
        """One sequence, reusing the cached prefix; the only path that streams. Call with the lock held."""
        ids = self.encode(request.messages)
        prompt_len = ids.shape[1]
        cache, _ = self._take_prefix(ids)
        streamer = DeltaStreamer(self._tokenizer, StopStreamer(request.stop, on_token), started) if on_token else None
        stopper = RowStops(self._tokenizer, [request.stop], [request.max_tokens], prompt_len)
        kwargs = self._generate_kwargs(request, stopper, max_tokens=request.max_tokens)
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, streamer=streamer, **kwargs
            )
        row = self._row(out[0, prompt_len:], request, stopper.stopped_at.get(0))
        if cache is not None and self._prefix is not None:
            # generate() leaves the keys/values of prompt + completion minus its last token: a ReAct run's
            # next prompt repeats the completion verbatim, so keeping it saves re-running it.
            crop_to(cache, cache.get_seq_length() if self._prefix.keep_completion else prompt_len)
            self._prefix.put(out[0, : cache.get_seq_length()].cpu(), cache)
        return _Result([row], prompt_len, streamer.ttft_s if streamer else None)

    def _sample_n(self, request: _Request, n: int, seed: int | None) -> _Result:
        """n samples that share one prefill of the prompt, then decode as one batch. Call with the lock held.

        generate(num_return_sequences=n) would copy the prompt n times and run all n copies through
        the model; here the prompt runs once and only its keys/values are copied.
        """
        ids = self.encode(request.messages)
        prompt_len = ids.shape[1]
        stopper = RowStops(self._tokenizer, [request.stop] * n, [request.max_tokens] * n, prompt_len)
        kwargs = self._generate_kwargs(request, stopper, max_tokens=request.max_tokens)
        cache, reused = self._take_prefix(ids)
        with torch.inference_mode(), seeded(seed, self._model.device):
            if cache is None:  # a model with its own cache type: the plain way
                out = self._model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), num_return_sequences=n, **kwargs
                )
            else:
                if reused < prompt_len - 1:  # all but the last token: generate() needs one to start from
                    self._model(
                        input_ids=ids[:, reused : prompt_len - 1], cache=cache, use_cache=True, logits_to_keep=1
                    )
                cache.batch_repeat_interleave(n)
                batch = ids.repeat(n, 1)
                out = self._model.generate(
                    input_ids=batch, attention_mask=torch.ones_like(batch), cache=cache, **kwargs
                )
        rows = [self._row(out[i, prompt_len:], request, stopper.stopped_at.get(i)) for i in range(n)]
        if cache is not None and self._prefix is not None:  # samples differ, but their prompt is the same
            cache.batch_select_indices(torch.tensor([0], device=ids.device))
            crop_to(cache, prompt_len)
            self._prefix.put(ids[0].cpu(), cache)
        return _Result(rows, prompt_len)

    def _run_batch(self, requests: Sequence[_Request]) -> list[_Result]:
        """The batcher's runner: a lone request takes the prefix-reusing path, several share one generate."""
        with self._lock:
            if len(requests) == 1:
                return [self._generate_one(requests[0], None, time.perf_counter())]
            return self._generate_batch(requests)

    def _generate_batch(self, requests: Sequence[_Request]) -> list[_Result]:
        """Different prompts, left-padded into one batch; each row keeps its own stops and token limit."""
        encoded = [self.encode(r.messages)[0] for r in requests]
        width = max(len(ids) for ids in encoded)
        batch = torch.full((len(encoded), width), self._pad, dtype=torch.long, device=self._model.device)
        mask = torch.zeros_like(batch)
        for i, ids in enumerate(encoded):  # left padding: every row's next token lands in the last column
            batch[i, width - len(ids) :] = ids
            mask[i, width - len(ids) :] = 1
        limits = [r.max_tokens for r in requests]
        stopper = RowStops(self._tokenizer, [r.stop for r in requests], limits, width)
        kwargs = self._generate_kwargs(requests[0], stopper, max_tokens=max(limits))
        with torch.inference_mode():
            out = self._model.generate(input_ids=batch, attention_mask=mask, **kwargs)
        return [
            _Result([self._row(out[i, width:], r, stopper.stopped_at.get(i))], len(encoded[i]))
            for i, r in enumerate(requests)
        ]

    def _take_prefix(self, ids: torch.Tensor) -> tuple[DynamicCache | None, int]:
        """(cache to pass to generate, positions it already holds); None when this model cannot use our caches."""
        if not self._cacheable:
            return None, 0
        if self._prefix is not None:
            cache, reused = self._prefix.take(ids[0].cpu())
            if cache is not None:
                return cache, reused
        return DynamicCache(config=self._model.config.get_text_config(decoder=True)), 0

    def _generate_kwargs(self, request: _Request, stopper: RowStops, *, max_tokens: int) -> dict:
        sample = request.temperature > 0
        kwargs: dict = {"max_new_tokens": max_tokens, "do_sample": sample, "pad_token_id": self._pad}
        if request.min_tokens:
            kwargs["min_new_tokens"] = request.min_tokens
        if stopper.needed:
            kwargs["stopping_criteria"] = StoppingCriteriaList([stopper])
        if sample:
            kwargs.update(temperature=request.temperature, **self._sampling_filters())
        return kwargs

    def _sampling_filters(self) -> dict:
        """Plain temperature sampling, as the OpenAI API does, unless the model's own config asks for top-k/top-p."""
        config = self._model.generation_config
        top_k = getattr(config, "top_k", None)
        top_p = getattr(config, "top_p", None)
        return {"top_k": top_k if top_k is not None else 0, "top_p": top_p if top_p is not None else 1.0}

    def _row(self, generated: torch.Tensor, request: _Request, stopped_at: int | None) -> Row:
        return finish_row(
            self._tokenizer,
            generated.tolist(),
            eos=self._eos,
            pad=self._pad,
            stop=request.stop,
            max_tokens=request.max_tokens,
            stopped_at=stopped_at,
        )
