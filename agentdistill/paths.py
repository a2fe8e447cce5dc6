"""Where agentdistill keeps its files, and the one helper every file write goes through."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$AGENTDISTILL_HOME`, else `~/.agentdistill`. Tests set the variable so no test touches the real home."""
    env = os.environ if env is None else env
    raw = env.get("AGENTDISTILL_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".agentdistill"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Assembled model files and converted HF dirs: `$AGENTDISTILL_CACHE`, else `<home>/cache`.

    Large and safe to delete; kept apart from the home so tests with a temporary home can share it.
    """
    env = os.environ if env is None else env
    raw = env.get("AGENTDISTILL_CACHE")
    return Path(raw).expanduser() if raw else home_dir(env) / "cache"


def _read_umask() -> int:
    current = os.umask(0o022)  # the only portable way to read the umask is to set it and put it back
    os.umask(current)
    return current


# Read once at import, while the process is still single-threaded: setting the umask to read it is racy later.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write `path` all-or-nothing: temp file in the same directory, flush, fsync, then rename over.

    A process killed mid-write leaves the old file (or none) in place, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus the umask).
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
