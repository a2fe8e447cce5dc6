"""`agentdistill models ...`: which model specs exist, which packaged models are installed."""

from __future__ import annotations

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
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
    from agentdistill.models.packaged import find_packaged, is_installed, packaged_models

    rows = []
    for pm in packaged_models():
        ok, why = is_installed(pm)
        rows.append({"spec": f"local:{pm.name}", "role": pm.role, "installed": ok, "note": why or pm.license})
    from agentdistill.models.students import packaged_students

    students = []
    for card in packaged_students():
        ok, why_not = is_installed(find_packaged(card.base.partition(":")[2]))
        summary = card.headline()
        students.append({"spec": card.spec, "role": f"distilled {card.agent} student", "installed": ok,
                         "note": why_not or f"{card.base} + LoRA from {card.teacher}; {summary}"})  # fmt: skip
    runs_on, why = local_backend()
    if as_json:
        emit_json({"backends": backend_names(), "local_backend": runs_on, "gguf_unavailable": why, "packaged": rows,
                   "students": students})  # fmt: skip
        return
    for name in backend_names():
        click.echo(_SPEC_HELP.get(name, name))
    click.echo(_local_line(runs_on, why))
    table("packaged models", ["spec", "role", "installed", "note"], [list(r.values()) for r in rows + students])


@models.command(name="info")
@click.argument("spec")
@click.option("--load", is_flag=True, help="Load the model and report its device, dtype and parameter count.")
@json_option
@click.pass_context
def info(ctx: click.Context, spec: str, load: bool, as_json: bool) -> None:
    """Describe a model spec; with --load, load it and report where it runs."""
    from agentdistill.models import make_chat_model, split_spec

    backend, rest = split_spec(spec)
    data: dict = {"spec": spec, "backend": backend}
    options = settings(ctx).model_options()
    if backend == "local":
        runs_on, why_not_gguf = local_backend(options)
        data.update(runs_on=runs_on, gguf_unavailable=why_not_gguf)
    if backend in ("local", "gguf"):
        from agentdistill.models.llama_probe import check

        verdict = check()  # cached: the child process ran once for this build and CPU
        state = "usable" if verdict.usable else "unusable"
        when = f", probed {verdict.checked_at}" if verdict.checked_at else ""
        data["llama_cpp_probe"] = f"{state}{when}" + (f": {verdict.reason}" if verdict.reason else "")
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


@models.command(name="probe")
@click.option("--refresh", is_flag=True, help="Probe again even if a verdict for this build and CPU is cached.")
@click.option("--gguf", "gguf_path", type=click.Path(dir_okay=False), help="Probe this GGUF file instead.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds before the child counts as hung.")
@json_option
def probe(refresh: bool, gguf_path: str | None, timeout_s: float | None, as_json: bool) -> None:
    """Check, in a child process, that llama.cpp loads and decodes here (cached per build, CPU and file).

    A crash, hang or garbage output marks llama.cpp unusable: `local:` models then run on transformers and
    `gguf:` specs fail with this reason instead of taking the process down. Exits 1 when unusable.
    """
    from pathlib import Path

    from agentdistill.models.llama_build import read_cpu
    from agentdistill.models.llama_probe import check, find_install, target_for

    target = target_for(Path(gguf_path)) if gguf_path else None
    verdict = check(target, refresh=refresh, timeout_s=timeout_s)
    install = find_install()
    data = {
        **verdict.to_dict(),
        "cpu": read_cpu().summary(),
        "llama_cpp_python": install.version if install else None,
        "lib_dir": str(install.lib_dir) if install else None,
    }
    if as_json:
        emit_json(data)
    else:
        state = "usable" if verdict.usable else "UNUSABLE"
        source = "cached verdict" if verdict.cached else "probed now"
        click.echo(f"llama.cpp: {state} ({source}{', ' + verdict.checked_at if verdict.checked_at else ''})")
        for key in ("reason", "model", "output", "seconds", "system_info", "cpu", "llama_cpp_python", "lib_dir"):
            if data.get(key) not in (None, ""):
                click.echo(f"  {key}: {data[key]!r}" if key == "output" else f"  {key}: {data[key]}")
    if not verdict.usable:
        raise SystemExit(1)


@models.command(name="build-flags")
@click.option("--explain", is_flag=True, help="One line per flag saying why it is on or off.")
@json_option
def build_flags(explain: bool, as_json: bool) -> None:
    """Print the CMAKE_ARGS that build llama.cpp to run on this CPU (AVX-512 kept, AMX off).

    \b
    CMAKE_ARGS="$(agentdistill models build-flags)" pip install --no-cache-dir llama-cpp-python==0.3.36
    """
    from agentdistill.models.llama_build import cmake_args, read_cpu, shell_line
    from agentdistill.models.llama_build import explain as explain_flags

    cpu = read_cpu()
    if as_json:
        emit_json({"cpu": cpu.summary(), "cmake_args": cmake_args(cpu), "why": dict(explain_flags(cpu))})
    elif explain:
        click.echo(f"# {cpu.summary()}")
        for flag, why in explain_flags(cpu):
            click.echo(f"{flag:<26} {why}")
    else:
        click.echo(shell_line(cmake_args(cpu)))


def _local_line(runs_on: str, why: str | None) -> str:
    if why is None:
        return "local: runs on gguf (llama.cpp)"
    return f"local: runs on transformers; gguf unavailable: {why}"
