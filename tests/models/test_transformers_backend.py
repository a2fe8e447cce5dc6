"""The transformers backend: option validation (fast) and real SmolLM2-135M generation (integration)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from agentdistill.errors import ConfigError, ModelNotFound
from agentdistill.models import ChatModel, ModelOptions, make_chat_model, user
from agentdistill.models.packaged import find_packaged, hf_dir_path
from agentdistill.models.transformers_backend import (
    TransformersChatModel,
    load_hf_dir,
    resolve_device,
    resolve_dtype,
)
from agentdistill.paths import cache_dir

SMOL = "transformers:smollm2-135m"  # `local:` picks llama.cpp when it is installed
COUNT = [user("Count from 1 to 10, separated by commas.")]  # SmolLM2 greedy: "1, 2, 3, 4, 5, 6, 7, 8, 9, 10"


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "CPU", "cuda:x", ""])
def test_malformed_device_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="device.*expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device(bad)


def test_auto_device_and_dtype() -> None:
    device = resolve_device("auto")
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") == "float32"  # bf16 matmuls are 20x slower on CPUs without bf16 units
    assert resolve_dtype("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype("bf16", "cpu") == "bfloat16" and resolve_dtype("fp16", "cuda") == "float16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_unknown_dtype_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dtype.*'int8'.*bfloat16"):
        resolve_dtype("int8", "cpu")


def test_bad_options_fail_before_any_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        load_hf_dir(str(tmp_path / "missing"), ModelOptions(device="tpu"))


def test_missing_dir_and_non_model_dir_are_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist.*local:NAME"):
        make_chat_model(f"hf:{tmp_path / 'nope'}")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotFound, match="not a model dir.*config.json nor adapter_config.json"):
        make_chat_model(f"hf:{tmp_path}")


def test_adapter_whose_base_is_not_local_is_model_not_found(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}))
    with pytest.raises(ModelNotFound, match="names base model 'Qwen/Qwen2.5-0.5B', which is not a local model dir"):
        make_chat_model(f"hf:{tmp_path}")


def test_unknown_local_name_suggests_one() -> None:
    with pytest.raises(ModelNotFound, match="Did you mean 'qwen2.5-coder-0.5b'"):
        make_chat_model("local:qwen2.5-coder-0.5")


# ---- real SmolLM2-135M (converted once per machine into the shared test cache) ----


@pytest.mark.integration
def test_load_twice_returns_the_cached_model() -> None:
    model = make_chat_model(SMOL)
    assert isinstance(model, TransformersChatModel) and isinstance(model, ChatModel)
    assert make_chat_model(SMOL).unwrap()[0] is model.unwrap()[0]  # the same weights, not loaded again
    assert (model.spec, model.device) == (SMOL, resolve_device("auto"))


@pytest.mark.integration
def test_stop_sequence_cuts_and_usage_is_counted() -> None:
    model = make_chat_model(SMOL)
    [free] = model.generate(COUNT, max_tokens=16)
    assert free.text.startswith("1, 2, 3, 4, 5")
    [cut] = model.generate(COUNT, stop=["4"], max_tokens=16)
    assert (cut.text, cut.finish_reason) == ("1, 2, 3, ", "stop")
    # It stopped generating at the stop: far fewer tokens than the free run, but real counts.
    assert 0 < cut.usage.completion_tokens < free.usage.completion_tokens
    assert cut.usage.prompt_tokens == free.usage.prompt_tokens > 20  # includes the template's system prompt
    assert cut.latency_s > 0 and cut.ttft_s is None
    [short] = model.generate(COUNT, max_tokens=3)
    assert (short.usage.completion_tokens, short.finish_reason) == (3, "length")


@pytest.mark.integration
def test_streamed_deltas_join_to_the_final_text_and_stop_at_the_stop() -> None:
    model = make_chat_model(SMOL)
    deltas: list[str] = []
    [done] = model.generate(COUNT, stop=[", 5"], max_tokens=16, on_token=deltas.append)
    assert "".join(deltas) == done.text == "1, 2, 3, 4"
    assert len(deltas) > 3  # streamed piece by piece, not in one go at the end
    assert done.ttft_s is not None and 0 < done.ttft_s < done.latency_s
    with pytest.raises(ValueError, match="n=1"):
        model.generate(COUNT, n=2, temperature=1.0, on_token=deltas.append)


@pytest.mark.integration
def test_seeded_sampling_is_reproducible_and_greedy_copies() -> None:
    model = make_chat_model(SMOL)
    prompt = [user("Write a short poem about the sea.")]
    first = model.generate(prompt, temperature=1.0, n=2, seed=7, max_tokens=8)
    again = model.generate(prompt, temperature=1.0, n=2, seed=7, max_tokens=8)
    assert len(first) == 2 and [c.text for c in first] == [c.text for c in again]
    assert all(c.usage.completion_tokens > 0 for c in first)
    cut = model.generate(prompt, temperature=1.0, n=2, seed=7, stop=["e"], max_tokens=8)
    assert all("e" not in c.text and 0 < c.usage.completion_tokens <= 8 for c in cut)  # each row cut on its own
    greedy = model.generate(COUNT, n=3, max_tokens=4)
    assert len(greedy) == 3 and len({c.text for c in greedy}) == 1


@pytest.mark.integration
def test_threads_share_one_model_safely() -> None:
    model = make_chat_model(SMOL)
    [expected] = model.generate(COUNT, max_tokens=6)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: model.generate(COUNT, max_tokens=6)[0].text, range(3)))
    assert results == [expected.text] * 3


@pytest.mark.integration
def test_converted_dir_loads_as_hf_dir_with_the_same_output(tmp_path: Path) -> None:
    local = make_chat_model(SMOL)
    converted = hf_dir_path(find_packaged("smollm2-135m"), cache_dir())
    same = make_chat_model(f"hf:{converted}")
    assert same.spec == f"hf:{converted}" and same.unwrap()[0] is local.unwrap()[0]  # same weights, not reloaded

    saved = tmp_path / "student"
    shutil.copytree(converted, saved)  # what a user does with a converted or distilled dir
    copy = make_chat_model(f"hf:{saved}")
    assert copy.unwrap()[0] is not local.unwrap()[0]
    [a] = local.generate(COUNT, max_tokens=10)
    [b] = copy.generate(COUNT, max_tokens=10)
    assert a.text == b.text and a.usage == b.usage


@pytest.mark.integration
def test_adapter_dir_loads_its_local_base(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    converted = hf_dir_path(find_packaged("smollm2-135m"), cache_dir())
    make_chat_model(SMOL)  # make sure the dir exists
    base = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(tmp_path / "adapter")  # B starts at zero: the merged model equals the base
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]

    student = make_chat_model(f"hf:{tmp_path / 'adapter'}")
    [out] = student.generate(COUNT, max_tokens=6)
    [ref] = make_chat_model(SMOL).generate(COUNT, max_tokens=6)
    assert out.text == ref.text


@pytest.mark.integration
def test_n4_samples_share_one_prefill_reproducibly_and_stop_each_on_its_own() -> None:
    model = make_chat_model(SMOL)
    prompt = [user("Write one sentence about the sea.")]
    first = model.generate(prompt, temperature=0.8, n=4, seed=11, stop=["."], max_tokens=6)
    again = model.generate(prompt, temperature=0.8, n=4, seed=11, stop=["."], max_tokens=6)
    assert len(first) == 4 and [c.text for c in first] == [c.text for c in again]
    assert len({c.text for c in first}) > 1  # really sampled, not one row copied
    assert all("." not in c.text for c in first)
    # Each row stopped at its own stop or limit: its own token count and reason, never the batch's.
    for c in first:
        assert 0 < c.usage.completion_tokens <= 6
        assert c.finish_reason == ("length" if c.usage.completion_tokens == 6 else "stop")
    assert len({c.usage.prompt_tokens for c in first}) == 1  # the prompt is one per request
    other = model.generate(prompt, temperature=0.8, n=4, seed=12, stop=["."], max_tokens=6)
    assert [c.text for c in other] != [c.text for c in first]
