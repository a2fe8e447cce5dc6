"""The attacks of issue 17 against the sandbox, replayed: secrets, host command lines, other sessions, unix sockets,
a killed host. With bubblewrap the code sees only the interpreter and its own work dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdistill.testing.processes import eventually, processes_with
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig, SandboxError, isolation

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    built = PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S))
    if not built.isolation.filesystem:
        pytest.skip("bubblewrap does not work here: " + "; ".join(built.isolation.notes))
    return built


@pytest.fixture
def session(sandbox: PythonSandbox) -> Iterator:
    with sandbox.session() as opened:
        yield opened


def test_secret_files_of_the_host_do_not_exist_inside(session, home: Path, tmp_path: Path) -> None:  # noqa: ANN001
    config = tmp_path / "config.toml"
    config.write_text('openai_api_key = "sk-secret"\n')
    config.chmod(0o600)
    (home / "trajectories.db").write_bytes(b"SQLite format 3\x00")
    for path in (config, home / "trajectories.db", Path("/etc/shadow"), Path("/root")):
        result = session.run(f"print(open({str(path)!r}).read())")
        assert result.error is not None and result.error.startswith(("FileNotFoundError", "IsADirectoryError"))
        assert "sk-secret" not in result.stdout
    listing = session.run("import os\nprint(sorted(os.listdir('/')))")
    assert "home" not in listing.stdout and "etc" in listing.stdout  # /etc holds only the linker's files
    assert session.run("import os\nprint(os.listdir('/etc'))").stdout.count("shadow") == 0


def test_host_command_lines_are_invisible(session) -> None:  # noqa: ANN001
    host = subprocess.Popen(["sleep", "4343.5"])  # a host process with a "key" in its command line
    try:
        found = session.run(
            "import os\nhits = []\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n"
            "        try: hits.append(open(f'/proc/{p}/cmdline', 'rb').read())\n        except OSError: pass\n"
            "print(len(hits), any(b'4343.5' in h for h in hits))"
        )
        count, seen = found.stdout.split()
        assert seen == "False" and int(count) <= 4  # bwrap's init, the worker and what the cell started
    finally:
        host.kill()
        host.wait()


def test_one_session_cannot_see_another(sandbox: PythonSandbox) -> None:
    with sandbox.session() as first, sandbox.session() as second:
        where = first.run("import os\nopen('notes.txt', 'w').write('mine')\nprint(os.getcwd())").stdout.strip()
        peek = second.run(f"print(open({where + '/notes.txt'!r}).read())")
        assert peek.error is not None and peek.error.startswith("FileNotFoundError"), peek
        assert second.run("import os\nprint(os.listdir('/tmp'))").stdout.count("agentdistill-sandbox") == 1


def test_unix_sockets_on_disk_are_unreachable(session, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\nprint('connected')"
        result = session.run(code)
        assert result.error is not None and "connected" not in result.stdout, result
    finally:
        listener.close()


HOST = """
import os
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig
session = PythonSandbox(SandboxConfig(timeout_s=120)).session()
print("ready", flush=True)
session.run("import subprocess, time\\nsubprocess.Popen(['sleep', '" + os.environ["MARKER"] + "'])\\ntime.sleep(100)")
"""


def test_a_killed_host_leaves_no_sandbox_process_or_dir(sandbox: PythonSandbox) -> None:
    marker = f"4545.{os.getpid()}"  # a sleep length only this test uses
    host = subprocess.Popen(
        [sys.executable, "-c", HOST], stdout=subprocess.PIPE, text=True, env={**os.environ, "MARKER": marker}
    )  # not in argv: only the sleep shows it
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "ready"
        assert eventually(lambda: processes_with(marker) == 1, timeout=5.0)  # the cell is running
    finally:
        host.kill()
        host.wait()
    assert eventually(lambda: processes_with(marker) == 0, timeout=5.0)  # died with the host, no timeout needed
    leftover = f"agentdistill-sandbox-{host.pid}-"
    PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S))  # a later sandbox removes the killed host's work dir
    assert not [e for e in os.listdir(sandbox.config.tmp_root or "/tmp") if e.startswith(leftover)]


def test_without_bubblewrap_strict_isolation_refuses_and_auto_says_what_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "bwrap_binary", lambda: None)
    with pytest.raises(SandboxError, match=r"needs bubblewrap.*no `bwrap` on PATH.*apt-get install bubblewrap"):
        PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S, isolation="bwrap"))
    fallback = PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S)).isolation
    assert not fallback.filesystem and fallback.describe().startswith("filesystem: the host's")
    assert any("no private filesystem view" in note for note in fallback.notes)
    with pytest.raises(Exception, match="isolation"):
        SandboxConfig(isolation="docker")
