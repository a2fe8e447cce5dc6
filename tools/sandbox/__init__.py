"""The Python sandbox: run model-written code in a separate, limited process (the code agent's executor).

    executor   PythonSandbox (probes once, opens sessions), SandboxSession (one persistent worker), the `python`
               tool for ReAct agents; the design and the isolation boundary are described there
    config     SandboxConfig (limits), CodeResult (what one cell did), SandboxError
    isolation  probe what this machine enforces (bubblewrap, else `unshare` namespaces, the privilege drop)
    bwrap      the bubblewrap profile: a private filesystem view with only the interpreter and the work dir
    host       the host's handle on one worker: start it, speak its JSON-line protocol, enforce the deadline
    worker     the code that runs inside the sandbox process (standard library only)

Callers import the public names from here: `from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig`.
They load on first use because every worker imports this package on its way to `worker`: an eager import of
the executor would add the host's modules to each worker's start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentdistill.tools.sandbox.config import CodeResult, SandboxConfig, SandboxError
    from agentdistill.tools.sandbox.executor import (
        PythonSandbox,
        SandboxSession,
        SandboxWarning,
        format_result,
        make_python_tool,
    )
    from agentdistill.tools.sandbox.isolation import Isolation

_HOMES = {
    "CodeResult": "config",
    "SandboxConfig": "config",
    "SandboxError": "config",
    "Isolation": "isolation",
    "PythonSandbox": "executor",
    "SandboxSession": "executor",
    "SandboxWarning": "executor",
    "format_result": "executor",
    "make_python_tool": "executor",
}
__all__ = [
    "CodeResult",
    "Isolation",
    "PythonSandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxSession",
    "SandboxWarning",
    "format_result",
    "make_python_tool",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
