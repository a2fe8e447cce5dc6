"""The supervisor of one llama-server: starts it, marks it ready, stops it when nobody holds a lease.

    python -m agentdistill.models.engine_supervisor <home>/engines/<key>.json

Runs detached (its own session). Every 0.25 s it checks the server process, its /health, and the lease files
`<key>.leases/<pid>` of the agentdistill processes using it. A non-persistent engine is stopped a few
seconds after its last lease holder is gone (however it ended: exit, Ctrl-C or SIGKILL); SIGTERM stops any
engine, and so does deleting its state file. The state file says `ready`, `failed` (never became healthy)
or `dead` (exited on its own), with the reason, for the clients waiting on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentdistill.models.engine import (
    EngineState,
    healthy,
    lease_dir,
    locked,
    log_tail,
    pid_alive,
    read_state,
    write_state,
)

POLL_S = 0.25
GRACE_S = 3.0  # a lease-less engine lives this long, so a process that restarts right away can take it back


def main(state_path: Path) -> int:
    state = read_state(state_path)
    if state is None:
        return 2
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    # OpenMP threads that sleep between tokens leave the cores to the HTTP threads and the clients: on 2 cores,
    # 4 streams decode 2.6x faster than one with PASSIVE, 1.8x with spinning (ACTIVE) threads.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with open(state.log, "ab") as log:
        server = subprocess.Popen(
            state.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    state.supervisor_pid, state.server_pid = os.getpid(), server.pid
    _save(state_path, state)
    deadline = time.monotonic() + float(os.environ.get("AGENTDISTILL_ENGINE_STARTUP_S", "300"))
    unleased_since: float | None = None
    while True:
        code = server.poll()
        if code is not None:
            why = f"llama-server exited with status {code}: {log_tail(state.log)}"
            _save(state_path, state, status="dead" if state.status == "ready" else "failed", detail=why)
            return 1
        if stop["now"] or not state_path.exists():  # stopped, or its home was deleted (a test's tmp dir)
            break
        if state.status == "starting":
            if healthy(state, timeout_s=1.0):
                state = _save(state_path, state, status="ready")
            elif time.monotonic() > deadline:
                _stop(server)
                _save(state_path, state, status="failed", detail=f"not healthy in time: {log_tail(state.log)}")
                return 1
        if not state.persistent:
            if _live_leases(state_path):
                unleased_since = None
            elif unleased_since is None:
                unleased_since = time.monotonic()
            elif time.monotonic() - unleased_since > GRACE_S:
                if _retire(state_path, state):
                    break
                unleased_since = None  # a client took a lease just now: keep serving it
        time.sleep(POLL_S)
    _stop(server)
    current = read_state(state_path)
    if current is not None and current.supervisor_pid == os.getpid():  # not replaced by a newer engine
        state_path.unlink(missing_ok=True)
        shutil.rmtree(lease_dir(state_path), ignore_errors=True)
    return 0


def _retire(state_path: Path, state: EngineState) -> bool:
    """Mark the engine `stopping`, unless a lease arrived meanwhile. Under the lock clients take to reuse an
    engine: a client that started right after the last lease ended otherwise took the still-`ready` engine
    while its server was being stopped, and every call it made was refused."""
    with locked(state_path.parent / f".{state_path.stem}.lock"):
        if _live_leases(state_path):
            return False
        _save(state_path, state, status="stopping")
        return True


def _live_leases(state_path: Path) -> list[int]:
    live = []
    folder = lease_dir(state_path)
    for entry in folder.iterdir() if folder.is_dir() else ():
        try:
            pid = int(entry.name)
        except ValueError:
            continue
        if pid_alive(pid):
            live.append(pid)
        else:
            entry.unlink(missing_ok=True)  # the holder died without releasing it
    return live


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _save(path: Path, state: EngineState, **changes: object) -> EngineState:
    for key, value in changes.items():
        setattr(state, key, value)
    current = read_state(path)
    if current is not None and current.supervisor_pid not in (None, os.getpid()):
        return state  # another supervisor owns this file now: leave it alone
    write_state(path, state)
    return state


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
