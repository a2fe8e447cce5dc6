"""Build llama-server from the llama.cpp that the pinned llama-cpp-python sdist vendors.

Why that source: the in-process backend (llama-cpp-python 0.3.36) and the server then run the very same
llama.cpp, so their greedy tokens agree, one pin covers both, and the source comes from PyPI like every
other dependency (no git, no other registry). The build uses `cmake_args` of this CPU (AVX-512 kept, AMX
off: see llama_build.py), links statically, and installs `<venv>/bin/llama-server` beside python, where
`server_binary()` finds it. It takes a few minutes on 2 cores; nothing else is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentdistill.errors import AgentDistillError
from agentdistill.models.llama_build import cmake_args, read_cpu

PINNED = "0.3.36"  # llama-cpp-python, whose vendored llama.cpp we build the server from
SERVER_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_CURL=OFF",  # models come from files, never from a hub
    "-DLLAMA_OPENSSL=OFF",
]


class EngineBuildError(AgentDistillError):
    """Building llama-server failed; the message names the step, its log and what to install."""


def build_info_path(binary: Path) -> Path:
    return binary.with_name("llama-server.agentdistill.json")


def build_server(
    *, dest: Path | None = None, jobs: int | None = None, work: Path | None = None, say: Callable[[str], None] = print
) -> Path:
    """Download the pinned sdist, build `llama-server`, install it at `dest` (default <venv>/bin); return its path."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise EngineBuildError("building llama-server needs cmake: `pip install cmake` (or apt install cmake)")
    dest = dest or Path(sys.prefix) / "bin" / "llama-server"
    flags = [a for a in cmake_args(read_cpu()) if not a.startswith("-DLLAVA_BUILD")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentdistill-engine-build-", dir=work) as tmp:
        root = Path(tmp)
        source = _fetch_source(root, say)
        build = root / "build"
        log = root / "build.log"
        say(f"configuring llama.cpp ({' '.join(flags)})")
        _run([cmake, "-S", str(source), "-B", str(build), *SERVER_OPTIONS, *flags], log, "cmake configure")
        say(f"compiling llama-server with {jobs or os.cpu_count()} jobs (a few minutes on 2 cores)")
        _run([cmake, "--build", str(build), "--target", "llama-server", "-j", str(jobs or os.cpu_count() or 1)], log,
             "cmake build")  # fmt: skip
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise EngineBuildError(f"the build finished but {built} is missing; see {log}")
        _check_runs(built)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = dest.with_name(f".{dest.name}.tmp")
        shutil.copy2(built, staged)
        os.chmod(staged, 0o755)
        os.replace(staged, dest)
    info = {"llama_cpp_python_sdist": PINNED, "cmake_args": flags, "cpu": read_cpu().summary(),
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    build_info_path(dest).write_text(json.dumps(info, indent=1), encoding="utf-8")
    say(f"installed {dest} in {info['seconds']:.0f} s")
    return dest


def _fetch_source(root: Path, say: Callable[[str], None]) -> Path:
    say(f"downloading the llama-cpp-python=={PINNED} sdist (its vendored llama.cpp is the source)")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={PINNED}", "-d", str(root)]  # fmt: skip
    _run(command, root / "download.log", "pip download")
    archives = list(root.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        raise EngineBuildError(f"pip download gave no llama_cpp_python sdist in {root}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(root, filter="data")
    source = root / archives[0].name.removesuffix(".tar.gz") / "vendor" / "llama.cpp"
    if not (source / "tools" / "server").is_dir():
        raise EngineBuildError(f"the sdist has no llama.cpp server source at {source}/tools/server")
    return source


def _run(command: list[str], log: Path, step: str) -> None:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
        raise EngineBuildError(f"{step} failed (exit {done.returncode}): {tail[:400]}")


def _check_runs(binary: Path) -> None:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise EngineBuildError(f"{binary} --version failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
