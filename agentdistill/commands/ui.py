"""`agentdistill ui`: the local web app (agentdistill/web) over this home's threads, trajectories and runs."""

from __future__ import annotations

from pathlib import Path

import click

from agentdistill.commands.common import settings
from agentdistill.web.security import TOKEN_ENV, UIConfig, read_token


@click.command(name="ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to listen on; any but loopback needs a token ({TOKEN_ENV} or --token-file).")  # fmt: skip
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Require this token (first line of the file) on every request; /login sets a cookie.")  # fmt: skip
@click.option("--token-env", envvar=TOKEN_ENV, default=None, hidden=True)  # the variable only: a flag shows in `ps`
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))  # fmt: skip
@click.pass_context
def ui(
    ctx: click.Context, host: str, port: int, token_file: Path | None, token_env: str | None, log_level: str
) -> None:
    """Serve the web UI: chat with any agent, browse trajectories, bench and distill runs."""
    import uvicorn

    from agentdistill.web.app import create_app

    token = read_token({TOKEN_ENV: token_env or ""}, token_file)
    config = UIConfig(host=host, port=port, token=token)
    where = f"http://{host}:{port}"
    click.echo(f"agentdistill ui on {where}" + (" (token required: open /login)" if token else ""), err=True)
    uvicorn.run(create_app(settings(ctx), config), host=host, port=port, log_level=log_level)
