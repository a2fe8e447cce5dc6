"""Export a student (merged HF dir, or adapter dir over a local base) to a GGUF that llama.cpp and Ollama run.

The tokenizer is the hard part of a GGUF conversion, and a student never changes it: so every metadata
key (hyper-parameters, tokenizer.*, chat template, special ids) is copied from the GGUF the student was
trained from, after checking the HF config still matches it, and only the weights come from the HF dir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from agentdistill.errors import AgentDistillError
from agentdistill.models.packaged import MARKER, assembled_gguf, find_packaged, hf_dir_path, packaged_models
from agentdistill.paths import cache_dir, fsync_dir

if TYPE_CHECKING:
    import gguf
    import numpy as np
    import torch

Quant = Literal["f16", "q8_0", "q4_k_m", "f32"]
QUANTS: tuple[str, ...] = get_args(Quant)
Progress = Callable[[str], None]  # receives one line per stage; the CLI prints it on stderr

# HF model_type -> (GGUF architecture, whether Q/K rows get llama.cpp's rope permutation)
_ARCHS = {"llama": ("llama", True), "qwen2": ("qwen2", False)}
_ARCH_HELP = "llama (SmolLM2) and qwen2 (Qwen2.5-Coder)"
_LLAMA_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
# Keys the writer sets itself, or that describe the base file rather than the export.
_OWN_KEYS = ("general.architecture", "general.file_type", "general.quantization_version", "general.name")
_DROPPED_PREFIXES = ("GGUF.", "split.", "general.base_model.")


class ExportError(AgentDistillError):
    """A model cannot be exported to GGUF as asked; the message says why and what to do."""


class BaseMismatch(ExportError):
    """The base GGUF whose tokenizer and hyper-parameters would be copied is not the student's base."""


def export_gguf(
    hf_dir: Path,
    out: Path,
    *,
    quant: Quant = "q8_0",
    base_gguf: Path | None = None,
    progress: Progress | None = None,
    cache: Path | None = None,
    threads: int | None = None,
) -> Path:
    """Write `hf_dir`'s weights as a GGUF at `out`, all-or-nothing, and return `out`.

    `base_gguf` defaults to the packaged model the dir was trained from (see find_base_gguf). f16/f32 are
    written directly; q8_0/q4_k_m are quantized from an f16 temp file by llama.cpp itself, so the result
    uses exactly the block formats llama.cpp expects. `threads` is for quantizing (None: all cores).
    """
    say = progress or (lambda _message: None)
    if quant not in QUANTS:
        raise ExportError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTS)}")
    if quant in _LLAMA_FTYPES:
        require_llama_cpp(quant)
    base_dir, adapter = _resolve(hf_dir)
    config = _config(base_dir)
    arch, permute = _ARCHS[config["model_type"]]
    base = base_gguf.expanduser() if base_gguf else find_base_gguf(hf_dir, cache=cache, progress=progress)
    if not base.is_file():
        raise ExportError(f"base GGUF {base} does not exist: pass --base-gguf with the GGUF the model came from")
    out = out.expanduser()
    if out.is_dir():
        raise ExportError(f"{out} is a directory: give the path of the .gguf file to write")
    if out.exists() and out.resolve() == base.resolve():
        raise ExportError(f"{out} is the base GGUF itself: write the export to another file")

    import gguf

    started = time.monotonic()
    say(f"reading metadata of {base}")
    try:
        reader = gguf.GGUFReader(str(base))
    except (ValueError, OSError) as exc:  # gguf raises ValueError on a bad magic or truncated header
        raise BaseMismatch(f"{base} is not a readable GGUF file ({exc}): pass the right --base-gguf") from exc
    check_base(config, reader, arch=arch, base=base, hf_dir=hf_dir)
    say(f"loading {hf_dir}")
    model, tokenizer = _load_merged(base_dir, adapter)
    template = getattr(tokenizer, "chat_template", None)

    out.parent.mkdir(parents=True, exist_ok=True)
    with _temp_path(out, "f16" if quant in _LLAMA_FTYPES else quant) as tmp:
        writer = gguf.GGUFWriter(None, arch)
        try:
            _copy_metadata(reader, writer, name=_display_name(hf_dir), base=base, chat_template=template)
            writer.add_file_type(gguf.LlamaFileType.ALL_F32 if quant == "f32" else gguf.LlamaFileType.MOSTLY_F16)
            say(f"converting weights to {'f32' if quant == 'f32' else 'f16'}")
            written = set()
            for name, array in _gguf_tensors(model, arch, permute=permute, f32=quant == "f32"):
                writer.add_tensor(name, array)
                written.add(name)
            _check_tensor_names(written, {t.name for t in reader.tensors}, base=base)
            say(f"writing {len(written)} tensors to a temp file next to {out.name}")
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            say("writing tensor data")
            writer.write_tensors_to_file(progress=progress is not None and sys.stderr.isatty())
        finally:
            writer.close()
        if quant in _LLAMA_FTYPES:
            with _temp_path(out, quant) as quantized:
                say(f"quantizing to {quant} with llama.cpp")
                _quantize(tmp, quantized, quant, threads=threads)
                _publish(quantized, out)
        else:
            _publish(tmp, out)
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")
    return out


def find_base_gguf(hf_dir: Path, *, cache: Path | None = None, progress: Progress | None = None) -> Path:
    """The packaged GGUF a dir comes from: the dir's own conversion marker, else the one packaged model
    whose converted dir in the cache has the same architecture and shapes (a student trained from
    `local:NAME` always has it). Anything else needs an explicit base GGUF.
    """
    cache = cache or cache_dir()
    base_dir, _ = _resolve(hf_dir)
    marker = base_dir / MARKER
    if marker.is_file():
        name = json.loads(marker.read_text(encoding="utf-8")).get("name", "")
        return assembled_gguf(find_packaged(name), cache, progress=progress is not None)
    wanted = _fingerprint(_config(base_dir))
    matches = []
    for pm in packaged_models():
        config = hf_dir_path(pm, cache) / "config.json"
        if config.is_file() and _fingerprint(json.loads(config.read_text(encoding="utf-8"))) == wanted:
            matches.append(pm)
    if len(matches) != 1:
        found = "several packaged models match" if matches else "no packaged model in the cache matches"
        raise ExportError(
            f"cannot tell which GGUF {hf_dir} was trained from ({found} its config): pass --base-gguf FILE,"
            " the GGUF of the model it was fine-tuned from (its tokenizer and chat template are copied)"
        )
    return assembled_gguf(matches[0], cache, progress=progress is not None)


def check_base(config: dict, reader: gguf.GGUFReader, *, arch: str, base: Path, hf_dir: Path) -> None:
    """Raise BaseMismatch unless the base GGUF describes the same network as config.json, field by field.

    Runs before any weights load, so a wrong --base-gguf fails in a second.
    """
    base_arch = _scalar(reader, "general.architecture")
    if base_arch != arch:
        raise BaseMismatch(
            f"base GGUF {base} is a {base_arch!r} model but {hf_dir} is {arch!r}: pass --base-gguf with the"
            " GGUF the student was fine-tuned from"
        )
    tokens = reader.get_field("tokenizer.ggml.tokens")
    rope = (config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta"))
    pairs = [  # (what, in the GGUF, in config.json)
        ("hidden size", _scalar(reader, f"{arch}.embedding_length"), config.get("hidden_size")),
        ("layers", _scalar(reader, f"{arch}.block_count"), config.get("num_hidden_layers")),
        ("attention heads", _scalar(reader, f"{arch}.attention.head_count"), config.get("num_attention_heads")),
        ("kv heads", _scalar(reader, f"{arch}.attention.head_count_kv"), config.get("num_key_value_heads")),
        ("feed-forward size", _scalar(reader, f"{arch}.feed_forward_length"), config.get("intermediate_size")),
        ("vocab size", len(tokens.data) if tokens else None, config.get("vocab_size")),
        ("rope theta", _scalar(reader, f"{arch}.rope.freq_base"), rope),
        ("rms norm eps", _scalar(reader, f"{arch}.attention.layer_norm_rms_epsilon"), config.get("rms_norm_eps")),
    ]
    wrong = [
        f"{what} {ours} in the GGUF vs {theirs} in config.json"
        for what, ours, theirs in pairs
        if ours is not None and theirs is not None and not math.isclose(float(ours), float(theirs), rel_tol=1e-4)
    ]
    if wrong:
        raise BaseMismatch(
            f"base GGUF {base} does not match {hf_dir}: {'; '.join(wrong)}. Pass --base-gguf with the GGUF"
            " the student was fine-tuned from"
        )


# ---- helpers ----


def require_llama_cpp(purpose: str):
    """The llama_cpp module, or ExportError saying what needs it and what works without it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(
            f"{purpose} needs llama-cpp-python, which is not installed (`pip install llama-cpp-python==0.3.36`,"
            " a C++ build of a few minutes); without it only --quant f16 and f32 can be exported, unverified"
        ) from exc
    return llama_cpp


def _resolve(hf_dir: Path) -> tuple[Path, Path | None]:
    from agentdistill.models.transformers_backend import resolve_model_dir

    return resolve_model_dir(Path(hf_dir).expanduser(), None)


def _config(base_dir: Path) -> dict:
    """config.json of a supported architecture, else ExportError naming it and the supported ones."""
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type", "?")
    if model_type not in _ARCHS:
        names = "/".join(config.get("architectures") or []) or "no architectures listed"
        raise ExportError(
            f"cannot export architecture {model_type!r} ({names}) of {base_dir} to GGUF: supported are {_ARCH_HELP}"
        )
    return config


def _fingerprint(config: dict) -> tuple:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    return (*(config.get(k) for k in keys), config.get("intermediate_size"), config.get("vocab_size"))


def load_student(hf_dir: Path):
    """(fp32 CPU model with any adapter merged, tokenizer), shared with the process-wide model cache."""
    base_dir, adapter = _resolve(hf_dir)
    return _load_merged(base_dir, adapter)


def _load_merged(base_dir: Path, adapter: Path | None):
    from agentdistill.models.base import ModelOptions
    from agentdistill.models.transformers_backend import load_hf_dir

    options = ModelOptions(device="cpu", dtype="float32", adapter=str(adapter) if adapter else None)
    return load_hf_dir(str(base_dir), options).unwrap()


def _scalar(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    return None if field is None else field.contents()


def gguf_chat_template(path: Path) -> str | None:
    """The Jinja chat template a GGUF file carries (tokenizer.chat_template), None without one."""
    import gguf

    value = _scalar(gguf.GGUFReader(str(path)), gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    return value if isinstance(value, str) else None


def _display_name(hf_dir: Path) -> str:
    return Path(hf_dir).expanduser().resolve().name


def _copy_metadata(
    reader: gguf.GGUFReader, writer: gguf.GGUFWriter, *, name: str, base: Path, chat_template: str | None
) -> None:
    """Every key of the base GGUF (tokenizer included, strings as raw bytes), plus where it came from."""
    from gguf import GGUFValueType, Keys

    writer.add_name(name)  # GGUFWriter wrote general.architecture already
    writer.add_quantization_version(2)  # GGML_QNT_VERSION; llama.cpp's quantizer sets the same
    for key, field in reader.fields.items():
        if (
            key in _OWN_KEYS
            or key.startswith(_DROPPED_PREFIXES)
            or (chat_template and key == Keys.Tokenizer.CHAT_TEMPLATE)
        ):
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            if len(field.types) != 2:
                raise ExportError(f"base GGUF {base} has a nested array {key!r}, which the exporter cannot copy")
            sub = field.types[1]
            if sub == GGUFValueType.STRING:
                value = [bytes(field.parts[i]) for i in field.data]
            else:
                value = field.contents()
            writer.add_key_value(key, value, kind, sub_type=sub)
        elif kind == GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[field.data[0]]), kind)
        else:
            writer.add_key_value(key, field.contents(), kind)
    if chat_template:  # the template the student was trained with wins over the base file's
        writer.add_chat_template(chat_template)
    base_name = _scalar(reader, "general.name") or base.stem
    writer.add_uint32(Keys.General.BASE_MODEL_COUNT, 1)
    writer.add_string(Keys.General.BASE_MODEL_NAME.format(id=0), base_name)
    writer.add_string(
        Keys.General.BASE_MODEL_DESCRIPTION.format(id=0),
        f"fine-tuned from {base.name}; tokenizer and hyper-parameters copied from it by agentdistill",
    )


def _gguf_tensors(model: torch.nn.Module, arch: str, *, permute: bool, f32: bool) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, array) for every weight, in llama.cpp's layout; 1-D tensors stay f32 as llama.cpp wants."""
    import gguf
    import numpy as np
    import torch

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], config.num_hidden_layers)
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"no GGUF name for tensor {hf_name!r} of {arch} model: the exporter cannot write it")
        if name == "output.weight" and tied:
            continue  # llama.cpp reuses token_embd when output is absent, as the HF model does
        data = tensor.detach().to(torch.float32)
        if permute and (".attn_q." in name or ".attn_k." in name):
            heads = config.num_attention_heads if ".attn_q." in name else config.num_key_value_heads
            data = _rope_permute(data, heads)
        array = data.numpy()
        yield name, array if f32 or array.ndim == 1 else array.astype(np.float16)


def _rope_permute(weights: torch.Tensor, heads: int) -> torch.Tensor:
    """HF's rotate-half Q/K rows -> llama.cpp's interleaved pairs; the inverse of transformers' GGUF loader."""
    half = weights.shape[0] // heads // 2
    return weights.reshape(heads, 2, half, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _check_tensor_names(written: set[str], expected: set[str], *, base: Path) -> None:
    """output.weight may differ either way: llama.cpp falls back to token_embd when it is absent."""
    missing = sorted(expected - written - {"output.weight"})
    extra = sorted(written - expected - {"output.weight"})
    if missing or extra:
        parts = [f"{what} {', '.join(names[:5])}" for what, names in (("missing", missing), ("extra", extra)) if names]
        raise BaseMismatch(f"tensors differ from base GGUF {base}: {'; '.join(parts)}. Pass the right --base-gguf")


def _quantize(src: Path, dst: Path, quant: str, *, threads: int | None) -> None:
    llama_cpp = require_llama_cpp(f"--quant {quant}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, _LLAMA_FTYPES[quant])
    params.nthread = threads or 0  # 0: every core
    llama_cpp.llama_backend_init()
    log = logging.getLogger("llama-cpp-python")  # its C log callback prints unless this logger says otherwise
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    finally:
        log.setLevel(level)
    if code != 0:
        raise ExportError(f"llama.cpp failed to quantize {src.name} to {quant} (code {code}); try --quant f16")


@contextlib.contextmanager
def _temp_path(out: Path, tag: str) -> Iterator[Path]:
    """A temp file next to `out` (same filesystem, so the final rename is atomic), removed on any exit."""
    fd, raw = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f".{tag}.tmp", dir=out.parent)
    os.close(fd)
    path = Path(raw)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _publish(tmp: Path, out: Path) -> None:
    """fsync, then rename over `out`: a crash before this leaves no `out`, never half of one."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)  # mkstemp files are private; an exported model is meant to be shared
    os.replace(tmp, out)
    fsync_dir(out.parent)
