"""`agentdistill distill ...`: turn trained students into files other runtimes use.

Heavy imports (torch, gguf, llama_cpp) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from agentdistill.commands.common import emit_json

QUANT_CHOICES = ("q8_0", "q4_k_m", "f16", "f32")  # same as export_gguf.QUANTS, kept here so --help imports nothing


@click.group(name="distill")
def distill() -> None:
    """Distill teachers into students and export them."""


@distill.command(name="export")
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Student to export: a merged HF dir, or a LoRA adapter dir whose base is a local dir.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="GGUF file to write.")
@click.option(
    "--quant",
    type=click.Choice(QUANT_CHOICES),
    default="q8_0",
    show_default=True,
    help="Weight format. q8_0 is near-lossless at half of f16; q4_k_m is smallest. q8_0/q4_k_m need llama-cpp-python.",
)
@click.option(
    "--base-gguf",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="GGUF the student was fine-tuned from; its tokenizer and chat template are copied."
    " Default: the packaged model the dir comes from.",
)
@click.option("--verify", is_flag=True, help="Compare greedy tokens of llama.cpp on the export with transformers.")
@click.option("--prompt", "prompts", multiple=True, help="Prompt for --verify (repeatable; default: 5 built-in ones).")
@click.option("--max-tokens", default=32, show_default=True, type=click.IntRange(1), help="Tokens per --verify prompt.")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for quantizing and llama.cpp (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def export(
    model_dir: Path, out: Path, quant: str, base_gguf: Path | None, verify: bool, prompts: tuple[str, ...],
    max_tokens: int, threads: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Export a student to GGUF for llama.cpp, Ollama or `gguf:PATH`, with an Ollama Modelfile beside it.

    Weights come from MODEL-DIR; hyper-parameters, tokenizer and special tokens from the base GGUF,
    after checking that they match the student's config.
    """
    from agentdistill.distill.export_gguf import export_gguf, find_base_gguf, gguf_chat_template
    from agentdistill.distill.modelfile import write_modelfile
    from agentdistill.distill.verify_gguf import DEFAULT_PROMPTS, verify_export

    def say(message: str) -> None:
        click.echo(f"agentdistill: {message}", err=True)

    base = base_gguf or find_base_gguf(model_dir, progress=say)
    started = time.monotonic()
    export_gguf(model_dir, out, quant=quant, base_gguf=base, progress=say, threads=threads)  # type: ignore[arg-type]
    result: dict = {
        "out": str(out),
        "quant": quant,
        "bytes": out.stat().st_size,
        "seconds": round(time.monotonic() - started, 2),
        "base_gguf": str(base),
    }
    modelfile = write_modelfile(out, gguf_chat_template(out))
    result.update(modelfile=str(modelfile.path), modelfile_template=modelfile.template, ollama=modelfile.command)
    if verify:
        say("verifying: greedy tokens of transformers vs llama.cpp")
        report = verify_export(model_dir, out, prompts or DEFAULT_PROMPTS, max_tokens, threads=threads)
        result["verify"] = report.to_dict()
    if as_json:
        emit_json(result)
        return
    click.echo(f"wrote {out} ({result['bytes'] / 1e6:.1f} MB, {quant}) in {result['seconds']:.1f} s from base {base}")
    click.echo(f"wrote {modelfile.path} ({modelfile.template} template): `{modelfile.command}` serves it with Ollama")
    if verify:
        click.echo(
            f"token agreement {report.agreement:.3f}, exact matches {report.exact_matches}/{len(report.prompts)}"
            f" (greedy, {max_tokens} tokens max per prompt)"
        )


def _register() -> None:
    # Sub-commands live in their own modules (one job each); they are attached here, in one place.
    from agentdistill.commands.distill_compress import compress
    from agentdistill.commands.distill_data import dataset
    from agentdistill.commands.distill_onpolicy import onpolicy
    from agentdistill.commands.distill_publish import publish
    from agentdistill.commands.distill_run import collect, evaluate, run
    from agentdistill.commands.distill_shorten import shorten
    from agentdistill.commands.distill_train import train

    for command in (run, collect, dataset, shorten, train, onpolicy, evaluate, compress, publish):
        distill.add_command(command)


_register()
