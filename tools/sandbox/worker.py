"""The code that runs inside the sandbox process: apply limits, drop privileges, then run cells on request.

Started by `host.Worker.spawn` as `python -I -c "from agentdistill.tools.sandbox.worker import ..."`.
It must import only the standard library: every import here costs start-up time in every worker, and the
worker may run as a user that can read little beyond the interpreter and this package.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import io
import json
import numbers
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

_MAX_FINAL_CHARS = 100_000
_PR_SET_KEEPCAPS, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 8, 38, 47, 2
_PR_SET_PDEATHSIG = 1
_CAP_DAC_READ_SEARCH, _CAPABILITY_VERSION_3 = 2, 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(uid: int, gid: int, keep_read: bool) -> None:
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


def worker_main() -> None:
    cmd_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    for fd in (cmd_fd, reply_fd):
        os.set_inheritable(fd, False)  # subprocesses the code starts must not speak our protocol
    reader = os.fdopen(cmd_fd, "r", encoding="utf-8")
    writer = os.fdopen(reply_fd, "w", encoding="utf-8")
    init = json.loads(reader.readline())
    for name, value in init["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if init["uid"] is not None:
        drop_privileges(init["uid"], init["gid"], init["keep_read"])
    die_with_parent()  # again after the uid drop: changing credentials clears the parent-death signal
    _CellRunner(reader, writer, init).serve()


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies. The host sets it in each launcher before exec (bwrap, unshare or
    the interpreter), the worker again after its uid drop, so a killed host leaves no sandbox running."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_ulong(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), *(ctypes.c_ulong(0),) * 3):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


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
        """Nothing a cell starts outlives it: in our own pid namespace kill(-1) reaches exactly those (we are its
        pid 1 under `unshare`, pid 2 under bwrap, whose init kill(-1) skips)."""
        if self.pidns:
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
