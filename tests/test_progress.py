"""Progress on a terminal and off it: timed plain lines when nobody watches a bar (nohup, CI, pipes)."""

from __future__ import annotations

import io

from agentdistill.progress import Progress, progress_mode


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_it_reports_a_line_every_interval_with_figures_and_an_eta() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = Progress(100, desc="items", unit="item", stream=stream, clock=clock, every_s=30)
    for _ in range(10):  # 10 items in 20 s: under the interval, nothing yet
        clock.now += 2
        bar.update()
    assert stream.getvalue() == ""
    bar.set_postfix(acc="0.400")
    clock.now += 10
    bar.update()
    assert stream.getvalue() == "items: 11/100 item (11%) acc=0.400 elapsed 0m30s eta 4m03s\n"
    for _ in range(89):
        clock.now += 1
        bar.update()
    bar.close()
    bar.close()  # closing twice prints the end once
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1] == "items: 100/100 item (100%) acc=0.400 elapsed 1m59s"


def test_quick_work_prints_nothing_and_a_resumed_count_starts_where_it_left_off() -> None:
    stream, clock = io.StringIO(), Clock()
    with Progress(10, desc="steps", initial=4, stream=stream, clock=clock) as bar:
        bar.update(6)
    assert stream.getvalue() == ""
    bar = Progress(10, desc="steps", unit="step", initial=4, stream=stream, clock=clock, every_s=5)
    clock.now = 10
    bar.update()  # 1 step of 6 left took 10 s: 50 s to go
    assert stream.getvalue().startswith("steps: 5/10 step (50%) elapsed 0m10s eta 0m50s")


def test_a_last_line_already_at_the_end_is_not_repeated_on_close() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = Progress(2, desc="training", unit="step", stream=stream, clock=clock, every_s=5)
    for _ in range(2):
        clock.now += 10
        bar.update()
    bar.close()
    shown = [line.split(" (")[0] for line in stream.getvalue().splitlines()]
    assert shown == ["training: 1/2 step", "training: 2/2 step"]


def test_modes_follow_the_flag_and_the_terminal() -> None:
    assert progress_mode(None, Tty()) == "bar" and progress_mode(None, io.StringIO()) == "lines"
    assert progress_mode(True, io.StringIO()) == "bar" and progress_mode(False, Tty()) == "off"
    quiet = io.StringIO()
    bar = Progress(3, desc="x", enabled=False, stream=quiet, every_s=0)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""
