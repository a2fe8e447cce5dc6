"""The host's side of one sandbox worker: start it, speak its JSON-line protocol, enforce the deadline, kill it."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from agentdistill.tools.base import Tool, ToolCall, run_tool
from agentdistill.tools.sandbox.bwrap import with_workdir
from agentdistill.tools.sandbox.config import CodeResult, SandboxConfig, SandboxError
from agentdistill.tools.sandbox.isolation import Isolation
from agentdistill.tools.sandbox.worker import die_with_parent

WORKDIR_PREFIX = "agentdistill-sandbox-"
_WORKER_CMD = "from agentdistill.tools.sandbox.worker import worker_main; worker_main()"
_MAX_MESSAGE = 16 * 1024 * 1024  # a protocol line longer than this means the worker is broken or hostile


class WorkerSpec(Protocol):
    """What a worker starts from, as `executor.PythonSandbox` holds it; a protocol so this module needs no executor."""

    config: SandboxConfig
    python: str  # the worker interpreter
    preamble: str
    tools: Mapping[str, Tool]
    isolation: Isolation
    prefix: list[str]  # the launcher (bwrap or unshare) argv; may hold bwrap.WORKDIR
    uid: int | None  # drop to this uid/gid inside the worker; None keeps the host's
    gid: int | None
    keep_read: bool  # the dropped user keeps CAP_DAC_READ_SEARCH


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


class Worker:
    """The host's handle on one worker process and its three pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], cmd_fd: int, reply_fd: int, out_fd: int, workdir: str) -> None:
        self.proc, self.cmd_fd, self.reply_fd, self.out_fd, self.workdir = proc, cmd_fd, reply_fd, out_fd, workdir
        self.dead = False
        self.namespace_init: int | None = None  # host pid of bwrap's pid-1 process, when bwrap runs the worker
        self.pending = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(reply_fd, selectors.EVENT_READ, "reply")
        self.selector.register(out_fd, selectors.EVENT_READ, "out")

    @classmethod
    def spawn(cls, sandbox: WorkerSpec) -> Worker:
        config = sandbox.config
        # the host pid in the name: a later sandbox removes the dirs of hosts that were killed (sweep_orphans)
        workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=config.tmp_root)
        if sandbox.uid is not None:
            os.chown(workdir, sandbox.uid, sandbox.gid if sandbox.gid is not None else -1)
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        out_r, out_w = os.pipe()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        prefix = with_workdir(sandbox.prefix, workdir)
        info_r, info_w = os.pipe() if sandbox.isolation.filesystem else (-1, -1)
        if info_w >= 0:  # bwrap writes its namespace init's pid here: killing that ends the namespace cleanly
            prefix = [prefix[0], "--info-fd", str(info_w), *prefix[1:]]
        argv = [*prefix, sandbox.python, "-I", "-B", "-c", _WORKER_CMD, str(cmd_r), str(reply_w)]
        passed = (cmd_r, reply_w) + ((info_w,) if info_w >= 0 else ())
        try:
            proc = _LAUNCHER.popen(
                argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=passed,
                cwd=workdir, env=env, start_new_session=True,
                preexec_fn=die_with_parent,  # the launcher (bwrap, unshare, the interpreter) dies with the host
            )  # fmt: skip
        except OSError as exc:
            for fd in (cmd_r, cmd_w, reply_r, reply_w, out_r, out_w, info_r, info_w):
                if fd >= 0:
                    os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            raise SandboxError(f"cannot start the sandbox interpreter {sandbox.python!r}: {exc}.") from exc
        for fd in (cmd_r, reply_w, out_w, info_w):
            if fd >= 0:
                os.close(fd)
        for fd in (cmd_w, reply_r, out_r):
            os.set_blocking(fd, False)
        worker = cls(proc, cmd_w, reply_r, out_r, workdir)
        if info_r >= 0:  # bwrap writes it before it starts the interpreter: known before a failed start is killed
            worker.namespace_init = _read_child_pid(info_r)
        worker._handshake(sandbox)
        return worker

    def _handshake(self, sandbox: WorkerSpec) -> None:
        config = sandbox.config
        limits = {"RLIMIT_AS": config.memory_mb and config.memory_mb << 20, "RLIMIT_CPU": config.cpu_s}
        limits["RLIMIT_FSIZE"] = config.max_file_mb and config.max_file_mb << 20
        if sandbox.isolation.nproc_enforced:
            uid = sandbox.uid if sandbox.uid is not None else os.getuid()
            limits["RLIMIT_NPROC"] = _tasks_of(uid) + config.max_procs  # the budget is per uid, not per process
        init = {
            "limits": {name: value for name, value in limits.items() if value},
            "uid": sandbox.uid, "gid": sandbox.gid, "keep_read": sandbox.keep_read,
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

    def run_cell(self, code: str, sandbox: WorkerSpec) -> CodeResult:
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

    def _await(self, output: _Output, deadline: float, sandbox: WorkerSpec) -> dict[str, Any] | None:
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

    def _serve(self, message: Mapping[str, Any], sandbox: WorkerSpec) -> str:
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
        if self.namespace_init is not None and self.proc.poll() is None:  # alive bwrap: its init pid is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.namespace_init, signal.SIGKILL)  # the kernel then kills everything inside
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)  # bwrap exits and reaps its init: no zombie left under an init that
                # does not reap (containers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.selector.close()
        for fd in (self.cmd_fd, self.reply_fd, self.out_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.workdir, ignore_errors=True)


# the worker's messages and the types of their fields; anything else on the reply pipe is a protocol break
_MESSAGE_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {},
    "start_failed": {"error": (str,)},
    "done": {"error": (str, type(None)), "final": (bool,), "chars": (int,)},
    "call": {"tool": (str,), "args": (list,), "kwargs": (dict,)},
}


class _Launcher:
    """Starts every worker from one thread that lives as long as the process.

    The parent-death signal that kills a sandbox when its host dies fires when the *thread* that started the
    launcher ends, not the process: a worker started from a short-lived thread (a LangGraph step, a bench pool)
    would die with that thread and lose its variables. One long-lived launcher thread ties it to the process.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future[subprocess.Popen[bytes]]]]
        self._requests = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="sandbox-launcher", daemon=True)
                self._thread.start()
        started: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((argv, kwargs, started))
        return started.result()

    def _serve(self) -> None:
        while True:
            argv, kwargs, started = self._requests.get()
            try:
                started.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # handed to the caller, who reports it as a SandboxError
                started.set_exception(exc)


_LAUNCHER = _Launcher()  # process-wide on purpose: see _Launcher


def _read_child_pid(fd: int) -> int | None:
    """bwrap's --info-fd JSON ({"child-pid": N, ...}), written as the sandbox starts; None if it never came."""
    data = b""
    deadline = time.monotonic() + 2.0
    try:
        os.set_blocking(fd, False)
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        pid = json.loads(data).get("child-pid")
        return pid if isinstance(pid, int) and pid > 1 else None
    return None


def sweep_orphans(tmp_root: str | None) -> int:
    """Remove work dirs whose host process is gone (it was killed before it could clean up); returns how many."""
    root = tmp_root or tempfile.gettempdir()
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if not entry.name.startswith(WORKDIR_PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            pid = entry.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed


def _decode(line: bytes) -> dict[str, Any]:
    """A message from the worker, or _WorkerDied: code in the sandbox can write forged lines to this pipe."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:  # deep nesting exhausts the parser's recursion, not a ValueError
        raise _WorkerDied from exc
    if not isinstance(message, dict) or message.get("type") not in _MESSAGE_FIELDS:
        raise _WorkerDied
    for key, types in _MESSAGE_FIELDS[message["type"]].items():
        value = message.get(key)
        if key in message and (not isinstance(value, types) or isinstance(value, bool) != (bool in types)):
            raise _WorkerDied
    if message["type"] == "done" and message.get("chars", 0) < 0:
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
