"""Progress for long work: a tqdm bar on a terminal, timed one-line reports everywhere else.

A run under nohup, in CI or piped into a file has no terminal, so a bar would either draw nothing or litter
the log with carriage returns; there, one plain line every `every_s` seconds (and at the end) says how far it
got, how fast and when it will be done. Work done within the first `every_s` prints nothing at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

from tqdm import tqdm

Mode = Literal["bar", "lines", "off"]


def progress_mode(enabled: bool | None, stream: TextIO) -> Mode:
    """True: a bar; False: nothing; None: a bar on a terminal, timed lines elsewhere."""
    if enabled is None:
        return "bar" if stream.isatty() else "lines"
    return "bar" if enabled else "off"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Counts `total` units of work; `update`, `set_postfix` and `close` as on a tqdm bar."""

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        enabled: bool | None = None,
        every_s: float = 30.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.mode = progress_mode(enabled, self.stream)
        self.total, self.desc, self.unit, self.initial, self.done = total, desc, unit, initial, initial
        self.every_s, self.clock = every_s, clock
        self.started = self.clock()
        self.last_line = self.started
        self.lines = 0
        self.printed_at = initial  # the count the last line showed
        self.postfix: dict[str, Any] = {}
        self.closed = False
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)
            if self.mode == "bar"
            else None
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the count (accuracy so far, tokens/s); shown at the next update."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines":
            now = self.clock()
            if now - self.last_line >= self.every_s:
                self._line(now)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and self.lines and self.done != self.printed_at:  # the end, unless just shown
            self._line(self.clock())

    def line(self) -> str:
        """The report as one line: count, percentage, figures, elapsed time and the estimate to the end."""
        elapsed = self.clock() - self.started
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        parts.append(f"elapsed {_duration(elapsed)}")
        made = self.done - self.initial
        if made > 0 and self.done < self.total:
            parts.append(f"eta {_duration(elapsed / made * (self.total - self.done))}")
        return " ".join(parts)

    def _line(self, now: float) -> None:
        self.last_line, self.lines, self.printed_at = now, self.lines + 1, self.done
        print(self.line(), file=self.stream, flush=True)
