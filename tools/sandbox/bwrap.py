"""The bubblewrap profile of the sandbox: a private filesystem view with only the interpreter and the work dir.

`bwrap` (the OS package `bubblewrap`, as Flatpak uses it) starts the worker in new mount, pid, ipc, uts and
(unless the config allows network) network namespaces. What the code can see of the filesystem is exactly:

    read-only   /usr, /bin, /lib*, the dynamic linker's cache, the worker interpreter's prefixes and
                sys.path entries, and the agentdistill package dirs the worker imports (tools/ holds sandbox/)
    read-write  the session's own work dir (cwd, HOME, TMPDIR)
    private     /proc (its own pid namespace: no host command lines), /dev (null, zero, random, tty),
                /tmp (an empty tmpfs)

so HOME, config files, the trajectory and KB databases, /etc/shadow, other sessions' work dirs and unix
sockets on disk do not exist inside. As root, bwrap runs without a user namespace and the worker then drops
to the configured user itself (RLIMIT_NPROC counts that user's processes); otherwise a user namespace maps
the caller's own uid. `--die-with-parent` kills the sandbox when the host process dies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence

WORKDIR = "{workdir}"  # replaced by the session's work dir when a worker starts
SYSTEM_READ_ONLY = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
                    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")  # fmt: skip
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`)"
_PATHS_PROBE = """
import json, os, sys, agentdistill, agentdistill.tools
paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
         os.path.dirname(os.path.realpath(sys.executable)),
         os.path.dirname(agentdistill.__file__), os.path.dirname(agentdistill.tools.__file__)]
paths += [p for p in sys.path if p and os.path.isdir(p)]
print(json.dumps(paths))
"""


def bwrap_binary() -> str | None:
    return shutil.which("bwrap")


def interpreter_paths(python: str) -> list[str]:
    """What the worker interpreter reads: its prefixes, its sys.path dirs and the agentdistill package dirs.

    Asked of the interpreter itself (it may be another venv than the host's), resolved through symlinks and
    reduced to the outermost dirs. Raises OSError/ValueError when the interpreter cannot answer.
    """
    done = subprocess.run([python, "-I", "-c", _PATHS_PROBE], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ValueError(f"{python} could not import agentdistill: {done.stderr.strip()[-300:]}")
    found = {os.path.realpath(p) for p in json.loads(done.stdout)} | set(json.loads(done.stdout))
    found = {p for p in found if os.path.isdir(p) and p != "/"}
    return sorted(p for p in found if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in found))


def bwrap_argv(bwrap: str, paths: Sequence[str], *, network: bool, worker_drops_uid: bool) -> list[str]:
    """The command prefix that starts the worker inside the sandbox; contains WORKDIR as a placeholder."""
    # bwrap's own init is pid 1 of the namespace: when it dies (bwrap killed, or its parent, the host, died)
    # the kernel kills every process inside, which a pid-1 worker could not promise after its uid drop
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try"]  # fmt: skip
    if not network:
        argv.append("--unshare-net")
    if not worker_drops_uid:  # as root the worker drops to the sandbox user itself, so RLIMIT_NPROC applies
        argv += ["--unshare-user", "--cap-drop", "ALL"]
    for path in SYSTEM_READ_ONLY:
        argv += ["--ro-bind-try", path, path]
    for path in paths:
        argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", WORKDIR, WORKDIR, "--chdir", WORKDIR]
    return [*argv, "--"]


def with_workdir(prefix: Sequence[str], workdir: str) -> list[str]:
    return [workdir if part == WORKDIR else part for part in prefix]
