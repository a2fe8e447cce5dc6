"""Run model-written Python in a separate, limited process: the code agent's executor.

Design: one persistent worker process per session. The worker keeps the variables of earlier cells, so
a code agent's 100 cells cost well under 1 ms of round trip each (bench_sandbox) instead of a fresh
interpreter per cell (20-80 ms) plus re-running every earlier cell to rebuild state. The price: a cell
that times out or crashes the worker loses the session's variables (the next cell gets a fresh worker and
the error text says so), and cells share one address space, so a cell can break the ones after it (the
model's fault, as in a notebook). `reset()` starts over on purpose.

Boundary, decided once per `PythonSandbox` by probing what works here (`sandbox.isolation` says what is on):
- bubblewrap (`bwrap`, tools/sandbox/bwrap.py) when it works: new mount, pid, ipc, uts and network
  namespaces; the code sees only the interpreter (read-only), its own work dir, a private /proc, /dev and
  /tmp. Host files (configs, databases, /etc/shadow), host command lines, other sessions and unix sockets
  on disk do not exist inside. Without it (`isolation="auto"`) the sandbox falls back to the next line and
  warns (SandboxWarning); `isolation="bwrap"` refuses to run instead.
- otherwise `unshare --net --pid --fork --kill-child`: no network, its own pid namespace, but the host's
  filesystem as the sandbox user may read it;
- the worker and its launcher die with the host (parent-death signal, re-armed after the uid drop), and a
  later sandbox removes the work dirs of hosts that were killed; between cells the worker kills stray
  processes (kill(-1) inside its pid namespace), so nothing a cell starts outlives it;
- rlimits: RLIMIT_AS (memory), RLIMIT_CPU (the worker's whole life), RLIMIT_FSIZE, RLIMIT_NPROC;
- as root it drops to an unprivileged user (default `nobody`) with no_new_privs. Root ignores
  RLIMIT_NPROC, so this drop is what stops a fork bomb. Where the interpreter is only readable by root
  (e.g. under /root) the worker keeps CAP_DAC_READ_SEARCH, which under bubblewrap reaches only its view.
- cwd, HOME and TMPDIR are a fresh work dir, removed when the session ends.
Host tools are callable from the code (`search("...")`) over the worker's pipes: one JSON line per call,
answered by `run_tool` in the host, so tool faults come back as `Error: ...` text like everywhere else.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence

from agentdistill.tools.base import Tool
from agentdistill.tools.sandbox.config import CodeResult, SandboxConfig, SandboxError
from agentdistill.tools.sandbox.host import Worker, sweep_orphans
from agentdistill.tools.sandbox.isolation import detect


class SandboxWarning(UserWarning):
    """The sandbox runs with weaker isolation than this machine could give it."""


WEAK_ISOLATION = (
    "the code sandbox runs without bubblewrap: model-written code can read any file the sandbox user can (configs,"
    " databases, other sessions). Install bubblewrap (`apt-get install bubblewrap`) for a private filesystem view."
)


class PythonSandbox:
    """Factory for sessions sharing one config, preamble and tool set; `run` is a one-cell session."""

    def __init__(self, config: SandboxConfig | None = None, *, preamble: str = "", tools: Sequence[Tool] = ()) -> None:
        self.config = config or SandboxConfig()
        self.preamble = preamble  # run once per worker start, e.g. "from sympy import *"
        self.tools: Mapping[str, Tool] = {tool.name: tool for tool in tools}
        if "final_answer" in self.tools:
            raise SandboxError("a host tool may not be called 'final_answer': the sandbox defines that name.")
        self.python = self.config.python or sys.executable
        # what host.Worker.spawn starts each worker with: the launcher prefix (bwrap or unshare), the uid/gid to drop
        # to (None: keep the host's), whether that user keeps CAP_DAC_READ_SEARCH, and the report of all of it
        self.prefix, self.uid, self.gid, self.keep_read, self.isolation = detect(self.config, self.python)
        sweep_orphans(self.config.tmp_root)
        if not self.isolation.filesystem:
            warnings.warn(WEAK_ISOLATION, SandboxWarning, stacklevel=2)

    def session(self) -> SandboxSession:
        """A worker that keeps variables across cells; close it (or use `with`) to free the process and dir."""
        return SandboxSession(self)

    def run(self, code: str) -> CodeResult:
        """Run `code` in a fresh worker that is thrown away afterwards (~40 ms + the preamble)."""
        with self.session() as session:
            return session.run(code)


class SandboxSession:
    """One persistent worker. Not for concurrent use: calls are serialised."""

    def __init__(self, sandbox: PythonSandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._worker = self._start()

    def run(self, code: str) -> CodeResult:
        """Run one cell. Model faults come back in the result; only SandboxError (cannot start) raises."""
        with self._lock:
            if self._closed:
                raise SandboxError("this sandbox session is closed; open a new one with sandbox.session().")
            if self._worker is None or self._worker.dead:
                self._worker = self._start()
            return self._worker.run_cell(code, self.sandbox)

    @property
    def process_group(self) -> int | None:
        """Process group of the live worker (its pid): every process a cell starts is in it unless it calls setsid."""
        worker = self._worker
        return None if worker is None or worker.dead else worker.proc.pid

    def reset(self) -> None:
        """Forget all variables and files: the next cell runs in a fresh worker and a fresh dir."""
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
            self._worker = None if self._closed else self._start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._worker is not None:
                self._worker.kill()

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> Worker:
        worker = Worker.spawn(self.sandbox)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, worker.kill)  # a dropped session leaves no process or dir behind
        return worker


def make_python_tool(sandbox: PythonSandbox | SandboxSession) -> Tool:
    """A `python(code)` tool for ReAct-style agents; a session keeps variables between calls, a sandbox does not."""
    config = sandbox.sandbox.config if isinstance(sandbox, SandboxSession) else sandbox.config
    persist = "Variables persist between calls." if isinstance(sandbox, SandboxSession) else "Each call starts fresh."

    def python(code: str) -> str:
        if not code.strip():
            return "Error: code is empty. Example: python(code='print(2 ** 10)')."
        return format_result(sandbox.run(code))

    python.__doc__ = (
        f"Run Python code and return what it prints (cut at {config.max_output_chars} characters). {persist}\n"
        f"Use print() to see values; a bare last expression is shown too. No network; stopped after "
        f"{config.timeout_s:g} s."
    )
    return Tool.from_function(python)


def format_result(result: CodeResult) -> str:
    """Observation text for the model: the error first (so it is classified as one), then the output."""
    parts = [f"Error: {result.error}"] if result.error else []
    if result.stdout:
        parts.append(("Output before the error:\n" if result.error else "") + result.stdout.rstrip("\n"))
    if result.final_answer_called:
        parts.append(f"Final answer: {json.dumps(result.final_answer)}")
    return "\n".join(parts) or "(no output: use print() to see values)"
