"""`local:` when llama.cpp's probe fails: one line saying why, then the same model on transformers.

The probe child is replaced by one that aborts, and llama-cpp-python by a fake install, so this runs the
same on machines with and without a llama.cpp build; the packaged SmolLM2 really runs on transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.models import ModelOptions, gguf_backend, llama_probe, local_backend, make_chat_model, user
from agentdistill.models.hf_chat import TransformersChatModel
from agentdistill.models.llama_probe import Install, LlamaCppUnusable
from agentdistill.models.packaged import find_packaged, is_installed


@pytest.fixture
def crashing_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, why = is_installed(find_packaged("smollm2-135m"))
    if not ok:
        pytest.skip(why)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libllama.so").write_bytes(b"\x7fELF built with AMX")
    crash = tmp_path / "crash_child.py"
    crash.write_text("import os\nos.abort()\n")
    monkeypatch.setattr(llama_probe, "find_install", lambda: Install("0.0-test", tmp_path, lib))
    monkeypatch.setattr(llama_probe, "CHILD", crash)
    gguf_backend.clear_model_cache()  # a model an earlier test loaded in this process would skip the probe


def test_local_backend_reports_the_probe_reason(crashing_probe: None) -> None:
    backend, why = local_backend()
    assert backend == "transformers" and "crashed with SIGABRT" in why and "build-flags" in why


def test_explicit_gguf_spec_fails_with_the_reason_not_a_crash(crashing_probe: None) -> None:
    with pytest.raises(LlamaCppUnusable, match=r"SIGABRT.*models build-flags.*probe --refresh"):
        make_chat_model("gguf:smollm2-135m")


def test_models_probe_and_list_show_the_verdict(crashing_probe: None) -> None:
    runner = CliRunner()
    probed = runner.invoke(cli, ["models", "probe", "--json"])
    assert probed.exit_code == 1
    assert "SIGABRT" in json.loads(probed.output)["reason"]
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json"]).output)
    assert listed["local_backend"] == "transformers" and "SIGABRT" in listed["gguf_unavailable"]


@pytest.mark.integration
def test_local_falls_back_to_transformers_and_runs(crashing_probe: None, capsys: pytest.CaptureFixture) -> None:
    model = make_chat_model("local:smollm2-135m", ModelOptions(threads=2))
    assert isinstance(model, TransformersChatModel) and model.spec == "local:smollm2-135m"
    err = capsys.readouterr().err
    assert err.count("local:smollm2-135m runs on transformers: llama.cpp crashed with SIGABRT") == 1
    [reply] = model.generate([user("Say hello.")], max_tokens=4)
    assert reply.usage.completion_tokens >= 1 and reply.text.strip()
    make_chat_model("local:smollm2-135m", ModelOptions(threads=2))
    assert "runs on transformers" not in capsys.readouterr().err  # said once per process
