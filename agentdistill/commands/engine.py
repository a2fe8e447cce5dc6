"""`agentdistill engine build|start|stop|status`: a managed llama-server with continuous batching."""

from __future__ import annotations

import time
from pathlib import Path

import click

from agentdistill.commands.common import emit_json, json_option, settings, table


@click.group(name="engine")
def engine() -> None:
    """A local llama-server that decodes many agent runs at once (continuous batching, prompt cache per slot).

    `bench run --concurrency N` and `distill run` start one by themselves for local:/gguf: models; start one
    here to keep it running between commands (and to share it between processes).
    """


@engine.command(name="build")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel compile jobs (default: one per core).")
@click.option("--force", is_flag=True, help="Rebuild even if llama-server is already installed.")
def build(jobs: int | None, force: bool) -> None:
    """Build llama-server from the pinned llama.cpp source for this CPU and install it beside python."""
    from agentdistill.models.engine import server_binary
    from agentdistill.models.engine_build import build_server

    found = server_binary()
    if found is not None and not force:
        click.echo(f"llama-server is installed: {found} (--force rebuilds it)")
        return
    build_server(jobs=jobs, say=lambda message: click.echo(f"agentdistill: {message}", err=True))


def _model_option(func):
    for decorator in reversed(
        [
            click.argument("model"),
            click.option("--parallel", type=click.IntRange(min=1), default=4, show_default=True, help="Slots."),
            click.option(
                "--ctx",
                "ctx_size",
                type=click.IntRange(min=256),
                default=4096,
                show_default=True,
                help="Context tokens per slot.",
            ),  # fmt: skip
            click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: one per core)."),
        ]
    ):
        func = decorator(func)
    return func


@engine.command(name="start")
@_model_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address; any other needs --api-key.")
@click.option("--port", type=click.IntRange(min=1, max=65535), help="Port (default: a free one).")
@click.option("--api-key", help="Require this bearer token (needed with a non-loopback --host).")
@json_option
@click.pass_context
def start(
    ctx: click.Context, model: str, parallel: int, ctx_size: int, threads: int | None, host: str, port: int | None,
    api_key: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Start llama-server for MODEL (local:NAME, gguf:NAME, a packaged name or a .gguf path), or reuse it.

    It keeps running until `agentdistill engine stop`. Clients: `--model openai:NAME` with the printed URL.
    """
    from agentdistill.models.engine import EngineConfig
    from agentdistill.models.engine_manager import start_engine

    path, name = _resolve(model)
    config = EngineConfig(model_path=path, name=name, parallel=parallel, ctx=ctx_size, threads=threads,
                          host=host, port=port, api_key=api_key)  # fmt: skip
    started = time.monotonic()
    handle = start_engine(config, home=settings(ctx).home, persistent=True, lease=False,
                          say=lambda m: click.echo(f"agentdistill: {m}", err=True))  # fmt: skip
    state = handle.state
    row = {"model": state.name, "url": state.base_url, "pid": state.server_pid, "parallel": state.parallel,
           "ctx_per_slot": state.ctx, "threads": state.threads, "log": state.log,
           "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    if as_json:
        emit_json(row)
    else:
        click.echo(
            f"{state.name} on {state.base_url} ({state.parallel} slots, pid {state.server_pid}, log {state.log})"
        )
        click.echo(f"use it: --model openai:{state.name} with OPENAI_BASE_URL={state.base_url}")


@engine.command(name="stop")
@click.argument("model", required=False)
@click.option("--all", "stop_all", is_flag=True, help="Stop every engine.")
@click.pass_context
def stop(ctx: click.Context, model: str | None, stop_all: bool) -> None:
    """Stop the engine serving MODEL (or every engine with --all)."""
    from agentdistill.models.engine_manager import stop_engine

    if not model and not stop_all:
        raise click.UsageError("name the MODEL whose engine to stop, or pass --all")
    stopped = stop_engine(settings(ctx).home, None if stop_all else _resolve(model or "")[0])
    if not stopped:
        click.echo("no engine was running" + (f" for {model}" if model else ""))
    for state in stopped:
        click.echo(f"stopped {state.name} ({state.base_url})")


@engine.command(name="status")
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """List running engines: model, URL, slots, clients holding a lease, uptime, log."""
    from agentdistill.models.engine import healthy
    from agentdistill.models.engine_manager import lease_count, list_engines

    rows = []
    for path, state in list_engines(settings(ctx).home):
        rows.append({"model": state.name, "url": state.base_url, "status": state.status if healthy(state) else
                     f"{state.status} (not answering)", "parallel": state.parallel, "ctx_per_slot": state.ctx,
                     "clients": lease_count(path), "persistent": state.persistent, "pid": state.server_pid,
                     "uptime_s": round(time.time() - state.started_at), "log": state.log})  # fmt: skip
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no engine is running (agentdistill engine start MODEL)")
    else:
        columns = ["model", "url", "status", "parallel", "clients", "persistent", "uptime_s", "log"]
        table("engines", columns, [[r[c] for c in columns] for r in rows])


def _resolve(model: str) -> tuple[Path, str]:
    from agentdistill.models.engine_model import gguf_for_spec

    spec = model if model.partition(":")[0] in ("local", "gguf") else f"gguf:{model}"
    found = gguf_for_spec(spec)
    assert found is not None
    return found
