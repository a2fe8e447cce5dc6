"""`agentdistill serve --model SPEC`: any model spec behind an OpenAI-compatible endpoint (see distill/serve.py).

Point a teacher's `openai:` spec at it (base_url http://HOST:PORT/v1, model NAME) and the same graph runs
on the student in another process, exactly as it would against vLLM.
"""

from __future__ import annotations

import click

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
@click.option("--api-key", default=None, help="Require `Authorization: Bearer KEY` (for a non-local --host).")
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
    api_key: str | None,
    log_level: str,
) -> None:
    """Serve a model as an OpenAI-compatible chat completions endpoint until Ctrl-C."""
    from agentdistill.distill.serve import serve as run_server
    from agentdistill.models import make_chat_model

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
        api_key=api_key,
        log_level=log_level,
        on_ready=ready,
    )
