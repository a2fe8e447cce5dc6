"""`agentdistill serve --model SPEC`: any model spec behind an OpenAI-compatible endpoint (see distill/serve.py).

Point a teacher's `openai:` spec at it (base_url http://HOST:PORT/v1, model NAME) and the same graph runs
on the student in another process, exactly as it would against vLLM.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from agentdistill.commands.common import settings


@click.command(name="serve")
@click.option("--model", "spec", required=True, help="Model spec to serve, e.g. student:DIR, hf:DIR, local:NAME.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (no auth: keep it local).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--name", default=None, help="Model id clients ask for (`openai:NAME`); default: the spec.")
@click.option(
    "--max-concurrent",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Requests generating at once; >1 only helps backends that batch (hf: on a GPU).",
)
@click.option(
    "--max-tokens-cap",
    type=click.IntRange(1),
    default=None,
    help="Most tokens one request may ask for (default: the model's context window); more is a 400.",
)
@click.option(
    "--api-key",
    envvar="AGENTDISTILL_API_KEY",
    default=None,
    help="Require `Authorization: Bearer KEY` (for a non-local --host). Prefer the AGENTDISTILL_API_KEY variable"
    " or --api-key-file: a key on the command line is visible to every user in `ps`.",
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the API key from this file (first line).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.pass_context
def serve(
    ctx: click.Context,
    spec: str,
    host: str,
    port: int,
    name: str | None,
    max_concurrent: int,
    max_tokens_cap: int | None,
    api_key: str | None,
    api_key_file: Path | None,
    log_level: str,
) -> None:
    """Serve a model as an OpenAI-compatible chat completions endpoint until Ctrl-C or SIGTERM."""
    from agentdistill.distill.serve import serve as run_server
    from agentdistill.models import make_chat_model

    if api_key_file is not None:
        if api_key is not None:
            raise click.UsageError("give the API key one way: --api-key-file, --api-key or AGENTDISTILL_API_KEY")
        lines = api_key_file.read_text(encoding="utf-8").splitlines()
        api_key = lines[0].strip() if lines else ""
        if not api_key:
            raise click.BadParameter(f"{api_key_file} line 1: empty; write the key there", param_hint="--api-key-file")
    elif api_key is not None and ctx.get_parameter_source("api_key") == ParameterSource.COMMANDLINE:
        click.echo("warning: --api-key is visible to other users in `ps`; use AGENTDISTILL_API_KEY or --api-key-file",
                   err=True)  # fmt: skip

    model = make_chat_model(spec, settings(ctx).model_options())
    served = name or spec

    def ready(base_url: str) -> None:
        # The one line a script waits for: with --port 0 it is the only place the chosen port appears.
        click.echo(f"serving {spec} as model {served!r} at {base_url}", err=True)

    run_server(
        model,
        host=host,
        port=port,
        model_name=served,
        max_concurrent=max_concurrent,
        max_tokens_cap=max_tokens_cap,
        api_key=api_key,
        log_level=log_level,
        on_ready=ready,
    )
