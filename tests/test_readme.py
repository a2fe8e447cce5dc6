"""The README's library snippet, run verbatim in a fresh process with a temporary home and working dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_its_library_snippet() -> None:
    [snippet] = python_snippets()
    assert "build_agent(" in snippet and "sample_store()" in snippet


@pytest.mark.integration
def test_the_library_snippet_runs_as_written(home: Path, tmp_path: Path) -> None:
    [snippet] = python_snippets()
    env = {**os.environ, "AGENTDISTILL_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r" (ok|max_steps) [1-9]\d* recorded steps$", done.stdout.strip()), done.stdout
    assert (tmp_path / "runs.db").is_file() and (home / "kb" / "sample").is_dir()  # store in cwd, KB under the home
