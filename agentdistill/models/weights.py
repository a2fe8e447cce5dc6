"""Which local weights a model spec means, for code that needs files rather than a ChatModel (training, KD).

`make_chat_model` turns a spec into a model that answers; training, logit KD and `distill compress` need the
HF dir behind it instead. This is the one place that decides, by the same rules for every command:
- `local:NAME`, `transformers:NAME`, `gguf:NAME` (a packaged model): its HF dir, converted once into the cache;
- `hf:DIR`, `student:DIR` or a bare DIR: that dir, or for an adapter-only dir its base and the adapter;
- anything else (an API model) has no weights to train: NotTrainable names the specs that do.
"""

from __future__ import annotations

from pathlib import Path

from agentdistill.errors import AgentDistillError

PACKAGED_BACKENDS = ("local", "transformers", "gguf")
DIR_BACKENDS = ("hf", "student")


class NotTrainable(AgentDistillError):
    """The spec names a model that has no local weights to fine-tune or to read logits from."""


def local_weights(spec: str, cache: Path) -> tuple[Path, Path | None]:
    """(base HF dir, adapter dir or None) that `spec` runs on; packaged models are converted into `cache`."""
    from agentdistill.models.packaged import ensure_hf_dir, find_packaged
    from agentdistill.models.transformers_backend import resolve_model_dir

    backend, sep, rest = spec.partition(":")
    if sep and backend in PACKAGED_BACKENDS and rest:
        return ensure_hf_dir(find_packaged(rest), cache), None
    if sep and backend in DIR_BACKENDS and rest:
        return resolve_model_dir(Path(rest).expanduser(), None)
    if Path(spec).expanduser().is_dir():
        return resolve_model_dir(Path(spec).expanduser(), None)
    raise NotTrainable(
        f"cannot train {spec!r}: give a local model dir, hf:DIR, student:DIR or local:NAME"
        " (API models have no weights to fine-tune). See `agentdistill models list`."
    )


def base_weights(spec: str, cache: Path) -> Path:
    """The HF dir a student is trained from (or a KD teacher read from): `local_weights` without an adapter."""
    base, adapter = local_weights(spec, cache)
    if adapter is not None:
        raise NotTrainable(
            f"{spec!r} is a LoRA adapter over {base}: point at a merged dir (a `distill run` writes"
            f" OUT/student/merged), or start from its base with hf:{base}."
        )
    return base
