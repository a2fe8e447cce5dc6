"""The Ollama Modelfile written beside an exported GGUF."""

from __future__ import annotations

from pathlib import Path

from agentdistill.distill.modelfile import CHATML_STOPS, modelfile_text, write_modelfile

QWEN_TEMPLATE = "{%- for message in messages %}{{ '<|im_start|>' + message.role }}...{%- endfor %}"


def test_chatml_models_get_the_template_and_stops_spelled_out(tmp_path: Path) -> None:
    gguf = tmp_path / "student.gguf"
    gguf.write_bytes(b"GGUF")
    made = write_modelfile(gguf, QWEN_TEMPLATE, name="gsm-student")
    text = made.path.read_text()
    assert made.path == tmp_path / "student.Modelfile" and made.template == "chatml"
    assert text.startswith("FROM ./student.gguf\n") and "PARAMETER temperature 0" in text
    assert 'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}' in text
    assert all(f'PARAMETER stop "{stop}"' in text for stop in CHATML_STOPS)
    assert made.command == f"ollama create gsm-student -f {made.path}"


def test_other_templates_are_left_to_ollama_and_say_so() -> None:
    text, kind = modelfile_text("m.gguf", "{{ bos_token }}[INST] {{ message }} [/INST]")
    assert kind == "ollama-detected" and "TEMPLATE" not in text and "# Not a ChatML model" in text
    assert modelfile_text("m.gguf", None)[1] == "ollama-detected"
