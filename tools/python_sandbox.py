"""Run model-written Python in a separate, limited process: the code agent's executor.

Design: one persistent worker process per session. The worker keeps the variables of earlier cells, so
a code agent's 100 cells cost well under 1 ms of round trip each (bench_sandbox) instead of a fresh
interpreter per cell (20-80 ms) plus re-running every earlier cell to rebuild state. The price: a cell
that times out or crashes the worker loses the session's variables (the next cell gets a fresh worker and
the error text says so), and cells share one address space, so a cell can break the ones after it (the
model's fault, as in a notebook). `reset()` starts over on purpose.

Boundary, decided once per `PythonSandbox` by probing what works here (`sandbox.isolation` says what is on):
- the worker runs in its own session, so a wall-clock timeout kills the whole process group (SIGKILL);
- `unshare --net --pid --fork --kill-child` when available: no network interfaces, and the worker is pid 1
  of its own pid namespace, so killing it kills every process it started, even ones that called setsid;
  between cells it kills stray processes, so nothing a cell starts outlives it;
- rlimits: RLIMIT_AS (memory), RLIMIT_CPU (the worker's whole life), RLIMIT_FSIZE, RLIMIT_NPROC;
- as root it drops to an unprivileged user (default `nobody`) with no_new_privs. Root ignores
  RLIMIT_NPROC, so this drop is what stops a fork bomb; it also makes root-owned host paths unwritable.
  Where the interpreter is only readable by root (e.g. under /root) the worker keeps CAP_DAC_READ_SEARCH:
  reads stay unconfined but writes do not. World-writable dirs (/tmp, /dev/shm) remain writable.
- cwd, HOME and TMPDIR are a fresh temp dir, removed when the session ends.
Host tools are callable from the code (`search("...")`) over the worker's pipes: one JSON line per call,
answered by `run_tool` in the host, so tool faults come back as `Error: ...` text like everywhere else.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import io
import json
import numbers
import os
import pwd
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.tools.base import Tool, ToolCall, run_tool

_WORKER_CMD = "from agentdistill.tools.python_sandbox import _worker_main; _worker_main()"
_MAX_MESSAGE = 16 * 1024 * 1024  # a protocol line longer than this means the worker is broken or hostile
_MAX_FINAL_CHARS = 100_000


class SandboxError(AgentDistillError):
    """The sandbox cannot run code at all: the worker did not start or the session is closed."""


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """Limits of one sandbox; every session it opens uses them."""

    timeout_s: float = 10.0  # wall clock per cell (host tool calls included); then the process group is killed
    start_timeout_s: float = 60.0  # worker start including the preamble (`from sympy import *` takes ~1 s)
    memory_mb: int | None = 1024  # RLIMIT_AS: a bigger allocation raises MemoryError inside the sandbox
    cpu_s: int | None = 600  # RLIMIT_CPU over the worker's whole life: a backstop behind timeout_s
    max_file_mb: int | None = 64  # RLIMIT_FSIZE: writing a bigger file fails with "File too large"
    max_procs: int = 64  # RLIMIT_NPROC headroom (processes + threads); root ignores it, hence `user`
    max_output_chars: int = 10_000  # stdout+stderr kept per cell; the rest is dropped with a notice
    network: bool = False  # False = own network namespace with no interface up (when unshare works here)
    user: str | None = "nobody"  # when root, run code as this user; None keeps root (no NPROC, host writable)
    python: str | None = None  # worker interpreter, which must have agentdistill installed; None = this one
    tmp_root: str | None = None  # parent of the per-session working dirs; None = the system temp dir

    def __post_init__(self) -> None:
        for name in ("timeout_s", "start_timeout_s", "max_procs", "max_output_chars"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "a positive number")
        for name in ("memory_mb", "cpu_s", "max_file_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "a positive number, or None for no limit")


@dataclass(frozen=True)
class Isolation:
    """What the sandbox enforces on this machine, found by probing at construction."""

    network: bool  # own network namespace: every connection fails, 127.0.0.1 included
    pid_namespace: bool  # worker is pid 1 of its own namespace: its death kills all it started
    uid: int | None  # uid the code runs as after dropping root; None = the host's own uid
    nproc_enforced: bool  # RLIMIT_NPROC applies (it never does for root): a fork bomb stops at max_procs
    reads_confined: bool  # False when the dropped user keeps CAP_DAC_READ_SEARCH (or no drop happened)
    rlimits: tuple[str, ...]  # e.g. ("RLIMIT_AS=1024MB", ...)
    notes: tuple[str, ...]  # what is not isolated, in words

    def describe(self) -> str:
        on = [
            name for name, flag in (("network namespace", self.network), ("pid namespace", self.pid_namespace)) if flag
        ]
        user = f"uid {self.uid}" if self.uid is not None else f"host uid {os.geteuid()}"
        lines = [
            f"network: {'isolated (unshare --net)' if self.network else 'NOT isolated'}",
            f"processes: {'pid namespace' if self.pid_namespace else 'process group only'}, "
            f"RLIMIT_NPROC {'enforced' if self.nproc_enforced else 'NOT enforced (root)'}",
            f"user: {user}; reads {'confined to what that user may read' if self.reads_confined else 'unconfined'}",
            f"limits: {', '.join(self.rlimits) or 'none'}; namespaces on: {', '.join(on) or 'none'}",
        ]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


@dataclass(frozen=True)
class CodeResult:
    """What one cell did. `error` is model-facing text; the host never raises for the code's faults."""

    stdout: str  # stdout and stderr interleaved, capped at max_output_chars
    error: str | None = None  # "ExcType: message (line N: source)", a timeout or a crash; None on success
    final_answer: Any = None  # the JSON round trip of what final_answer() got (repr as fallback)
    final_answer_called: bool = False  # final_answer(None) is still an answer
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False  # output went past max_output_chars

    @property
    def ok(self) -> bool:
        return self.error is None


class PythonSandbox:
    """Factory for sessions sharing one config, preamble and tool set; `run` is a one-cell session."""

    def __init__(self, config: SandboxConfig | None = None, *, preamble: str = "", tools: Sequence[Tool] = ()) -> None:
        self.config = config or SandboxConfig()
        self.preamble = preamble  # run once per worker start, e.g. "from sympy import *"
        self.tools: Mapping[str, Tool] = {tool.name: tool for tool in tools}
        if "final_answer" in self.tools:
            raise SandboxError("a host tool may not be called 'final_answer': the sandbox defines that name.")
        self.python = self.config.python or sys.executable
        self._prefix, self._uid, self._gid, self._keep_read, self.isolation = _detect(self.config, self.python)

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
        self._worker: _Worker | None = None
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

    def _start(self) -> _Worker:
        worker = _Worker.spawn(self.sandbox)
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


# ---------------------------------------------------------------------------------------------------- host side


class _WorkerDied(Exception):
    """The worker closed its pipe or spoke garbage: the cell is lost, the host carries on."""


class _Output:
    """Captured bytes of one cell, kept up to a cap and counted beyond it; never buffers more than the cap."""

    def __init__(self, cap_chars: int) -> None:
        self.cap_chars, self.limit = cap_chars, cap_chars * 4  # utf-8 is at most 4 bytes a char
        self.chunks: list[bytes] = []
        self.size = self.dropped = 0

    def feed(self, data: bytes) -> None:
        keep = data[: max(0, self.limit - self.size)]
        if keep:
            self.chunks.append(keep)
        self.size += len(keep)
        self.dropped += len(data) - len(keep)

    def text(self, worker_chars: int = 0) -> tuple[str, bool]:
        text = b"".join(self.chunks).decode("utf-8", errors="replace")
        truncated = self.dropped > 0 or len(text) > self.cap_chars or worker_chars > self.cap_chars
        if truncated:
            text = text[: self.cap_chars] + f"\n[output truncated at {self.cap_chars} chars]"
        return text, truncated


class _Worker:
    """The host's handle on one worker process and its three pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], cmd_fd: int, reply_fd: int, out_fd: int, workdir: str) -> None:
        self.proc, self.cmd_fd, self.reply_fd, self.out_fd, self.workdir = proc, cmd_fd, reply_fd, out_fd, workdir
        self.dead = False
        self.pending = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(reply_fd, selectors.EVENT_READ, "reply")
        self.selector.register(out_fd, selectors.EVENT_READ, "out")

    @classmethod
    def spawn(cls, sandbox: PythonSandbox) -> _Worker:
        config = sandbox.config
        workdir = tempfile.mkdtemp(prefix="agentdistill-sandbox-", dir=config.tmp_root)
        if sandbox._uid is not None:
            os.chown(workdir, sandbox._uid, sandbox._gid if sandbox._gid is not None else -1)
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        out_r, out_w = os.pipe()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        argv = [*sandbox._prefix, sandbox.python, "-I", "-B", "-c", _WORKER_CMD, str(cmd_r), str(reply_w)]
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=(cmd_r, reply_w),
                cwd=workdir, env=env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            for fd in (cmd_r, cmd_w, reply_r, reply_w, out_r, out_w):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            raise SandboxError(f"cannot start the sandbox interpreter {sandbox.python!r}: {exc}.") from exc
        for fd in (cmd_r, reply_w, out_w):
            os.close(fd)
        for fd in (cmd_w, reply_r, out_r):
            os.set_blocking(fd, False)
        worker = cls(proc, cmd_w, reply_r, out_r, workdir)
        worker._handshake(sandbox)
        return worker

    def _handshake(self, sandbox: PythonSandbox) -> None:
        config = sandbox.config
        limits = {"RLIMIT_AS": config.memory_mb and config.memory_mb << 20, "RLIMIT_CPU": config.cpu_s}
        limits["RLIMIT_FSIZE"] = config.max_file_mb and config.max_file_mb << 20
        if sandbox.isolation.nproc_enforced:
            uid = sandbox._uid if sandbox._uid is not None else os.getuid()
            limits["RLIMIT_NPROC"] = _tasks_of(uid) + config.max_procs  # the budget is per uid, not per process
        init = {
            "limits": {name: value for name, value in limits.items() if value},
            "uid": sandbox._uid, "gid": sandbox._gid, "keep_read": sandbox._keep_read,
            "pidns": sandbox.isolation.pid_namespace, "preamble": sandbox.preamble,
            "max_output_chars": config.max_output_chars,
            "tools": [{"name": tool.name, "doc": tool.description} for tool in sandbox.tools.values()],
        }  # fmt: skip
        output = _Output(config.max_output_chars)
        deadline = time.monotonic() + config.start_timeout_s
        try:
            self._send(init, deadline)
            reply = self._await(output, deadline, sandbox)
        except _WorkerDied:
            reply = {"type": "start_failed", "error": "the worker exited while starting"}
        if reply is None or reply.get("type") != "ready":
            self.kill()
            reason = "it did not start in time" if reply is None else reply.get("error")
            text, _ = output.text()
            raise SandboxError(f"the sandbox worker failed: {reason}. Check the preamble. Output:\n{text[-2000:]}")

    def run_cell(self, code: str, sandbox: PythonSandbox) -> CodeResult:
        config = sandbox.config
        self._drain(None)  # output a previous cell's leftovers wrote late belongs to nobody
        output = _Output(config.max_output_chars)
        start = time.monotonic()
        deadline = start + config.timeout_s
        try:
            self._send({"type": "run", "code": code}, deadline)
            reply = self._await(output, deadline, sandbox)
        except _WorkerDied:
            self._drain(output)
            returncode = self.proc.poll()  # None: alive but broke the protocol (closed or garbled its pipe)
            self.kill()
            text, truncated = output.text()
            how = f"exit code {returncode}" if returncode is not None else "it broke the host protocol"
            error = (
                f"SandboxCrash: the Python process died ({how}); "
                "the sandbox restarted, so variables from earlier cells are gone."
            )
            return CodeResult(text, error, duration_s=time.monotonic() - start, truncated=truncated)
        if reply is None:
            self._drain(output)
            self.kill()
            text, truncated = output.text()
            error = (
                f"TimeoutError: the code ran longer than {config.timeout_s:g} s and was stopped; "
                "the sandbox restarted, so variables from earlier cells are gone."
            )
            return CodeResult(text, error, timed_out=True, duration_s=time.monotonic() - start, truncated=truncated)
        self._drain(output)
        text, truncated = output.text(int(reply.get("chars", 0)))
        return CodeResult(
            text, reply.get("error"), reply.get("value"), bool(reply.get("final")),
            duration_s=time.monotonic() - start, truncated=truncated,
        )  # fmt: skip

    def _await(self, output: _Output, deadline: float, sandbox: PythonSandbox) -> dict[str, Any] | None:
        """Pump output and serve tool calls until the worker's reply; None when the deadline passes."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for key, _ in self.selector.select(timeout=min(remaining, 0.5)):
                if key.data == "out":
                    self._read_out(output)
                    continue
                try:
                    chunk = os.read(self.reply_fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise _WorkerDied
                self.pending += chunk
                if len(self.pending) > _MAX_MESSAGE:
                    raise _WorkerDied
                while b"\n" in self.pending:
                    line, self.pending = self.pending.split(b"\n", 1)
                    message = _decode(line)
                    if message.get("type") != "call":
                        return message
                    reply = self._serve(message, sandbox)
                    if time.monotonic() > deadline:  # the tool itself used up the cell's time
                        return None
                    self._send({"type": "result", "text": reply}, deadline)
            if self.proc.poll() is not None and not self.pending:
                self._drain(output)
                raise _WorkerDied

    def _serve(self, message: Mapping[str, Any], sandbox: PythonSandbox) -> str:
        """Run a host tool for the code. A tool that raises is our bug: kill the worker and let it propagate."""
        name, args, kwargs = message.get("tool"), message.get("args"), message.get("kwargs")
        if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _WorkerDied
        tool = sandbox.tools.get(name)
        if tool is not None and args:
            names = list(tool.parameters["properties"])
            if len(args) > len(names):
                return f"Error: bad arguments for {name}: at most {len(names)} arguments. Usage: {tool.usage()}"
            clash = [key for key in names[: len(args)] if key in kwargs]
            if clash:
                return f"Error: bad arguments for {name}: {clash[0]!r} given twice. Usage: {tool.usage()}"
            kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
        try:
            return run_tool(sandbox.tools, ToolCall(name, kwargs)).text
        except BaseException:
            self.kill()
            raise

    def _send(self, message: Mapping[str, Any], deadline: float) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            if time.monotonic() > deadline:
                raise _WorkerDied
            try:
                data = data[os.write(self.cmd_fd, data) :]
            except BlockingIOError:
                time.sleep(0.001)  # the worker is not reading; the deadline bounds this
            except OSError as exc:  # BrokenPipeError: the worker is gone
                raise _WorkerDied from exc

    def _read_out(self, output: _Output | None) -> bool:
        try:
            chunk = os.read(self.out_fd, 1 << 16)
        except BlockingIOError:
            return False
        if chunk and output is not None:
            output.feed(chunk)
        if not chunk:
            with contextlib.suppress(KeyError):
                self.selector.unregister(self.out_fd)
        return bool(chunk)

    def _drain(self, output: _Output | None) -> None:
        while self.out_fd in self.selector.get_map() and self._read_out(output):
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group (with a pid namespace: everything inside) and clean up. Idempotent."""
        if self.dead:
            return
        self.dead = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.selector.close()
        for fd in (self.cmd_fd, self.reply_fd, self.out_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise _WorkerDied from exc
    if not isinstance(message, dict):
        raise _WorkerDied
    return message


def _tasks_of(uid: int) -> int:
    """Tasks (processes + threads) `uid` runs now: RLIMIT_NPROC counts them all, so the limit adds headroom."""
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


def _detect(config: SandboxConfig, python: str) -> tuple[list[str], int | None, int | None, bool, Isolation]:
    """Probe namespaces and the privilege drop once; returns (command prefix, uid, gid, keep_read, report)."""
    root = os.geteuid() == 0
    notes: list[str] = []
    prefix: list[str] = []
    net = pidns = False
    unshare = shutil.which("unshare")
    if unshare is None:
        notes.append("no `unshare` binary: network and pid namespaces are off")
    else:
        userns = [] if root else ["--map-root-user"]
        for want_net, want_pid in ((not config.network, True), (not config.network, False), (False, True)):
            flags = userns + ["--net"] * want_net + ["--pid", "--fork", "--kill-child"] * want_pid
            if (want_net or want_pid) and _works([unshare, *flags, "--", sys.executable, "-I", "-S", "-c", ""]):
                prefix, net, pidns = [unshare, *flags, "--"], want_net, want_pid
                break
        if not prefix:
            notes.append("`unshare` is present but not permitted here: network and pid namespaces are off")
    if not net:
        notes.append("network is NOT isolated: code can reach any host this machine can")
    uid = gid = None
    keep_read = False
    if root and config.user:
        try:
            entry = pwd.getpwnam(config.user)
        except KeyError:
            notes.append(f"user {config.user!r} does not exist: code runs as root")
        else:
            order = (False, True) if _world_readable(python) else (True, False)  # saves a failing probe
            for keep_read in order:
                probe = f"{_PROBE}; _drop_privileges({entry.pw_uid}, {entry.pw_gid}, {keep_read}); import fractions"
                if _works([*prefix, python, "-I", "-B", "-c", probe]):
                    uid, gid = entry.pw_uid, entry.pw_gid
                    break
            else:
                keep_read = False
                notes.append(f"dropping to {config.user!r} failed here: code runs as root")
    if uid is not None:
        notes.append("world-writable dirs (/tmp, /dev/shm) stay writable; other host paths owned by root do not")
    else:
        notes.append("code can write wherever the host user can; only its cwd, HOME and TMPDIR are the session dir")
    if root and uid is None:
        notes.append("as root RLIMIT_NPROC is ignored: a fork bomb runs until the timeout kills the group")
    if keep_read:
        notes.append(f"{config.user} keeps CAP_DAC_READ_SEARCH (the interpreter is not world-readable): reads are open")
    if not pidns:
        notes.append("no pid namespace: a process that calls setsid() escapes the timeout kill")
    notes.append("total disk use is not capped, only the size of each file")
    limits = [f"RLIMIT_AS={config.memory_mb}MB"] if config.memory_mb else []
    limits += [f"RLIMIT_CPU={config.cpu_s}s"] if config.cpu_s else []
    limits += [f"RLIMIT_FSIZE={config.max_file_mb}MB"] if config.max_file_mb else []
    nproc = uid is not None or not root
    limits += [f"RLIMIT_NPROC=+{config.max_procs}"] if nproc else []
    reads_confined = uid is not None and not keep_read
    isolation = Isolation(net, pidns, uid, nproc, reads_confined, tuple(limits), tuple(notes))
    return prefix, uid, gid, keep_read, isolation


_PROBE = "from agentdistill.tools.python_sandbox import _drop_privileges"


def _world_readable(python: str) -> bool:
    """Whether any user can run `python` and read the stdlib and this package (every parent dir o+x)."""
    targets = [os.path.realpath(shutil.which(python) or python), os.path.dirname(os.__file__), __file__]
    for target in targets:
        path = os.path.realpath(target)
        while True:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                return False
            if not mode & (0o001 if os.path.isdir(path) else 0o004):
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


def _works(argv: Sequence[str]) -> bool:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# --------------------------------------------------------------------------------------------- worker side
# Everything below runs inside the sandbox process (`_worker_main`), started by `_Worker.spawn`.

_PR_SET_KEEPCAPS, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 8, 38, 47, 2
_CAP_DAC_READ_SEARCH, _CAPABILITY_VERSION_3 = 2, 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_privileges(uid: int, gid: int, keep_read: bool) -> None:
    """setuid to `uid` for good (no_new_privs: setuid binaries cannot give root back).

    keep_read retains only CAP_DAC_READ_SEARCH (also for child processes, via the ambient set), for
    machines whose interpreter lives where the unprivileged user cannot read it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    ulong = ctypes.c_ulong

    def prctl(*args: int) -> None:
        if libc.prctl(*(ulong(a) for a in args), *(ulong(0),) * (5 - len(args))) != 0:
            raise OSError(ctypes.get_errno(), f"prctl{args} failed")

    prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if keep_read:
        prctl(_PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if keep_read:
        header, data, bit = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)(), 1 << _CAP_DAC_READ_SEARCH
        data[0].effective = data[0].permitted = data[0].inheritable = bit
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset failed")
        prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, _CAP_DAC_READ_SEARCH)


class _FinalAnswer(BaseException):
    """Raised by final_answer() to stop the cell; BaseException so `except Exception` in the code can't eat it."""


class _CappedStream(io.TextIOBase):
    """sys.stdout/sys.stderr of the sandbox: writes past the cap are counted and dropped before any syscall."""

    def __init__(self, fd: int, cap: int) -> None:
        self._raw = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), "utf-8", "replace", line_buffering=True)
        self.cap, self.chars, self.fd = cap, 0, fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.cap + 1 - self.chars
        if room > 0:
            self._raw.write(text[:room])
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._raw.flush()

    def fileno(self) -> int:
        return self.fd

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def _worker_main() -> None:
    cmd_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    for fd in (cmd_fd, reply_fd):
        os.set_inheritable(fd, False)  # subprocesses the code starts must not speak our protocol
    reader = os.fdopen(cmd_fd, "r", encoding="utf-8")
    writer = os.fdopen(reply_fd, "w", encoding="utf-8")
    init = json.loads(reader.readline())
    for name, value in init["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if init["uid"] is not None:
        _drop_privileges(init["uid"], init["gid"], init["keep_read"])
    _CellRunner(reader, writer, init).serve()


class _CellRunner:
    """The worker's loop: read a cell, run it in the persistent namespace, report, clean up."""

    def __init__(self, reader: io.TextIOBase, writer: io.TextIOBase, init: Mapping[str, Any]) -> None:
        self.reader, self.writer, self.pidns, self.pid = reader, writer, init["pidns"], os.getpid()
        self.out = _CappedStream(1, init["max_output_chars"])
        sys.stdout = sys.stderr = self.out
        sys.stdin = io.StringIO()
        self.final: tuple[bool, Any] = (False, None)
        self.ns: dict[str, Any] = {"__name__": "__main__", "final_answer": self.final_answer}
        for spec in init["tools"]:
            self.ns[spec["name"]] = self._stub(spec["name"], spec["doc"])
        self.preamble = init["preamble"]

    def serve(self) -> None:
        try:
            exec(compile(self.preamble, "<preamble>", "exec"), self.ns)
        except BaseException as exc:  # anything the preamble raises is reported, then we exit
            self._send({"type": "start_failed", "error": _describe(exc, self.preamble, "<preamble>")})
            return
        self._send({"type": "ready"})
        while line := self.reader.readline():
            message = json.loads(line)
            if message.get("type") == "run":
                self._send(self.run_cell(message["code"]))

    def run_cell(self, code: str) -> dict[str, Any]:
        self.out.chars, self.final, error = 0, (False, None), None
        try:
            tree = ast.parse(code, "<cell>")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, "<cell>", "exec"), self.ns)
            if last is not None:  # echo a bare last expression, as a notebook does
                value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), self.ns)
                if value is not None:
                    print(repr(value))
        except _FinalAnswer:
            pass
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = f"SystemExit: {exc.code}"
        except BaseException as exc:  # the code's faults are the model's: report them as text
            error = _describe(exc, code, "<cell>")
        if os.getpid() != self.pid:  # a process the code forked fell through to here: it must not report
            self.out.flush()
            os._exit(0)
        self.out.flush()
        self._reap()
        called, value = self.final
        return {"type": "done", "error": error, "final": called, "value": value, "chars": self.out.chars}

    def final_answer(self, answer: Any) -> None:
        """Give your final answer and stop the code."""
        self.final = (True, _jsonable(answer))
        raise _FinalAnswer

    def _stub(self, name: str, doc: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> str:
            if os.getpid() != self.pid:
                raise RuntimeError(f"{name}() can only be called from the main sandbox process")
            self._send({"type": "call", "tool": name, "args": list(args), "kwargs": kwargs})
            reply = json.loads(self.reader.readline() or "{}")
            if reply.get("type") != "result":
                raise RuntimeError(f"{name}(): the host did not answer")
            return reply["text"]

        call.__name__, call.__doc__ = name, doc
        return call

    def _send(self, message: Mapping[str, Any]) -> None:
        self.writer.write(json.dumps(message, default=repr) + "\n")
        self.writer.flush()

    def _reap(self) -> None:
        """Nothing a cell starts outlives it: as pid 1 of our namespace, kill(-1) reaches exactly those."""
        if self.pidns and os.getpid() == 1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(-1, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if not self.pidns or time.monotonic() > deadline:
                    return
                time.sleep(0.002)


def _jsonable(value: Any) -> Any:
    """The JSON round trip of `value`; numbers from numpy/sympy become plain numbers; else its repr."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Rational):
        value = float(value)
    elif hasattr(value, "tolist"):
        with contextlib.suppress(TypeError, ValueError):
            value = value.tolist()
    if isinstance(value, str):
        return value[:_MAX_FINAL_CHARS]
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:_MAX_FINAL_CHARS]
    return json.loads(text) if len(text) <= _MAX_FINAL_CHARS else text[:_MAX_FINAL_CHARS]


def _describe(exc: BaseException, code: str, filename: str) -> str:
    """`ExcType: message (line N: source)`: the last line of the traceback that is in the model's code."""
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        text = f"SyntaxError: {exc.msg}"
        lineno = exc.lineno
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
        lineno = frames[-1].lineno if frames else None
    lines = code.splitlines()
    if lineno and 0 < lineno <= len(lines):
        text += f" (line {lineno}: {lines[lineno - 1].strip()[:200]})"
    return text[:2000]
