"""Every test runs with a temporary AGENTDISTILL_HOME: no test ever touches ~/.agentdistill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _model_cache() -> Path:
    """Converted packaged models are expensive (30-60 s each): every test shares one cache.

    $AGENTDISTILL_TEST_CACHE when set, else a fixed temp dir that survives between runs.
    """
    raw = os.environ.get("AGENTDISTILL_TEST_CACHE")
    path = Path(raw) if raw else Path(os.environ.get("TMPDIR", "/tmp")) / "agentdistill-test-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AGENTDISTILL_HOME", str(home))
    monkeypatch.setenv("AGENTDISTILL_CACHE", str(_model_cache()))
    monkeypatch.setenv("LANGGRAPH_STRICT_MSGPACK", "true")
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA
