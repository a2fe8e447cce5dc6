"""The web UI measured in real headless Chromium: time to first paint of the trajectories page on big stores, and
token-to-browser latency while a chat turn streams.

    python benchmarks/perf/ui_browser.py [--runs 10000 100000] [--dir DIR] [--tokens 200] [--interval-ms 10]
                                         [--repeats 5] [--json]

First paint: a store of N runs (agentdistill.testing.trajectory_fill; kept in --dir and reused), the app on a real
uvicorn server, Chromium loading /trajectories afresh --repeats times; reported from the browser's own Performance
API: time to first byte, first contentful paint (FCP) and DOMContentLoaded, median over the loads.

Token-to-browser: the chat answers with a paced model (benchmarks/perf/ui_stream_latency.py's PacedModel) that
notes each token's emit time on the wall clock; a script in the /chat page starts the turn and reads its event
stream with an EventSource, as the page does, noting each token's arrival as performance.timeOrigin +
performance.now() (the same wall clock: one machine). The first turn warms up and is not counted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import machine_summary
from ui_stream_latency import PacedModel, percentile

from agentdistill.config import Settings
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.testing.live_server import live_server
from agentdistill.testing.trajectory_fill import fill_store
from agentdistill.web.app import create_app
from agentdistill.web.chat_turns import ChatService
from agentdistill.web.security import UIConfig

PAINT_JS = """
const done = arguments[arguments.length - 1];
const nav = performance.getEntriesByType('navigation')[0];
const report = fcp => done({ttfb: nav.responseStart, fcp, dcl: nav.domContentLoadedEventEnd,
                            rows: document.querySelectorAll('#runs tr.run').length});
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) if (entry.name === 'first-contentful-paint') report(entry.startTime);
}).observe({type: 'paint', buffered: true});
setTimeout(() => report(null), 5000);
"""
STREAM_JS = """
const done = arguments[arguments.length - 1];
const body = {question: 'stream please', agent: 'react', model: 'paced:bench', kb: 'none', thread: arguments[0]};
adFetch('/api/chat/turns', {method: 'POST', body}).then(r => r.json()).then(turn => {
  const arrivals = [];
  const source = new EventSource('/api/chat/turns/' + turn.turn_id + '/events');
  source.addEventListener('token', () => arrivals.push(performance.timeOrigin + performance.now()));
  for (const kind of ['answer', 'error']) {
    source.addEventListener(kind, e => {
      source.close();
      done({arrivals, thread: turn.thread, end: JSON.parse(e.data)});
    });
  }
});
"""


class WallClockModel(PacedModel):
    """PacedModel noting emit times on the wall clock (time.time), which the browser's clock can be compared to."""

    def generate(self, messages: Any, **kw: Any) -> Any:
        on_token = kw.pop("on_token", None)
        self.wall: list[float] = []

        def note(text: str) -> None:
            self.wall.append(time.time())
            if on_token is not None:
                on_token(text)

        return super().generate(messages, on_token=note, **kw)


def app_for(home: Path, model: PacedModel | None = None) -> Any:
    """The UI app over `home`; its chat answers with `model` when given."""
    app = create_app(Settings(home=home), UIConfig())
    if model is not None:
        app.state.chat = ChatService(app.state.web.settings, make_model=lambda spec: model)
    return app


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise SystemExit("needs Debian's chromium and chromium-driver on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def first_paint(driver: Any, n: int, folder: Path, repeats: int) -> dict[str, Any]:
    home = folder / f"home-{n}"
    path = Settings(home=home).trajectories_path
    with TrajectoryStore.open(path) as store:
        kept = store.count()
    if kept < n:
        fill_store(path, n)
    loads = []
    with live_server(app_for(home)) as url:
        for rep in range(repeats + 1):  # the first load warms the server (indexes, templates) and is not counted
            driver.get("about:blank")
            driver.get(f"{url}/trajectories")
            if rep:
                loads.append(driver.execute_async_script(PAINT_JS))
    if any(load["fcp"] is None for load in loads):
        raise RuntimeError("Chromium reported no first-contentful-paint for /trajectories")
    median = {key: statistics.median(load[key] for load in loads) for key in ("ttfb", "fcp", "dcl")}
    return {"runs": n, "rows_shown": loads[-1]["rows"], **{f"{k}_ms": v for k, v in median.items()}}


def stream_latency(driver: Any, tokens: int, interval_s: float, turns: int) -> dict[str, Any]:
    model = WallClockModel(tokens, interval_s)
    with tempfile.TemporaryDirectory(prefix="ui-browser-") as tmp:
        latencies, rates = [], []
        with live_server(app_for(Path(tmp), model)) as url:
            driver.get(f"{url}/chat")
            driver.set_script_timeout(120)
            chat_thread = None
            for turn in range(turns + 1):
                got = driver.execute_async_script(STREAM_JS, chat_thread)
                if got["end"].get("status") != "ok":
                    raise RuntimeError(f"the turn did not answer: {got['end']}")
                chat_thread, arrivals = got["thread"], got["arrivals"]
                if len(arrivals) != len(model.wall):
                    raise RuntimeError(f"{len(model.wall)} tokens emitted, {len(arrivals)} reached the browser")
                if turn:
                    latencies += [a - e * 1000 for a, e in zip(arrivals, model.wall, strict=True)]
                    rates.append((len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1000))
    return {"tokens": tokens + 1, "interval_ms": interval_s * 1000, "turns": turns,
            "median_ms": statistics.median(latencies), "p95_ms": percentile(latencies, 0.95),
            "max_ms": max(latencies), "tokens_per_s": statistics.median(rates)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000], help="store sizes")
    parser.add_argument("--dir", type=Path, help="keep the filled stores here and reuse them (100k: ~600 MB)")
    parser.add_argument("--repeats", type=int, default=5, help="page loads per store, after one warm-up")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per streamed turn")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="pause between tokens")
    parser.add_argument("--turns", type=int, default=3, help="measured turns, after one warm-up")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    driver = chromium()
    try:
        with tempfile.TemporaryDirectory(prefix="ui-stores-") as tmp:
            folder = args.dir or Path(tmp)
            paints = [first_paint(driver, n, folder, args.repeats) for n in args.runs]
        stream = stream_latency(driver, args.tokens, args.interval_ms / 1000, args.turns)
        version = driver.capabilities.get("browserVersion")
    finally:
        driver.quit()
    result = {"machine": machine_summary(), "browser": f"chromium {version} headless", "first_paint": paints,
              "stream": stream}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']}\n{result['browser']}")
    print(f"{'runs':>8}{'rows':>6}{'TTFB ms':>10}{'FCP ms':>9}{'DCL ms':>9}")
    for p in paints:
        print(f"{p['runs']:>8}{p['rows_shown']:>6}{p['ttfb_ms']:>10.1f}{p['fcp_ms']:>9.1f}{p['dcl_ms']:>9.1f}")
    s = stream
    print(f"token -> browser ({s['turns']} turns x {s['tokens']} tokens, one every {s['interval_ms']:g} ms):")
    print(f"median {s['median_ms']:.2f} ms, p95 {s['p95_ms']:.2f} ms, max {s['max_ms']:.2f} ms;", end=" ")
    print(f"{s['tokens_per_s']:.1f} tokens/s")


if __name__ == "__main__":
    main()
