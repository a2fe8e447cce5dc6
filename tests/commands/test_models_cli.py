"""`agentdistill models list/info` say which backend `local:` runs on, and why gguf is not used when it is not."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.models import llama_probe, local_backend


def _json(*args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stderr carries progress notes (a first load converts the model)


def test_list_and_info_name_the_backend_local_runs_on() -> None:
    runs_on, why = local_backend()
    listed = _json("models", "list")
    assert {"gguf", "transformers", "local"} <= set(listed["backends"])
    assert (listed["local_backend"], listed["gguf_unavailable"]) == (runs_on, why)
    info = _json("models", "info", "local:smollm2-135m")
    assert (info["runs_on"], info["gguf_unavailable"], info["name"]) == (runs_on, why, "smollm2-135m")
    assert _json("models", "info", "transformers:smollm2-135m")["role"] == "student"


def test_a_missing_llama_cpp_build_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_probe, "find_install", lambda: None)
    listed = _json("models", "list")
    assert listed["local_backend"] == "transformers"
    assert "llama-cpp-python is not installed" in listed["gguf_unavailable"]
    text = CliRunner().invoke(cli, ["models", "list"], catch_exceptions=False).output
    assert "local: runs on transformers; gguf unavailable" in text and "pip install llama-cpp-python==0.3.36" in text
    info = _json("models", "info", "local:qwen2.5-coder-0.5b")
    assert info["runs_on"] == "transformers" and "llama-cpp-python is not installed" in info["gguf_unavailable"]


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["transformers", "gguf"])
def test_info_load_reports_device_dtype_and_parameter_count(backend: str, home) -> None:
    if backend == "gguf" and local_backend()[0] != "gguf":
        pytest.skip("llama.cpp is not usable here")
    info = _json("models", "info", f"{backend}:smollm2-135m", "--load")
    assert info["device"] == "cpu" and info["dtype"]
    assert 120e6 < info["parameters"] < 150e6  # SmolLM2-135M
