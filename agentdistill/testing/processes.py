"""Waiting on host processes, for tests of code that starts and kills them (the sandbox)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether `predicate` holds within `timeout` seconds, polled every 50 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def processes_with(marker: str) -> int:
    """Host processes whose command line holds `marker`."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += marker in Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
    return count
