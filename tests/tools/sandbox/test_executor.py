"""The sandbox against hostile and careless code. Every test uses a real subprocess; nothing is mocked."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdistill.testing.processes import eventually, processes_with
from agentdistill.tools.base import Tool, ToolCall, run_tool
from agentdistill.tools.sandbox import (
    PythonSandbox,
    SandboxConfig,
    SandboxError,
    SandboxSession,
    format_result,
    make_python_tool,
)

TIMEOUT_S = 2.0


def kb_search(query: str, k: int = 2) -> str:
    """Search a tiny knowledge base."""
    if not query.strip():
        return "Error: query is empty."
    return "\n".join(f"[{i}] Canberra is the capital of Australia ({query})" for i in range(1, k + 1))


def explode(text: str) -> str:
    """A tool with a bug."""
    raise RuntimeError("tool bug")


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    tools = [Tool.from_function(kb_search, name="search"), Tool.from_function(explode)]
    return PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S), tools=tools)


@pytest.fixture
def session(sandbox: PythonSandbox) -> Iterator[SandboxSession]:
    with sandbox.session() as session:
        yield session


def _pgid_members(pgid: int) -> int:
    """Processes whose process group is `pgid` (field 5 of /proc/PID/stat)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                count += 1
    return count


def test_state_is_kept_across_cells_and_reset_forgets_it(session: SandboxSession) -> None:
    assert session.run("x = 41\ndef inc(v):\n    return v + 1").ok
    assert session.run("print(inc(x))").stdout == "42\n"
    assert session.run("x * 2").stdout == "82\n"  # a bare last expression is echoed
    session.reset()
    result = session.run("print(x)")
    assert result.error == "NameError: name 'x' is not defined (line 1: print(x))"


def test_final_answer_stops_the_code_and_returns_a_json_value(session: SandboxSession) -> None:
    result = session.run("print('before')\nfinal_answer({'answer': 42, 'items': (1, 2)})\nprint('after')")
    assert result.final_answer_called and result.final_answer == {"answer": 42, "items": [1, 2]}
    assert result.stdout == "before\n" and result.error is None
    caught = session.run("try:\n    final_answer(7)\nexcept Exception:\n    print('swallowed')")
    assert caught.final_answer == 7 and caught.stdout == ""  # `except Exception` cannot eat it
    odd = session.run("class P:\n    def __repr__(self):\n        return 'P()'\nfinal_answer(P())")
    assert odd.final_answer == "P()"
    assert session.run("final_answer(None)").final_answer_called
    assert not session.run("print(1)").final_answer_called


def test_syntax_and_runtime_errors_are_text(session: SandboxSession) -> None:
    syntax = session.run("def f(:\n    pass")
    assert syntax.error == "SyntaxError: invalid syntax (line 1: def f(:)"
    runtime = session.run("a = 1\nprint('partial')\nb = a / 0")
    assert runtime.error == "ZeroDivisionError: division by zero (line 3: b = a / 0)"
    assert runtime.stdout == "partial\n"
    assert format_result(runtime).startswith("Error: ZeroDivisionError")
    assert session.run("import sys; sys.exit(3)").error == "SystemExit: 3"
    assert session.run("print('still here')").stdout == "still here\n"


def test_infinite_loop_is_killed_within_timeout_plus_one_second(session: SandboxSession) -> None:
    session.run("kept = 1")
    start = time.monotonic()
    result = session.run("print('spinning')\nwhile True:\n    pass")
    assert time.monotonic() - start < TIMEOUT_S + 1.0
    assert result.timed_out and result.error is not None and result.error.startswith("TimeoutError")
    assert "variables from earlier cells are gone" in result.error
    assert result.stdout == "spinning\n"  # what it printed before the kill is kept
    assert session.run("print('fresh')").stdout == "fresh\n"
    assert "NameError" in (session.run("kept").error or "")


def test_processes_started_by_the_code_die_with_it(sandbox: PythonSandbox, session: SandboxSession) -> None:
    if not sandbox.isolation.pid_namespace:
        pytest.skip("no pid namespace here: a setsid() child escapes the group kill")
    marker = "4242.125"  # a sleep length nothing else on the machine uses
    spawn = f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)"
    assert session.run(spawn).ok
    assert eventually(lambda: processes_with(marker) == 0)  # a finished cell leaves nothing behind
    result = session.run(spawn + "\nwhile True:\n    pass")
    assert result.timed_out
    assert eventually(lambda: processes_with(marker) == 0)


def test_fork_bomb_is_contained_and_the_host_keeps_working(sandbox: PythonSandbox, session: SandboxSession) -> None:
    isolation = sandbox.isolation
    if isolation.nproc_enforced:
        code = "import os\nwhile True:\n    os.fork()"
    elif isolation.pid_namespace:  # nothing caps the count: a bounded bomb (128 processes), killed by the timeout
        code = "import os, time\nfor _ in range(7):\n    os.fork()\ntime.sleep(60)"
    else:
        pytest.skip("neither RLIMIT_NPROC nor a pid namespace here: a fork bomb test could take the machine down")
    start = time.monotonic()
    result = session.run(code)
    assert time.monotonic() - start < TIMEOUT_S + 1.0
    if isolation.nproc_enforced:
        assert result.error is not None and result.error.startswith("BlockingIOError"), result
        pgid = session.process_group
        assert pgid is not None and eventually(lambda: _pgid_members(pgid) <= 2)  # unshare + worker only
    else:
        assert result.timed_out
    assert subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True).stdout == "ok\n"
    assert session.run("print(6 * 7)").stdout == "42\n"


def test_two_gigabytes_fail_inside_and_the_host_is_fine(session: SandboxSession) -> None:
    session.run("kept = 'yes'")
    result = session.run("block = bytearray(2 * 1024**3)")
    assert result.error is not None and result.error.startswith("MemoryError"), result
    assert session.run("print(kept)").stdout == "yes\n"  # a MemoryError does not cost the session
    host = bytearray(10 * 1024**2)  # the host itself is unaffected by the sandbox's limit
    assert len(host) == 10 * 1024**2


def test_network_is_unreachable_from_the_sandbox(sandbox: PythonSandbox, session: SandboxSession) -> None:
    if not sandbox.isolation.network:
        assert "network: NOT isolated" in sandbox.isolation.describe()
        pytest.skip("unshare --net is unavailable here, and the isolation report says so")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        local = session.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)")
        assert local.error is not None and local.error.startswith(("OSError", "ConnectionRefusedError")), local
        assert select.select([server], [], [], 0)[0] == []  # nothing reached the host's listener
    test_net = session.run("import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)")
    assert test_net.error is not None and "unreachable" in test_net.error.lower()


def test_huge_output_is_capped_quickly(session: SandboxSession) -> None:
    cap = session.sandbox.config.max_output_chars
    for code in ("print('x' * 100_000_000)", "import os\nos.write(1, b'y' * 100_000_000)"):
        start = time.monotonic()
        result = session.run(code)
        assert time.monotonic() - start < 3.0
        assert result.ok and result.truncated
        assert result.stdout.endswith(f"\n[output truncated at {cap} chars]")
        assert len(result.stdout) <= cap + 40
    assert not session.run("print('small')").truncated


def test_writes_outside_the_session_dir_are_refused(sandbox: PythonSandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    with sandbox.session() as session:
        result = session.run(f"open({str(target)!r}, 'w').write('x')")
        inside = session.run("import os\nopen('notes.txt', 'w').write('ok')\nprint(os.getcwd())")
        workdir = Path(inside.stdout.strip())
        assert (workdir / "notes.txt").read_text() == "ok"  # relative paths land in the session dir
        assert workdir != tmp_path and tmp_path not in workdir.parents
    assert not workdir.exists()  # removed with the session
    if sandbox.isolation.uid is None:
        assert any("code can write wherever the host user can" in note for note in sandbox.isolation.notes)
        pytest.skip("no unprivileged user to drop to here; the isolation report says writes are not confined")
    # bubblewrap: the path does not exist in the sandbox's view; namespaces only: the dropped user may not write
    expected = "FileNotFoundError" if sandbox.isolation.filesystem else "PermissionError"
    assert result.error is not None and result.error.startswith(expected), result
    assert not target.exists()


def test_file_size_limit(tmp_path: Path) -> None:
    sandbox = PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S, max_file_mb=1))
    result = sandbox.run("open('big.bin', 'wb').write(b'0' * (2 << 20))")
    assert result.error is not None and "File too large" in result.error


def test_host_tools_are_callable_from_code(sandbox: PythonSandbox, session: SandboxSession) -> None:
    result = session.run("hits = search('capital of Australia', k='1')\nprint(hits)")
    assert result.stdout == "[1] Canberra is the capital of Australia (capital of Australia)\n"
    faults = session.run("print(search(query=''))\nprint(search(qury='x'))\nprint(search('a', 1, 2))")
    lines = faults.stdout.splitlines()
    assert lines[0] == "Error: query is empty."
    assert lines[1].startswith("Error: bad arguments for search: unexpected argument 'qury' (did you mean 'query'?)")
    assert lines[2].startswith("Error: bad arguments for search: at most 2 arguments")
    assert session.run("help(search)").ok
    with pytest.raises(RuntimeError, match="tool bug"):  # a tool's own exception is our bug: it raises
        session.run("explode('x')")
    assert session.run("print('recovered')").stdout == "recovered\n"


def test_python_tool_for_react_agents(sandbox: PythonSandbox, session: SandboxSession) -> None:
    tool = make_python_tool(session)
    assert tool.name == "python" and "Variables persist between calls" in tool.description
    by_name = {"python": tool}
    assert run_tool(by_name, ToolCall("python", {"code": "n = 6"})).text == "(no output: use print() to see values)"
    assert run_tool(by_name, ToolCall("python", {"code": "print(n * 7)"})).text == "42"
    failed = run_tool(by_name, ToolCall("python", {"code": "print('a')\nundefined_name"}))
    assert failed.error_kind == "tool_error"
    assert failed.text == (
        "Error: NameError: name 'undefined_name' is not defined (line 2: undefined_name)\nOutput before the error:\na"
    )
    assert "Each call starts fresh" in make_python_tool(sandbox).description


def test_isolation_report_and_config_errors(sandbox: PythonSandbox) -> None:
    text = sandbox.isolation.describe()
    assert text.startswith("filesystem: ") and "\nnetwork: " in text and "RLIMIT_AS=1024MB" in text
    with pytest.raises(SandboxError, match="the sandbox worker failed: ValueError: broken preamble"):
        PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S), preamble="raise ValueError('broken preamble')").session()
    session = sandbox.session()
    session.close()
    with pytest.raises(SandboxError, match="closed"):
        session.run("1")
    with pytest.raises(Exception, match="timeout_s"):
        SandboxConfig(timeout_s=0)


def test_worker_that_exits_is_reported_and_replaced(session: SandboxSession) -> None:
    result = session.run("import os\nprint('bye', flush=True)\nos._exit(3)")
    assert result.error is not None and result.error.startswith("SandboxCrash"), result
    assert session.run("print('back')").stdout == "back\n"


FORGED_REPLIES = {
    "wrong field types": b'{"type": "done", "chars": "many", "error": {"x": 1}, "final": "yes"}',
    "deep nesting": b"[" * 200_000,
    "not an object": b'"done"',
    "a call with junk": b'{"type": "call", "tool": 5, "args": {}, "kwargs": []}',
}


@pytest.mark.parametrize("forged", list(FORGED_REPLIES))
def test_a_forged_protocol_line_is_a_crash_the_model_sees(session: SandboxSession, forged: str) -> None:
    line = FORGED_REPLIES[forged] + b"\n"
    code = (f"import os, time\nfor fd in range(3, 64):\n    try: os.write(fd, {line!r})\n"
            "    except OSError: pass\ntime.sleep(5)")  # fmt: skip
    result = session.run(code)
    assert result.error is not None and "broke the host protocol" in result.error, result
    assert session.run("print('back')").stdout == "back\n"


def test_isolation_report_matches_the_options() -> None:
    open_net = PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S, network=True, user=None)).isolation
    assert not open_net.network and "network namespace" not in open_net.describe()
    assert any("network is NOT isolated" in note for note in open_net.notes)
    if os.geteuid() == 0:
        assert open_net.uid is None and not open_net.nproc_enforced
        assert "RLIMIT_NPROC NOT enforced (root)" in open_net.describe()
        with PythonSandbox(SandboxConfig(timeout_s=TIMEOUT_S, user=None)).session() as session:
            assert session.run("import os\nprint(os.getuid())").stdout == "0\n"


def test_a_session_opened_in_a_short_lived_thread_keeps_its_variables(sandbox: PythonSandbox) -> None:
    opened: dict[str, SandboxSession] = {}

    def step_one() -> None:  # a LangGraph step or a bench pool thread that ends before the next cell
        opened["session"] = sandbox.session()
        opened["session"].run("x = 41")

    thread = threading.Thread(target=step_one)
    thread.start()
    thread.join()
    time.sleep(0.3)
    with opened["session"] as session:
        result = session.run("print(x + 1)")
    assert result.stdout == "42\n", result


def test_a_worker_start_imports_no_host_module() -> None:
    # every worker imports the package on its way to `worker`: the package's names must load only on first use
    probe = (
        "import sys, agentdistill.tools.sandbox.worker\nprint(*sorted(m for m in sys.modules if 'agentdistill.' in m))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "agentdistill.tools",
        "agentdistill.tools.sandbox",
        "agentdistill.tools.sandbox.worker",
    ]
