"""Check an exported GGUF against its HF dir: greedy tokens of llama.cpp vs transformers on the same prompt ids.

Both runtimes get the HF tokenizer's ids, so the comparison isolates the weights; whether llama.cpp's own
tokenizer (copied from the base GGUF) gives the same ids is reported apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agentdistill.distill.export_gguf import ExportError, load_student, require_llama_cpp

DEFAULT_PROMPTS: tuple[str, ...] = (
    "Count from 1 to 10, separated by commas.",
    "What is the capital of France? Answer in one sentence.",
    "Write a Python function that returns the square of a number.",
    "Explain in two sentences why the sky is blue.",
    "List three fruits that are red.",
)


@dataclass(frozen=True)
class PromptAgreement:
    """Greedy tokens of both runtimes on one prompt."""

    prompt: str  # the user message, before the chat template
    prompt_tokens: int  # length of the templated prompt fed to both runtimes
    same_prompt_tokens: bool  # llama.cpp's tokenizer gives the HF tokenizer's ids for the templated prompt
    hf_tokens: tuple[int, ...]  # transformers greedy continuation (end token included)
    gguf_tokens: tuple[int, ...]  # llama.cpp greedy continuation (end token included)
    agreed: int  # tokens equal before the first divergence
    margin: float | None  # at that divergence, HF's logit of its token minus of llama.cpp's: ~0 is a rounding tie


@dataclass(frozen=True)
class AgreementReport:
    """How closely llama.cpp on the export reproduces transformers on the HF dir, greedy, token by token."""

    gguf: str  # the exported file
    max_tokens: int  # generation cap per prompt
    prompts: tuple[PromptAgreement, ...]  # one entry per prompt
    hf_seconds: float  # transformers generation time, all prompts
    gguf_seconds: float  # llama.cpp load and generation time, all prompts

    @property
    def agreement(self) -> float:
        """Agreed tokens (up to each first divergence) over the longer of each pair's lengths."""
        total = sum(max(len(p.hf_tokens), len(p.gguf_tokens)) for p in self.prompts)
        return sum(p.agreed for p in self.prompts) / total if total else 1.0

    @property
    def exact_matches(self) -> int:
        return sum(p.hf_tokens == p.gguf_tokens for p in self.prompts)

    def to_dict(self) -> dict:
        return {**asdict(self), "agreement": self.agreement, "exact_matches": self.exact_matches}


def verify_export(
    hf_dir: Path, gguf_path: Path, prompts: Sequence[str] = DEFAULT_PROMPTS, max_tokens: int = 32, *,
    threads: int | None = None,
) -> AgreementReport:  # fmt: skip
    """Greedy-decode each chat-templated prompt with transformers and with llama.cpp on the same token ids."""
    import torch

    if not prompts or max_tokens < 1:
        raise ValueError(f"need at least one prompt and max_tokens >= 1, got {len(prompts)} and {max_tokens}")
    llama_cpp = require_llama_cpp("verification")
    model, tokenizer = load_student(hf_dir)
    rendered = [_render(tokenizer, text) for text in prompts]
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rendered]
    try:
        llm = llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=max(len(ids) for ids in encoded) + max_tokens + 8,
            n_threads=threads or max(1, torch.get_num_threads()),
            verbose=False,
        )
    except ValueError as exc:
        raise ExportError(f"llama.cpp cannot load {gguf_path}: {exc}. Export it again") from exc
    eos = _eos_ids(model, tokenizer) | {llm.token_eos()}
    started = time.perf_counter()
    hf_runs = [_hf_greedy(model, ids, max_tokens, eos) for ids in encoded]
    hf_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rows = []
    for text, templated, ids, hf in zip(prompts, rendered, encoded, hf_runs, strict=True):
        ours = []
        for token in llm.generate(ids, temp=0.0, repeat_penalty=1.0):
            ours.append(token)
            if token in eos or len(ours) >= max_tokens:
                break
        same = llm.tokenize(templated.encode("utf-8"), add_bos=False, special=True) == ids
        agreed = next((i for i, (a, b) in enumerate(zip(hf, ours, strict=False)) if a != b), min(len(hf), len(ours)))
        margin = None
        if agreed < min(len(hf), len(ours)):
            margin = _hf_margin(model, ids + hf[:agreed], hf[agreed], ours[agreed])
        rows.append(PromptAgreement(text, len(ids), same, tuple(hf), tuple(ours), agreed, margin))
    return AgreementReport(str(gguf_path), max_tokens, tuple(rows), hf_seconds, time.perf_counter() - started)


def _render(tokenizer, text: str) -> str:
    """The chat-templated prompt; its special tokens are in the text, so tokenizing adds none."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    eos = eos if eos is not None else tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}


def _hf_greedy(model, ids: list[int], max_tokens: int, eos: set[int]) -> list[int]:
    import torch

    prompt = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=max_tokens, do_sample=False,
            repetition_penalty=1.0, eos_token_id=sorted(eos), pad_token_id=sorted(eos)[0],
        )  # fmt: skip
    return out[0, len(ids) :].tolist()


def _hf_margin(model, ids: list[int], hf_token: int, other: int) -> float:
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return float(logits[hf_token] - logits[other])
