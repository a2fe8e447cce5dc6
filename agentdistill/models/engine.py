"""A managed llama-server: many agent runs at once on one CPU through continuous batching.

Decoding one stream of a small quantized model on a CPU is bound by reading the weights; llama.cpp's own
server decodes all its slots' tokens in one batch, reading the weights once (`--parallel N`), and keeps each
slot's prompt in its KV cache, so the shared system prompt of every item is evaluated once per slot.

`start_engine` starts llama-server (or reuses the one already serving that GGUF) under a small supervisor
process (`engine_supervisor.py`) and takes a lease on it. The supervisor stops the server when the last
process holding a lease is gone, also after a SIGKILL, unless the engine was started with `persistent=True`
(`agentdistill engine start`): those run until `agentdistill engine stop`. The state of each engine is one
JSON file under `<home>/engines/`; leases are files named by pid beside it. Clients reach the server through
the OpenAI-compatible API (`engine_model.py`), exactly as an `openai:` spec would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write

BINARY_ENV = "AGENTDISTILL_LLAMA_SERVER"  # path of a llama-server binary to use instead of the built one
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class EngineError(AgentDistillError):
    """llama-server is missing, cannot start, or died; the message names the log and the fix."""


@dataclass(frozen=True)
class EngineConfig:
    """How to run one GGUF on llama-server. `ctx` is per slot; the server gets ctx * parallel in all."""

    model_path: Path
    name: str  # what clients send as `model`, and what `engine status` shows
    parallel: int = 4
    ctx: int = 4096
    threads: int | None = None  # None: one per core
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port
    api_key: str | None = None
    startup_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.parallel < 1 or self.ctx < 256:
            raise EngineError(f"engine needs --parallel >= 1 and --ctx >= 256, got {self.parallel} and {self.ctx}")
        if self.host not in LOOPBACK and not self.api_key:
            raise EngineError(
                f"--host {self.host} would expose the engine beyond this machine: pass --api-key KEY as well"
                " (clients then need it), or keep the default 127.0.0.1"
            )

    @property
    def key(self) -> str:
        """One engine per GGUF file and host: a second start of the same model reuses it."""
        return hashlib.sha256(f"{self.model_path.resolve()}|{self.host}".encode()).hexdigest()[:12]


@dataclass
class EngineState:
    """What `<home>/engines/<key>.json` holds; the supervisor fills in pids and status."""

    key: str
    name: str
    model_path: str
    host: str
    port: int
    parallel: int
    ctx: int
    threads: int
    command: list[str]
    log: str
    persistent: bool
    api_key: str | None = None
    status: str = "starting"  # starting | ready | stopping (its last lease ended) | failed | dead | stopped
    detail: str = ""  # why failed/dead
    supervisor_pid: int | None = None
    server_pid: int | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def engines_dir(home: Path) -> Path:
    return home / "engines"


def server_binary() -> Path | None:
    """$AGENTDISTILL_LLAMA_SERVER, else the one `agentdistill engine build` put beside python, else PATH's."""
    raw = os.environ.get(BINARY_ENV)
    if raw:
        return Path(raw) if Path(raw).is_file() else None
    built = Path(sys.prefix) / "bin" / "llama-server"
    if built.is_file():
        return built
    found = shutil.which("llama-server")
    return Path(found) if found else None


def read_state(path: Path) -> EngineState | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EngineState(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, state: EngineState) -> None:
    with atomic_write(path) as handle:
        json.dump(asdict(state), handle, indent=1)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0): look at its state
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def healthy(state: EngineState, timeout_s: float = 2.0) -> bool:
    """GET /health answers 200 (the model is loaded and the server takes requests)."""
    request = urllib.request.Request(f"{state.url}/health")
    if state.api_key:
        request.add_header("Authorization", f"Bearer {state.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_command(binary: Path, config: EngineConfig, port: int, threads: int) -> list[str]:
    command = [
        str(binary), "-m", str(config.model_path), "--host", config.host, "--port", str(port),
        "-np", str(config.parallel), "-c", str(config.ctx * config.parallel), "--no-kv-unified",
        "-t", str(threads), "-tb", str(threads), "--cont-batching", "--cache-prompt", "--no-webui",
        "--alias", config.name, "--reasoning-format", "none", "--flash-attn", "off",
    ]  # fmt: skip
    if config.api_key:
        command += ["--api-key", config.api_key]
    return command


def log_tail(path: str | Path, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:400]


def stop_state(path: Path, state: EngineState, *, wait_s: float = 20.0) -> None:
    """Ask the supervisor to stop its server; kill both if they do not go in `wait_s`."""
    for pid in (state.supervisor_pid, state.server_pid):
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the supervisor stops the server; a lone server stops itself
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (pid_alive(state.supervisor_pid) or pid_alive(state.server_pid)):
        time.sleep(0.1)
    for pid in (state.server_pid, state.supervisor_pid):
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    shutil.rmtree(lease_dir(path), ignore_errors=True)


def lease_dir(state_path: Path) -> Path:
    return state_path.with_suffix(".leases")


def spawn_supervisor(state_path: Path) -> int:
    """Start the supervisor in its own session, so Ctrl-C in this terminal does not reach the server."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentdistill.models.engine_supervisor", str(state_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return process.pid
