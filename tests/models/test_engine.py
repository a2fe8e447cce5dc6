"""The managed engine with a stand-in llama-server (fake_llama_server.py): start, reuse, leases, faults.

Real processes, real sockets and the real supervisor; only the server binary is a small Python program,
so these run on every machine. tests/models/test_engine_llama.py runs the real llama-server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentdistill.errors import ModelUnavailable
from agentdistill.models import ModelOptions, user
from agentdistill.models.engine import EngineConfig, EngineError, pid_alive, read_state
from agentdistill.models.engine_manager import list_engines, running_engine, start_engine, stop_engine
from agentdistill.models.engine_model import EngineChatModel, _engine_for, open_model

FAKE = Path(__file__).with_name("fake_llama_server.py")


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKE)!r}, run_name='__main__')\n")
    binary.chmod(0o755)
    monkeypatch.setenv("AGENTDISTILL_LLAMA_SERVER", str(binary))
    monkeypatch.setenv("FAKE_LLAMA_STARTS", str(tmp_path / "starts.txt"))
    return binary


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF not really")
    return path


def config(model_file: Path, **kw) -> EngineConfig:
    return EngineConfig(model_path=model_file, name="tiny", parallel=2, ctx=512, startup_timeout_s=30, **kw)


def starts(tmp_path: Path) -> int:
    path = tmp_path / "starts.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until(check, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_start_serves_chat_under_the_users_spec_and_a_second_start_reuses_it(
    fake_server: Path, model_file: Path, home: Path, tmp_path: Path
) -> None:
    with running_engine(config(model_file), home=home) as engine:
        assert engine.state.host == "127.0.0.1" and engine.alive()
        model = EngineChatModel("gguf:tiny", engine, ModelOptions(timeout_s=10))
        [reply] = model.generate([user("hello there")])
        assert reply.text == "echo: hello there" and model.spec == "gguf:tiny"
        again = start_engine(config(model_file), home=home)
        assert again.state.server_pid == engine.state.server_pid and starts(tmp_path) == 1
        again.release()
        [(_, state)] = list_engines(home)
        assert state.status == "ready" and Path(state.log).exists()
    # the last lease is gone: the supervisor stops the server
    assert wait_until(lambda: not pid_alive(engine.state.server_pid))
    assert wait_until(lambda: list_engines(home) == [])


def test_a_persistent_engine_outlives_its_starter_until_stopped(
    fake_server: Path, model_file: Path, home: Path
) -> None:
    engine = start_engine(config(model_file), home=home, persistent=True, lease=False)
    time.sleep(4)  # longer than the supervisor's grace period for lease-less engines
    assert engine.alive()
    [stopped] = stop_engine(home, model_file)
    assert stopped.server_pid == engine.state.server_pid
    assert wait_until(lambda: not pid_alive(engine.state.server_pid)) and list_engines(home) == []


def test_a_second_process_shares_the_engine_and_a_killed_holder_releases_it(
    fake_server: Path, model_file: Path, home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from agentdistill.models.engine import EngineConfig
        from agentdistill.models.engine_manager import start_engine
        cfg = EngineConfig(model_path=Path({str(model_file)!r}), name="tiny", parallel=2, ctx=512)
        engine = start_engine(cfg, home=Path({str(home)!r}))
        print(engine.state.server_pid, flush=True)
        time.sleep(600)
    """)
    )
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        server_pid = int(holder.stdout.readline())
        mine = start_engine(config(model_file), home=home)
        assert mine.state.server_pid == server_pid  # reused, not a second server
        mine.release()
        time.sleep(4)
        assert pid_alive(server_pid)  # the other process still holds a lease
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything
        holder.wait()
        assert wait_until(lambda: not pid_alive(server_pid))  # the supervisor noticed and stopped the server
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_server_that_dies_mid_run_fails_that_call_then_is_restarted_once(
    fake_server: Path, model_file: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "exit_after:3")  # the engine's warm-up call is the first of the 3
    with running_engine(config(model_file), home=home) as engine:
        model = EngineChatModel("gguf:tiny", engine, ModelOptions(timeout_s=5))
        model.generate([user("one")])
        model.generate([user("two")])
        first_pid = engine.state.server_pid
        with pytest.raises(ModelUnavailable, match="died and was restarted"):
            model.generate([user("three")])
        assert engine.state.server_pid != first_pid and starts(tmp_path) == 2
        assert model.generate([user("four")])[0].text == "echo: four"
        model.generate([user("five")])
        with pytest.raises(ModelUnavailable) as again:  # dies again: no second restart
            model.generate([user("six")])
        assert "restarted" not in str(again.value) and starts(tmp_path) == 2


def test_a_hung_server_times_out_and_is_restarted(
    fake_server: Path, model_file: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "hang_after:2")  # warm-up, then one answered call
    with running_engine(config(model_file), home=home) as engine:
        model = EngineChatModel("gguf:tiny", engine, ModelOptions(timeout_s=1.5))
        model.generate([user("one")])
        with pytest.raises(ModelUnavailable, match="restarted"):
            model.generate([user("two")])
        assert starts(tmp_path) == 2
        assert model.generate([user("three")])[0].text == "echo: three"


def test_startup_failures_name_the_log(
    fake_server: Path, model_file: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "exit_at_start")
    with pytest.raises(EngineError, match=r"did not start: llama-server exited with status 1.*failed to load model"):
        start_engine(config(model_file), home=home)
    monkeypatch.setenv("FAKE_LLAMA_MODE", "never_healthy")
    with pytest.raises(EngineError, match=r"did not become healthy in 3 s"):
        start_engine(EngineConfig(model_path=model_file, name="tiny", startup_timeout_s=3), home=home)
    assert wait_until(lambda: list_engines(home) == [])


def test_bad_input_is_one_clear_error(fake_server: Path, model_file: Path, home: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EngineError, match=f"port {port} on 127.0.0.1 is in use"):
            start_engine(config(model_file, port=port), home=home)
    with pytest.raises(EngineError, match="does not exist"):
        start_engine(config(tmp_path / "missing.gguf"), home=home)
    with pytest.raises(EngineError, match="--host 0.0.0.0 would expose.*--api-key"):
        EngineConfig(model_path=model_file, name="tiny", host="0.0.0.0")


def test_a_missing_binary_names_the_build_command(model_file: Path, home: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENTDISTILL_LLAMA_SERVER", str(model_file.parent / "no-such-binary"))
    with pytest.raises(EngineError, match="agentdistill engine build"):
        start_engine(config(model_file), home=home)


def test_an_api_key_is_passed_to_the_server_and_the_client(fake_server: Path, model_file: Path, home: Path) -> None:
    with running_engine(config(model_file, api_key="s3cret"), home=home) as engine:
        assert "--api-key" in read_state(engine.state_path).command
        [reply] = EngineChatModel("gguf:tiny", engine, ModelOptions(timeout_s=5)).generate([user("hi")])
        assert reply.text == "echo: hi"


def test_open_model_picks_the_engine_only_where_it_pays(
    fake_server: Path, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agentdistill.models.packaged import find_packaged, is_installed

    if not is_installed(find_packaged("smollm2-135m"))[0]:
        pytest.skip("packaged SmolLM2 not installed")
    said: list[str] = []
    with open_model("local:smollm2-135m", ModelOptions(), concurrency=3, home=home, say=said.append) as model:
        assert isinstance(model, EngineChatModel) and model.spec == "local:smollm2-135m"
        assert model.engine.state.parallel == 3 and "3 slots" in said[-1]
    stop_engine(home)  # else the 3-slot engine, in its grace period, would be reused
    with open_model("local:smollm2-135m", ModelOptions(), concurrency=6, home=home, slots=4) as model:
        assert model.engine.state.parallel == 4  # 6 items in flight share 4 slots
    stop_engine(home)
    with open_model("scripted:" + str(_script(tmp_path)), ModelOptions(), concurrency=4, home=home) as model:
        assert not isinstance(model, EngineChatModel)  # not a llama.cpp model
    monkeypatch.setenv("AGENTDISTILL_LLAMA_SERVER", str(tmp_path / "absent"))
    with pytest.raises(EngineError, match="not built"):
        with open_model("local:smollm2-135m", ModelOptions(), concurrency=4, engine="server", home=home):
            pass
    said.clear()
    chosen = _engine_for("gguf:smollm2-135m", ModelOptions(), concurrency=4, mode="auto", home=home, say=said.append)
    assert chosen is None and "not built" in said[0]  # auto falls back to in-process, saying why


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "replies.json"
    path.write_text('["Final Answer: 4"]')
    return path


def test_an_engine_whose_last_lease_ended_is_retired_not_handed_out(fake_server: Path, model_file: Path, home: Path):
    """The supervisor marks an unleased engine `stopping` under the clients' lock before it stops the server;
    a client arriving then starts a fresh engine instead of taking one whose server is going away."""
    from agentdistill.models.engine import write_state
    from agentdistill.models.engine_supervisor import _retire

    first = start_engine(config(model_file), home=home)
    [(path, state)] = list_engines(home)
    assert not _retire(path, state) and read_state(path).status == "ready"  # a live lease: keeps serving
    state.status = "stopping"  # what _retire writes once the lease is gone (the supervisor then stops it)
    write_state(path, state)
    second = start_engine(config(model_file), home=home)
    try:
        assert second.state.server_pid != first.state.server_pid and second.state.status == "ready"
        assert wait_until(lambda: not pid_alive(first.state.server_pid))  # the retiring one was stopped
    finally:
        second.release()
        first.release()
