"""Errors a user can fix. Each message says what is wrong and how to fix it; constructors have no side effects."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path


class AgentDistillError(Exception):
    """A problem the user can fix. The CLI prints it on one line and exits 2; --debug shows the traceback."""


class ConfigError(AgentDistillError):
    """A configuration field has a bad value, or a config file has an unknown key."""

    def __init__(self, field: str, value: object, expected: str, *, source: str | None = None) -> None:
        where = f" in {source}" if source else ""
        super().__init__(f"config field {field!r}{where} is {value!r}: expected {expected}.")
        self.field, self.value, self.expected, self.source = field, value, expected, source


class UnknownConfigKey(ConfigError):
    def __init__(self, key: str, known: Sequence[str], *, source: str) -> None:
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys: {', '.join(sorted(known))}"
        AgentDistillError.__init__(self, f"unknown config key {key!r} in {source}: {hint}")
        self.field, self.value, self.expected, self.source = key, None, hint, source


class UnknownModelSpec(AgentDistillError):
    def __init__(self, spec: str, known: Sequence[str]) -> None:
        guess = difflib.get_close_matches(spec.partition(":")[0], known, n=1)
        hint = f" Did you mean '{guess[0]}:'?" if guess else ""
        super().__init__(
            f"unknown model spec {spec!r}: the prefix must be one of {', '.join(known)}.{hint}"
            " See `agentdistill models list`."
        )
        self.spec = spec


class ModelNotFound(AgentDistillError):
    """A model name or directory does not exist."""


class ModelUnavailable(AgentDistillError):
    """A model backend cannot run here (missing package, unreachable endpoint, bad credentials)."""


class ModelCallError(AgentDistillError):
    """A model call failed after its retries; the run that made it is recorded as an error."""

    def __init__(self, message: str, *, kind: str = "model_error") -> None:
        super().__init__(message)
        self.kind = kind


class StoreError(AgentDistillError):
    """A store file is missing, corrupt or from an incompatible version."""


class InputDataError(AgentDistillError):
    """A line of an input file is malformed; the message names file:line and the field."""

    def __init__(self, path: str | Path, line: int, problem: str, *, field: str | None = None) -> None:
        where = f"{path}:{line}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field = str(path), line, field
