"""`agentdistill models ...`: which model specs exist, which packaged models are installed."""

from __future__ import annotations

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.errors import UnknownModelSpec
from agentdistill.models import backend_names, local_backend

_SPEC_HELP = {
    "openai": "openai:MODEL - any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, `agentdistill serve`)",
    "local": "local:NAME - a packaged offline model (see the table below), on gguf when installed, else transformers",
    "gguf": "gguf:NAME or gguf:PATH - a packaged model or any .gguf file, run by llama.cpp (llama-cpp-python)",
    "transformers": "transformers:NAME - a packaged model run with transformers, whatever local: picks",
    "hf": "hf:DIR - any HF-format model dir (a trained student, a merged model), optional LoRA adapter",
    "student": "student:DIR - a distilled student dir (same loader as hf:)",
    "scripted": "scripted:FILE - replay a JSON list of replies (tests, demos)",
}


@click.group(name="models")
def models() -> None:
    """Model specs and the packaged offline models."""


@models.command(name="list")
@json_option
def list_models(as_json: bool) -> None:
    """List spec prefixes and packaged models with their install state."""
    from agentdistill.models.packaged import is_installed, packaged_models

    rows = []
    for pm in packaged_models():
        ok, why = is_installed(pm)
        rows.append({"spec": f"local:{pm.name}", "role": pm.role, "installed": ok, "note": why or pm.license})
    runs_on, why = local_backend()
    if as_json:
        emit_json({"backends": backend_names(), "local_backend": runs_on, "gguf_unavailable": why, "packaged": rows})
        return
    for name in backend_names():
        click.echo(_SPEC_HELP.get(name, name))
    click.echo(_local_line(runs_on, why))
    table("packaged models", ["spec", "role", "installed", "note"], [list(r.values()) for r in rows])


@models.command(name="info")
@click.argument("spec")
@click.option("--load", is_flag=True, help="Load the model and report its device, dtype and parameter count.")
@json_option
@click.pass_context
def info(ctx: click.Context, spec: str, load: bool, as_json: bool) -> None:
    """Describe a model spec; with --load, load it and report where it runs."""
    from agentdistill.models import make_chat_model

    backend, sep, rest = spec.partition(":")
    if not sep or not rest or backend not in backend_names():
        raise UnknownModelSpec(spec, known=backend_names())
    data: dict = {"spec": spec, "backend": backend}
    options = settings(ctx).model_options()
    if backend == "local":
        runs_on, why_not_gguf = local_backend(options)
        data.update(runs_on=runs_on, gguf_unavailable=why_not_gguf)
    from agentdistill.models.packaged import find_packaged, is_installed, packaged_models

    if backend in ("local", "transformers") or (backend == "gguf" and rest in {pm.name for pm in packaged_models()}):
        pm = find_packaged(rest)
        ok, why = is_installed(pm)
        data.update(name=pm.name, role=pm.role, installed=ok, install_hint=why, license=pm.license)
    if load or backend in ("openai", "scripted"):
        model = make_chat_model(spec, options)
        describe = getattr(model, "describe", None)
        data.update(describe() if callable(describe) else {})
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


def _local_line(runs_on: str, why: str | None) -> str:
    if why is None:
        return "local: runs on gguf (llama.cpp)"
    return f"local: runs on transformers; gguf unavailable: {why}. Install: pip install llama-cpp-python==0.3.36"
