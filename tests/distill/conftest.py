"""Fixtures for distillation tests: a tiny random-weight llama with the real SmolLM2 tokenizer.

The tokenizer (and its chat template) is the packaged student's, so masks and templates are tested on the
real thing; the weights are random and tiny (2 layers, hidden 32), so a training step takes milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentdistill.models.packaged import ensure_hf_dir, find_packaged, is_installed


def _test_cache() -> Path:
    # Same place as tests/conftest.py's autouse fixture; session fixtures run before that fixture sets the env.
    raw = os.environ.get("AGENTDISTILL_TEST_CACHE")
    return Path(raw) if raw else Path(os.environ.get("TMPDIR", "/tmp")) / "agentdistill-test-cache"


@pytest.fixture(scope="session")
def student_hf_dir() -> Path:
    """The converted packaged SmolLM2 dir: real tokenizer, chat template and weights (converted once, cached)."""
    pm = find_packaged("smollm2-135m")
    ok, why = is_installed(pm)
    if not ok:
        pytest.skip(why)
    return ensure_hf_dir(pm, _test_cache(), progress=False)


@pytest.fixture(scope="session")
def tiny_model_dir(student_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer llama (hidden 32) saved with SmolLM2's tokenizer: an HF dir any loader accepts."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(student_hf_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
