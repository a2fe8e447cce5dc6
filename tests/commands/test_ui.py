"""`agentdistill ui`: what it serves, and the refusals before it serves (a network bind without a token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agentdistill.cli import cli


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """uvicorn.run replaced by a recorder: the test gets the app and the bind instead of a blocking server."""
    import uvicorn

    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.update(app=app, **kw))
    return calls


def test_ui_serves_the_app_over_this_home_on_loopback(home: Path, served: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["--home", str(home), "ui", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 7999)
    client = TestClient(served["app"])
    assert client.get("/trajectories").status_code == 200 and "agentdistill" in client.get("/chat").text


def test_a_network_bind_needs_a_token_from_the_environment_or_a_file(
    home: Path, served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = CliRunner().invoke(cli, ["--home", str(home), "ui", "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "AGENTDISTILL_UI_TOKEN" in str(refused.exception) and not served
    short = tmp_path / "token"
    short.write_text("abc\n")
    refused = CliRunner().invoke(cli, ["--home", str(home), "ui", "--host", "0.0.0.0", "--token-file", str(short)])
    assert refused.exit_code != 0 and "at least 16 characters" in str(refused.exception)

    monkeypatch.setenv("AGENTDISTILL_UI_TOKEN", "s3cret-token-0123456789")
    result = CliRunner().invoke(cli, ["--home", str(home), "ui", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    client = TestClient(served["app"])
    assert client.get("/trajectories").status_code == 401
    auth = {"Authorization": "Bearer s3cret-token-0123456789"}
    assert client.get("/trajectories", headers=auth).status_code == 200
