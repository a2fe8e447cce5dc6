"""Configuration: frozen dataclasses loaded once at the CLI edge from TOML file + env + flags (flags win).

This is the only module that reads os.environ; everything else receives values as parameters.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agentdistill.errors import ConfigError, UnknownConfigKey
from agentdistill.models.base import ModelOptions
from agentdistill.paths import home_dir

T = TypeVar("T")
ENV_PREFIX = "AGENTDISTILL_"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
# TOML tables kept whole instead of flattened into `<table>_<key>` fields (their keys are model specs).
_TABLE_FIELDS = {"prices"}
# Well-known variables that users already have set for other OpenAI clients.
_ENV_ALIASES = {"OPENAI_API_KEY": "openai_api_key", "OPENAI_BASE_URL": "openai_base_url"}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the CLI needs; `<home>/config.toml` may set any field (flat, or `[openai] api_key = ...`)."""

    home: Path = field(default_factory=lambda: home_dir({}))  # where stores, threads and KBs live
    model: str = "local:qwen2.5-coder-0.5b"  # default teacher / chat model spec
    student: str = "local:smollm2-135m"  # default student base spec
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    threads: int | None = None  # CPU threads for local models (llama.cpp and torch); None = the backend's default
    openai_base_url: str | None = None  # e.g. http://localhost:8000/v1 for vLLM / llama.cpp / `agentdistill serve`
    openai_api_key: str | None = field(default=None, repr=False)  # never printed
    openai_timeout_s: float = 120.0  # per request; a hung server fails the call after this
    openai_max_retries: int = 4  # on 429 / 5xx / timeouts, with exponential backoff and jitter
    data_dir: Path | None = None  # benchmark data in the layout of shared/data (hotpotqa/, math/, ...); suites read it
    # USD per 1M tokens as [input, output], keyed by model spec or a glob ("openai:gpt-4o*"); `[prices]` in TOML.
    prices: Mapping[str, Sequence[float]] = field(default_factory=dict)

    @property
    def torch_device(self) -> str | None:
        """The device for torch-based parts (embedders, transformers), None when auto lets each one choose."""
        return None if self.device == "auto" else self.device

    def __post_init__(self) -> None:
        if self.device != "auto" and self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError("device", self.device, "auto, cpu, cuda or cuda:N")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError("dtype", self.dtype, "auto, float32, bfloat16 or float16")
        if self.openai_timeout_s <= 0:
            raise ConfigError("openai_timeout_s", self.openai_timeout_s, "a positive number of seconds")
        if self.openai_max_retries < 0:
            raise ConfigError("openai_max_retries", self.openai_max_retries, "0 or more")
        for spec, price in self.prices.items():
            if not (isinstance(price, Sequence) and len(price) == 2 and all(isinstance(v, int | float) for v in price)):
                raise ConfigError(f"prices.{spec}", price, "[input, output] USD per 1M tokens, e.g. [0.15, 0.6]")

    @property
    def trajectories_path(self) -> Path:
        return self.home / "trajectories.db"

    @property
    def threads_path(self) -> Path:
        return self.home / "threads.db"

    @property
    def kb_root(self) -> Path:
        return self.home / "kb"

    @property
    def bench_root(self) -> Path:
        """Where `bench run` puts run directories unless --run-dir says otherwise."""
        return self.home / "bench"

    def model_options(self) -> ModelOptions:
        return ModelOptions(
            base_url=self.openai_base_url,
            api_key=self.openai_api_key,
            timeout_s=self.openai_timeout_s,
            max_retries=self.openai_max_retries,
            device=self.device,
            dtype=self.dtype,
            threads=self.threads,
        )


def load_config(
    cls: type[T],
    *,
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> T:
    """Build `cls` from a TOML file, then `AGENTDISTILL_<FIELD>` env vars, then flags (None flags are ignored).

    An unknown key in the user's file is an error naming the file, the key and the closest field.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    if file is not None and Path(file).exists():
        source = str(file)
        try:
            raw = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("(file)", str(file), f"valid TOML ({exc})", source=source) from exc
        except UnicodeDecodeError as exc:
            data = Path(file).read_bytes()
            line = data.count(b"\n", 0, exc.start) + 1
            raise ConfigError("(file)", str(file), f"UTF-8 text (byte 0x{data[exc.start]:02x} on line {line} is not)",
                              source=source) from None  # fmt: skip
        for key, value in _flatten(raw).items():
            if key not in fields:
                raise UnknownConfigKey(key, list(fields), source=source)
            values[key] = _coerce(key, value, hints[key], source)
    for name, value in (env or {}).items():
        key = _ENV_ALIASES.get(name) or (name[len(ENV_PREFIX) :].lower() if name.startswith(ENV_PREFIX) else None)
        if key in fields:
            values[key] = _coerce(key, value, hints[key], f"environment variable {name}")
    for key, value in (flags or {}).items():
        if value is not None and key in fields:
            values[key] = _coerce(key, value, hints[key], f"flag --{key.replace('_', '-')}")
    try:
        return cls(**values)
    except ConfigError as exc:
        if exc.source is None and exc.field in values:
            raise ConfigError(exc.field, exc.value, exc.expected, source="config") from None
        raise


def load_settings(
    *,
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for this process: `--config` file or `<home>/config.toml`, env, then flags."""
    env = os.environ if env is None else env
    home = Path(flags["home"]) if flags and flags.get("home") else home_dir(env)
    file = Path(config_file) if config_file else home / "config.toml"
    if config_file and not file.exists():
        raise ConfigError("--config", str(file), "an existing TOML file")
    return load_config(Settings, file=file, env=env, flags={**(flags or {}), "home": home})


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in _TABLE_FIELDS:
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Turn a TOML/env/flag value into the field's type, or raise ConfigError naming where it came from."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    target = next((t for t in options if t is not type(None)), str)
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        if target in (int, float):
            if isinstance(value, bool):
                raise ValueError
            return target(value)
        if target is Path:
            return Path(str(value)).expanduser()
        if target is str:
            return str(value)
        return value
    except (TypeError, ValueError):
        raise ConfigError(key, value, f"a {getattr(target, '__name__', target)}", source=source) from None
