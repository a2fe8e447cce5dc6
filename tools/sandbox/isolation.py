"""What the sandbox can enforce on this machine: probing `unshare` namespaces and the privilege drop once."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import agentdistill.tools.sandbox.worker as worker
from agentdistill.tools.sandbox.bwrap import INSTALL_HINT, bwrap_argv, bwrap_binary, interpreter_paths, with_workdir
from agentdistill.tools.sandbox.config import SandboxError

if TYPE_CHECKING:
    from agentdistill.tools.sandbox.config import SandboxConfig


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
    filesystem: bool = False  # private filesystem view (bubblewrap): only the interpreter and the work dir exist

    def describe(self) -> str:
        on = [
            name for name, flag in (("network namespace", self.network), ("pid namespace", self.pid_namespace)) if flag
        ]
        user = f"uid {self.uid}" if self.uid is not None else f"host uid {os.geteuid()}"
        lines = [
            "filesystem: "
            + (
                "private view (bubblewrap): interpreter read-only, work dir, private /proc and /tmp"
                if self.filesystem
                else "the host's, as the sandbox user may read it"
            ),
            f"network: {'isolated (own network namespace)' if self.network else 'NOT isolated'}",
            f"processes: {'pid namespace' if self.pid_namespace else 'process group only'}, "
            f"RLIMIT_NPROC {'enforced' if self.nproc_enforced else 'NOT enforced (root)'}",
            f"user: {user}; reads "
            + (
                "only what the private view holds"
                if self.filesystem
                else "confined to what that user may read"
                if self.reads_confined
                else "unconfined"
            ),
            f"limits: {', '.join(self.rlimits) or 'none'}; namespaces on: {', '.join(on) or 'none'}",
        ]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


Detected = tuple[list[str], int | None, int | None, bool, Isolation]  # prefix, uid, gid, keep_read, report


def detect(config: SandboxConfig, python: str) -> Detected:
    """Probe bubblewrap, else namespaces, and the privilege drop once; returns (prefix, uid, gid, keep_read, report).

    The prefix may hold bwrap.WORKDIR, which each worker start replaces with its own work dir.
    """
    notes: list[str] = []
    if config.isolation != "namespaces":
        found = _detect_bwrap(config, python)
        if not isinstance(found, str):
            return found
        if config.isolation == "bwrap":
            raise SandboxError(
                f"the sandbox needs bubblewrap, which does not work here ({found}): {INSTALL_HINT}; or set the"
                " sandbox isolation to 'namespaces' (weaker: the code can read any file the sandbox user can)."
            )
        notes.append(f"bubblewrap does not work here ({found}): no private filesystem view; {INSTALL_HINT}")
    return _detect_namespaces(config, python, notes)


def _detect_bwrap(config: SandboxConfig, python: str) -> Detected | str:
    """The bubblewrap profile when it starts a worker here, else why not (a short reason)."""
    bwrap = bwrap_binary()
    if bwrap is None:
        return "no `bwrap` on PATH"
    try:
        paths = interpreter_paths(python)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"cannot list what {python} reads: {exc}"
    root = os.geteuid() == 0
    uid = gid = None
    if root and config.user:
        try:
            entry = pwd.getpwnam(config.user)
        except KeyError:
            return f"user {config.user!r} does not exist"
        uid, gid = entry.pw_uid, entry.pw_gid
    prefix = bwrap_argv(bwrap, paths, network=config.network, worker_drops_uid=uid is not None)
    keep_read = False
    for keep_read in (False, True) if uid is not None else (False,):
        drop = f"; drop_privileges({uid}, {gid}, {keep_read})" if uid is not None else ""
        if _works_in(prefix, [python, "-I", "-B", "-c", f"{_PROBE}{drop}; import fractions"], uid, gid, config):
            break
    else:
        return "bwrap could not start the interpreter (a kernel or container without the namespaces it needs?)"
    notes = ["network is NOT isolated: code can reach any host this machine can"] if config.network else []
    if uid is None and root:
        notes.append("code runs as root inside a user namespace: RLIMIT_NPROC does not hold (root's own count)")
    notes.append("total disk use is not capped, only the size of each file")
    nproc = uid is not None or not root
    isolation = Isolation(not config.network, True, uid, nproc, True, _limits(config, nproc), tuple(notes),
                          filesystem=True)  # fmt: skip
    return prefix, uid, gid, keep_read, isolation


def _works_in(prefix: list[str], command: list[str], uid: int | None, gid: int | None, config: SandboxConfig) -> bool:
    workdir = tempfile.mkdtemp(prefix="agentdistill-probe-", dir=config.tmp_root)
    try:
        if uid is not None:
            os.chown(workdir, uid, gid if gid is not None else -1)
        return _works([*with_workdir(prefix, workdir), *command])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _detect_namespaces(config: SandboxConfig, python: str, notes: list[str]) -> Detected:
    """`unshare` namespaces and the privilege drop, without a private filesystem view."""
    root = os.geteuid() == 0
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
                probe = f"{_PROBE}; drop_privileges({entry.pw_uid}, {entry.pw_gid}, {keep_read}); import fractions"
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
    nproc = uid is not None or not root
    reads_confined = uid is not None and not keep_read
    isolation = Isolation(net, pidns, uid, nproc, reads_confined, _limits(config, nproc), tuple(notes))
    return prefix, uid, gid, keep_read, isolation


def _limits(config: SandboxConfig, nproc: bool) -> tuple[str, ...]:
    """The rlimits the worker sets, as the isolation report lists them."""
    limits = [f"RLIMIT_AS={config.memory_mb}MB"] if config.memory_mb else []
    limits += [f"RLIMIT_CPU={config.cpu_s}s"] if config.cpu_s else []
    limits += [f"RLIMIT_FSIZE={config.max_file_mb}MB"] if config.max_file_mb else []
    limits += [f"RLIMIT_NPROC=+{config.max_procs}"] if nproc else []
    return tuple(limits)


_PROBE = "from agentdistill.tools.sandbox.worker import drop_privileges"


def _world_readable(python: str) -> bool:
    """Whether any user can run `python` and read the stdlib and this package (every parent dir o+x)."""
    targets = [os.path.realpath(shutil.which(python) or python), os.path.dirname(os.__file__)]
    targets.append(worker.__file__)  # the module the worker imports
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
