from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.trajectory import Run, Step


def _seed(home: Path) -> None:
    store = TrajectoryStore.open(home / "trajectories.db")
    for i in range(2):
        store.start_run(Run(id=f"abc{i}", agent="react", question=f"question {i}"))
        store.append_step(Step(run_id=f"abc{i}", index=0, kind="model", node="think", completion="Final Answer: x"))
        store.finish_run(f"abc{i}", status="ok", answer="x")
    store.close()


def test_help_and_version() -> None:
    runner = CliRunner()
    assert "chat with tool-using agents" in runner.invoke(cli, ["--help"]).output
    result = runner.invoke(cli, ["version"])
    assert result.exit_code == 0 and result.output.startswith("agentdistill 0.")
    flag = runner.invoke(cli, ["--version"])
    assert flag.exit_code == 0 and flag.output == result.output


def test_an_agent_that_ends_without_an_answer_exits_1_through_the_entry_point(home: Path, tmp_path: Path) -> None:
    replies = tmp_path / "s.json"
    replies.write_text(json.dumps(["Thought: hmm\nAction: search\nAction Input: x"]))
    done = _agentdistill("ask", "--agent", "react", "--kb", "none", "--model", f"scripted:{replies}", "--max-steps",
                         "1", "q?", home=home)  # fmt: skip
    assert done.returncode == 1, done.stderr  # ctx.exit(1) used to come out as 0 with standalone_mode=False


def test_trajectories_list_show_export_import(home: Path) -> None:
    _seed(home)
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["trajectories", "list", "--json"], catch_exceptions=False).output)
    assert [r["id"] for r in listed] == ["abc0", "abc1"] and listed[0]["steps"] == 1
    shown = runner.invoke(cli, ["trajectories", "show", "abc1"], catch_exceptions=False).output
    assert "question 1" in shown and "Final Answer: x" in shown
    out = home / "export.jsonl"
    assert "exported 2 runs" in runner.invoke(cli, ["trajectories", "export", str(out)]).output
    result = runner.invoke(cli, ["--home", str(home / "other"), "trajectories", "import", str(out)])
    assert "imported 2 runs" in result.output
    assert TrajectoryStore.open(home / "other" / "trajectories.db").count() == 2


def _agentdistill(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentdistill.cli", *args],
        capture_output=True,
        text=True,
        env={"AGENTDISTILL_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_user_errors_are_one_line_exit_2_and_debug_shows_traceback(home: Path) -> None:
    (home / "trajectories.db").write_bytes(b"garbage" * 500)
    result = _agentdistill("trajectories", "list", home=home)
    assert result.returncode == 2
    assert result.stderr.startswith("error: trajectory store") and len(result.stderr.strip().splitlines()) == 1
    debug = _agentdistill("--debug", "trajectories", "list", home=home)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bad_config_field_is_one_line(home: Path) -> None:
    (home / "config.toml").write_text("devcie = 'cpu'\n")
    result = _agentdistill("version", home=home)
    assert result.returncode == 2 and "did you mean 'device'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_model_spec_is_one_line(home: Path) -> None:
    result = _agentdistill("models", "info", "opnai:gpt", home=home)
    assert result.returncode == 2 and "Did you mean 'openai:'" in result.stderr


def test_library_loading_bars_are_off_unless_the_user_asks_for_them(monkeypatch) -> None:
    from transformers.utils import logging as hf_logging

    from agentdistill.cli import quiet_library_bars

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    try:
        quiet_library_bars()
        assert not hf_logging.is_progress_bar_enabled()  # no "Loading weights" inside a streamed answer
        hf_logging.enable_progress_bar()
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
        quiet_library_bars()
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
