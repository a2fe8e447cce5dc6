"""Start, reuse, lease, restart and stop managed llama-server engines (see engine.py for the design)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from agentdistill.models.engine import (
    EngineConfig,
    EngineError,
    EngineState,
    engines_dir,
    free_port,
    healthy,
    lease_dir,
    locked,
    log_tail,
    pid_alive,
    port_in_use,
    read_state,
    server_binary,
    server_command,
    spawn_supervisor,
    stop_state,
    write_state,
)

Say = Callable[[str], None]


class Engine:
    """A running engine this process holds a lease on; `release()` (or the context manager) gives it back."""

    def __init__(self, config: EngineConfig, state: EngineState, *, home: Path, leased: bool) -> None:
        self.config = config
        self.state = state
        self.home = home
        self.leased = leased
        self.restarts = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.state.base_url

    @property
    def state_path(self) -> Path:
        return engines_dir(self.home) / f"{self.state.key}.json"

    def alive(self) -> bool:
        return pid_alive(self.state.server_pid) and healthy(self.state)

    def restart_if_dead(self, *, limit: int = 1) -> bool:
        """Start a new server when this one has died or hangs (at most `limit` times); True if it did."""
        with self._lock:
            if self.alive():
                return False
            if self.restarts >= limit:
                return False
            self.restarts += 1
            current = read_state(self.state_path)
            if current is not None and current.supervisor_pid != self.state.supervisor_pid and healthy(current):
                self.state = current  # another process restarted it already
                return True
            stop_state(self.state_path, self.state, wait_s=5.0)
            fresh = start_engine(self.config, home=self.home, persistent=self.state.persistent, lease=self.leased)
            self.state = fresh.state
            return True

    def release(self) -> None:
        """Drop this process's lease; the supervisor stops a non-persistent server once no lease is left."""
        if self.leased:
            _drop_lease(self.state_path)
            self.leased = False


def start_engine(
    config: EngineConfig, *, home: Path, persistent: bool = False, lease: bool = True, say: Say | None = None
) -> Engine:
    """A ready engine for `config.model_path`: the running one if there is one, else a new one.

    `persistent` engines (`agentdistill engine start`) outlive every client; others stop when the last
    process holding a lease ends. Raises EngineError naming the log when the server cannot start.
    """
    binary = server_binary()
    if binary is None:
        raise EngineError(
            "llama-server is not built: run `agentdistill engine build` (a few minutes), or set"
            " AGENTDISTILL_LLAMA_SERVER to a llama-server binary"
        )
    if not config.model_path.is_file():
        raise EngineError(f"model file {config.model_path} does not exist: give a .gguf path or a packaged model name")
    for attempt in range(2):
        try:
            return _start(config, binary, home=home, persistent=persistent, lease=lease, say=say)
        except EngineError as exc:  # another program took the free port we picked before llama-server bound it
            if attempt or config.port is not None or "bind" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _start(config: EngineConfig, binary: Path, *, home: Path, persistent: bool, lease: bool, say: Say | None) -> Engine:
    folder = engines_dir(home)
    path = folder / f"{config.key}.json"
    spawned = False
    with locked(folder / f".{config.key}.lock"):
        state = read_state(path)
        if state is not None and pid_alive(state.supervisor_pid) and state.status in ("starting", "ready"):
            if lease:
                _add_lease(path)
        else:
            spawned = True
            if state is not None:  # a dead or failed engine: clear it away
                stop_state(path, state, wait_s=5.0)
            state = _new_state(config, binary, path, persistent)
            if lease:
                _add_lease(path)
            write_state(path, state)
            spawn_supervisor(path)
    try:
        state = _wait_ready(path, config.startup_timeout_s, say)
        if spawned:
            _warm_up(path, state)
    except EngineError:
        if lease:
            _drop_lease(path)
        raise
    if persistent and not state.persistent:  # `engine start` on an engine some run started: keep it running
        with locked(folder / f".{config.key}.lock"):
            state.persistent = True
            write_state(path, state)
    return Engine(config, state, home=home, leased=lease)


@contextlib.contextmanager
def running_engine(config: EngineConfig, *, home: Path, say: Say | None = None) -> Iterator[Engine]:
    """`with running_engine(cfg, home=h) as engine:` an engine for the block; released however it ends."""
    engine = start_engine(config, home=home, say=say)
    try:
        yield engine
    finally:
        engine.release()


def stop_engine(home: Path, model_path: Path | None = None) -> list[EngineState]:
    """Stop the engine serving `model_path` (every engine when None); returns the ones stopped."""
    stopped = []
    for path, state in list_engines(home):
        if model_path is None or Path(state.model_path).resolve() == model_path.resolve():
            stop_state(path, state)
            stopped.append(state)
    return stopped


def list_engines(home: Path) -> list[tuple[Path, EngineState]]:
    """Every engine with a state file; stale files of engines whose supervisor is gone are removed."""
    found = []
    folder = engines_dir(home)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        state = read_state(path)
        if state is None:
            continue
        if not pid_alive(state.supervisor_pid) and not pid_alive(state.server_pid):
            if time.time() - state.started_at > 30:  # not one still being spawned
                stop_state(path, state, wait_s=0)
            continue
        found.append((path, state))
    return found


def lease_count(state_path: Path) -> int:
    folder = lease_dir(state_path)
    return (
        sum(1 for entry in folder.iterdir() if entry.name.isdigit() and pid_alive(int(entry.name)))
        if folder.is_dir()
        else 0
    )


def _new_state(config: EngineConfig, binary: Path, path: Path, persistent: bool) -> EngineState:
    if config.port is not None and port_in_use(config.host, config.port):
        raise EngineError(f"port {config.port} on {config.host} is in use: pick another --port or leave it unset")
    port = config.port or free_port(config.host)
    threads = config.threads or os.cpu_count() or 1
    log = path.with_suffix(".log")
    return EngineState(
        key=config.key,
        name=config.name,
        model_path=str(config.model_path.resolve()),
        host=config.host,
        port=port,
        parallel=config.parallel,
        ctx=config.ctx,
        threads=threads,
        command=server_command(binary, config, port, threads),
        log=str(log),
        persistent=persistent,
        api_key=config.api_key,
    )


def _wait_ready(path: Path, timeout_s: float, say: Say | None) -> EngineState:
    deadline = time.monotonic() + timeout_s
    told = False
    while time.monotonic() < deadline:
        state = read_state(path)
        if state is None:
            raise EngineError(f"the engine's state file {path} vanished while it started: another process stopped it")
        if state.status == "ready":
            return state
        if state.status in ("failed", "dead"):
            raise EngineError(f"llama-server for {state.name} did not start: {state.detail} (log {state.log})")
        if state.supervisor_pid and not pid_alive(state.supervisor_pid):
            raise EngineError(f"the engine supervisor died while starting {state.name}: {log_tail(state.log)}")
        if say and not told and time.monotonic() > deadline - timeout_s + 2:
            say(f"starting llama-server for {state.name} ({state.parallel} slots) on {state.url}")
            told = True
        time.sleep(0.1)
    state = read_state(path)
    if state is not None:
        stop_state(path, state, wait_s=5)
    raise EngineError(f"llama-server did not become healthy in {timeout_s:.0f} s (log {path.with_suffix('.log')})")


def _warm_up(path: Path, state: EngineState) -> None:
    """Decode two tokens: a build that crashes on this CPU (AMX) is found here, not on the first item."""
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}).encode()
    request = urllib.request.Request(
        f"{state.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    if state.api_key:
        request.add_header("Authorization", f"Bearer {state.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            json.loads(reply.read())
    except (OSError, ValueError) as exc:
        stop_state(path, state, wait_s=5)
        raise EngineError(
            f"llama-server for {state.name} failed its first decode ({exc}): {log_tail(state.log)}. If it crashed,"
            " rebuild it for this CPU: `agentdistill engine build --force`"
        ) from exc


# Lease files this process holds, with how many Engine handles share each; the file goes with the last one.
_LEASES: dict[Path, int] = {}
_LEASES_LOCK = threading.Lock()


def _add_lease(state_path: Path) -> None:
    folder = lease_dir(state_path)
    folder.mkdir(parents=True, exist_ok=True)
    lease = folder / str(os.getpid())
    with _LEASES_LOCK:
        lease.touch()
        _LEASES[lease] = _LEASES.get(lease, 0) + 1


def _drop_lease(state_path: Path) -> None:
    lease = lease_dir(state_path) / str(os.getpid())
    with _LEASES_LOCK:
        left = _LEASES.get(lease, 1) - 1
        if left > 0:
            _LEASES[lease] = left
            return
        _LEASES.pop(lease, None)
        lease.unlink(missing_ok=True)


@atexit.register
def _drop_all_leases() -> None:
    with _LEASES_LOCK:
        for lease in list(_LEASES):
            lease.unlink(missing_ok=True)
        _LEASES.clear()
