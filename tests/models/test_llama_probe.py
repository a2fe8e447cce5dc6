"""The llama.cpp probe: a child that crashes, hangs, errs, decodes garbage or works; the cached verdict.

Fake children stand in for llama.cpp (they need no build), so every case runs on any machine; the last
tests run the real probe child against the installed llama-cpp-python where there is one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from agentdistill.models import llama_probe
from agentdistill.models.llama_build import CpuInfo
from agentdistill.models.llama_probe import Install, Target, Verdict, check

XEON = CpuInfo("x86_64", "Test Xeon", frozenset({"avx2", "avx512f", "amx_tile"}))


@pytest.fixture
def install(tmp_path: Path) -> Install:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libllama.so").write_bytes(b"\x7fELF fake llama")
    (lib / "libggml-cpu.so").write_bytes(b"\x7fELF fake ggml")
    return Install(version="0.0-test", package_dir=tmp_path, lib_dir=lib)


@pytest.fixture
def target(tmp_path: Path) -> Target:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF fake weights")
    return Target(model, "fake-model", "paris")


def child(tmp_path: Path, body: str, name: str = "child.py") -> list[str]:
    """A probe child running `body`; it appends one line to calls.txt each time it runs."""
    script = tmp_path / name
    calls = tmp_path / "calls.txt"
    script.write_text(f"import json, os, sys, time\nopen({str(calls)!r}, 'a').write('x\\n')\n{body}\n")
    return [sys.executable, str(script)]


def calls(tmp_path: Path) -> int:
    path = tmp_path / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def run(tmp_path: Path, install: Install, target: Target, body: str, **kwargs) -> Verdict:
    return check(target, install=install, cpu=XEON, child=child(tmp_path, body), cache=tmp_path / "cache", **kwargs)


WORKS = 'print(json.dumps({"ok": True, "text": " Paris. It is", "tokens": 4, "system_info": "CPU : AVX2 = 1"}))'


def test_a_working_child_is_usable_and_its_verdict_is_cached(tmp_path: Path, install: Install, target: Target) -> None:
    first = run(tmp_path, install, target, WORKS)
    assert first.usable and first.reason is None and not first.cached
    assert first.output == " Paris. It is" and first.system_info == "CPU : AVX2 = 1"
    second = run(tmp_path, install, target, WORKS)
    assert second.usable and second.cached and second.fingerprint == first.fingerprint
    assert calls(tmp_path) == 1  # the second answer came from the cache file
    stored = json.loads((tmp_path / "cache" / "llama-cpp-probe.json").read_text())
    assert first.fingerprint in stored["verdicts"]


def test_a_crashing_child_names_the_signal_and_the_fix(tmp_path: Path, install: Install, target: Target) -> None:
    verdict = run(tmp_path, install, target, "os.abort()")
    assert not verdict.usable
    assert "crashed with SIGABRT (signal 6) decoding fake-model in a child process" in verdict.reason
    assert "does not run on this CPU: Test Xeon" in verdict.reason
    assert "agentdistill models build-flags" in verdict.reason and "probe --refresh" in verdict.reason
    assert verdict.log and Path(verdict.log).exists()


def test_a_segfault_is_caught_too(tmp_path: Path, install: Install, target: Target) -> None:
    verdict = run(tmp_path, install, target, "import ctypes; ctypes.string_at(0)")
    assert not verdict.usable and "SIGSEGV" in verdict.reason


def test_a_hanging_child_times_out_and_is_killed(tmp_path: Path, install: Install, target: Target) -> None:
    pid_file = tmp_path / "pid"
    body = f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    started = time.monotonic()
    verdict = run(tmp_path, install, target, body, timeout_s=2.0)
    assert time.monotonic() - started < 30
    assert not verdict.usable and "hung: no answer after 2 s" in verdict.reason
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not orphaned
        os.kill(pid, 0)


def test_garbage_output_is_unusable(tmp_path: Path, install: Install, target: Target) -> None:
    body = 'print(json.dumps({"ok": True, "text": "zq zq zq zq", "tokens": 4}))'
    verdict = run(tmp_path, install, target, body)
    assert (
        not verdict.usable and "decoded garbage with fake-model: expected 'paris', got 'zq zq zq zq'" in verdict.reason
    )


def test_an_error_reply_is_reported_in_one_line(tmp_path: Path, install: Install, target: Target) -> None:
    body = (
        'print(json.dumps({"ok": False, "error": "llama_cpp does not import: OSError: bad ELF header"})); sys.exit(3)'
    )
    verdict = run(tmp_path, install, target, body)
    assert not verdict.usable and "failed decoding fake-model" in verdict.reason
    assert "OSError: bad ELF header" in verdict.reason and "\n" not in verdict.reason


def test_a_user_gguf_needs_tokens_not_the_canary_word(tmp_path: Path, install: Install) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"GGUF mine")
    target = llama_probe.target_for(mine)
    assert target.expect is None and target.name == "mine.gguf"
    body = 'print(json.dumps({"ok": True, "text": "bonjour", "tokens": 2}))'
    assert run(tmp_path, install, target, body).usable
    crash = check(
        target, install=install, cpu=XEON, child=child(tmp_path, "os.abort()", "c2.py"), cache=tmp_path / "c2"
    )
    assert not crash.usable and "this GGUF, or this llama.cpp build" in crash.reason


def test_the_cache_invalidates_when_the_library_changes(tmp_path: Path, install: Install, target: Target) -> None:
    assert run(tmp_path, install, target, WORKS).usable
    (install.lib_dir / "libggml-cpu.so").write_bytes(b"\x7fELF rebuilt ggml, other size")
    again = run(tmp_path, install, target, WORKS)
    assert not again.cached and calls(tmp_path) == 2


def test_the_cache_invalidates_for_another_cpu_or_version(tmp_path: Path, install: Install, target: Target) -> None:
    first = run(tmp_path, install, target, WORKS)
    amd = CpuInfo("x86_64", "AMD EPYC", frozenset({"avx2"}))
    other_cpu = check(target, install=install, cpu=amd, child=child(tmp_path, WORKS), cache=tmp_path / "cache")
    newer = Install("0.0-newer", install.package_dir, install.lib_dir)
    other_version = check(target, install=newer, cpu=XEON, child=child(tmp_path, WORKS), cache=tmp_path / "cache")
    assert len({first.fingerprint, other_cpu.fingerprint, other_version.fingerprint}) == 3
    assert calls(tmp_path) == 3


def test_refresh_probes_again_and_a_damaged_cache_file_is_ignored(
    tmp_path: Path, install: Install, target: Target
) -> None:
    run(tmp_path, install, target, WORKS)
    assert not run(tmp_path, install, target, WORKS, refresh=True).cached
    (tmp_path / "cache" / "llama-cpp-probe.json").write_text("{not json")
    assert run(tmp_path, install, target, WORKS).usable
    assert calls(tmp_path) == 3


def test_not_installed_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_probe, "find_install", lambda: None)
    verdict = check(cache=tmp_path)
    assert not verdict.usable and "pip install llama-cpp-python==0.3.36" in verdict.reason


# ---- the real probe child against the installed llama-cpp-python ----


def _real_install() -> Install:
    found = llama_probe.find_install()
    if found is None:
        pytest.skip("llama-cpp-python is not installed")
    return found


def test_a_corrupt_library_fails_the_real_child_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: Target
) -> None:
    _real_install()
    lib = tmp_path / "broken-lib"
    lib.mkdir()
    (lib / "libllama.so").write_bytes(b"this is not an ELF file")
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(lib))
    verdict = check(target, cache=tmp_path / "cache")
    assert not verdict.usable and "does not import" in verdict.reason and "\n" not in verdict.reason


@pytest.mark.integration
def test_the_real_probe_decodes_the_smallest_packaged_model() -> None:
    _real_install()
    if llama_probe.default_target() is None:
        pytest.skip("no packaged GGUF installed")
    verdict = check()
    if not verdict.usable:  # the build does not run here: exactly what the probe is for, but CI wants it to pass
        pytest.fail(f"the default llama.cpp build must pass the probe on every CPU: {verdict.reason}")
    assert "paris" in verdict.output.lower() and verdict.system_info.startswith("CPU :")
    assert "AMX_INT8 = 1" not in verdict.system_info  # the build flags keep AMX off
