"""An Ollama Modelfile beside an exported GGUF, so `ollama create NAME -f FILE` gives a model that chats right.

Ollama renders prompts with Go templates, not the Jinja chat template stored in the GGUF, and guesses a
template when the Modelfile names none. The packaged models (Qwen2.5-Coder, SmolLM2) speak ChatML, so the
file spells the ChatML template and its stop tokens out instead of leaving them to a guess; a template in
another format is left to Ollama's detection and said so in a comment. Greedy decoding (temperature 0) is
the default because that is how the agents call their models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentdistill.paths import atomic_write

CHATML_TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
CHATML_STOPS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


@dataclass(frozen=True)
class Modelfile:
    path: Path
    template: str  # "chatml", or "ollama-detected" when the chat template is not ChatML
    command: str  # what to run to register it with Ollama


def modelfile_text(gguf_name: str, chat_template: str | None, *, context: int = 4096) -> tuple[str, str]:
    """The Modelfile's text for a GGUF next to it, and which template it carries."""
    lines = [f"FROM ./{gguf_name}", f"PARAMETER num_ctx {context}", "PARAMETER temperature 0"]
    if chat_template and "<|im_start|>" in chat_template:
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
        lines += [f'PARAMETER stop "{stop}"' for stop in CHATML_STOPS]
        kind = "chatml"
    else:
        lines.append("# Not a ChatML model: Ollama picks the template from the GGUF's tokenizer.chat_template.")
        kind = "ollama-detected"
    return "\n".join(lines) + "\n", kind


def write_modelfile(gguf: Path, chat_template: str | None, *, name: str | None = None) -> Modelfile:
    """Write `<gguf stem>.Modelfile` beside `gguf` (atomically) and return it with the `ollama create` command."""
    text, kind = modelfile_text(gguf.name, chat_template)
    path = gguf.with_suffix(".Modelfile")
    with atomic_write(path) as handle:
        handle.write(text)
    return Modelfile(path, kind, f"ollama create {name or gguf.stem} -f {path}")
