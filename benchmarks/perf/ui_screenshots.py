"""Screenshots of every page of the web UI (the README's pictures), taken in headless Chromium over a home.

    python benchmarks/perf/ui_screenshots.py --home HOME --out docs/ui [--compare RUN_A RUN_B]

HOME is a home with runs in it (a copy: a scripted chat turn is added to its threads and trajectories). The
pages: chat (after that turn, its tool step open), the trajectories table, a run page, a side-by-side of two runs
(--compare, default: the two newest runs of one question), the bench list and a bench run, the distill list and a
distill run (the first of each found under HOME/bench and HOME/distill).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from ui_browser import app_for, chromium

from agentdistill.testing.live_server import live_server

TURN = [
    'Thought: I compute it.\nAction: evaluate\nAction Input: {"expression": "159.69 * 2"}',
    "Thought: I now know the answer\nFinal Answer: 319.38 g/mol",
]


def shoot(driver: Any, url: str, out: Path, name: str, *, ready: str = "main", height: int = 1000) -> Path:
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
    time.sleep(0.3)  # fonts and the first poll
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(full, 600), height))
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def chat_shot(driver: Any, url: str, home: Path, out: Path) -> Path:
    """The chat page after a scripted react turn, its tool step open (the script sits in the home: the UI reads
    model files only there)."""
    script = home / "ui-screenshot-turn.json"
    script.write_text(json.dumps(TURN), encoding="utf-8")
    driver.get(f"{url}/chat")
    question = "What is the molar mass of two Fe2O3 units (159.69 g/mol each)?"
    for field, value in (("model", f"scripted:{script}"), ("kb", "none"), ("question", question)):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "agent").send_keys("react")
    driver.find_element(By.ID, "send").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messages .meta a.run"))
    driver.find_element(By.CSS_SELECTOR, "#messages details.step summary").click()
    path = out / "chat.png"
    driver.save_screenshot(str(path))
    return path


def same_item_runs(home: Path) -> tuple[str, str]:
    """Ids of the two newest runs that answered the same question with different models."""
    db = sqlite3.connect(home / "trajectories.db")
    rows = db.execute("SELECT id, question, models FROM runs ORDER BY created_at DESC").fetchall()
    db.close()
    seen: dict[str, tuple[str, str]] = {}
    for run_id, question, models in rows:
        if question in seen and seen[question][1] != models:
            return run_id, seen[question][0]
        seen.setdefault(question, (run_id, models))
    raise SystemExit("no two runs of one question with different models in HOME: pass --compare A B")


def take_all(
    driver: Any, url: str, args: Any, pair: tuple[str, str], bench: list[Path], distill: list[Path]
) -> list[Path]:
    a, b = pair
    shots = [chat_shot(driver, url, args.home, args.out)]
    shots.append(shoot(driver, f"{url}/trajectories", args.out, "trajectories", ready="#runs"))
    shots.append(shoot(driver, f"{url}/trajectories/{a}", args.out, "run", ready="#steps", height=1400))
    shots.append(shoot(driver, f"{url}/trajectories/compare?a={a}&b={b}", args.out, "compare", ready="#compare",
                       height=1400))  # fmt: skip
    shots.append(shoot(driver, f"{url}/bench", args.out, "bench", ready="main"))
    if bench:
        where = quote(str(bench[0].relative_to(args.home)))
        shots.append(shoot(driver, f"{url}/bench/run?dir={where}", args.out, "bench-run", height=1400))
    if distill:
        where = quote(str(distill[0].relative_to(args.home)))
        shots.append(shoot(driver, f"{url}/distill/run?dir={where}", args.out, "distill-run", ready="#stages",
                           height=1400))  # fmt: skip
    return shots


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home (a copy: a chat turn is added)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="two run ids to show side by side")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    a, b = args.compare or same_item_runs(args.home)
    bench = sorted(p.parent for p in (args.home / "bench").glob("*/run.json"))
    distill = sorted(p.parent for p in (args.home / "distill").glob("*/plan.json"))
    driver = chromium()
    try:
        with live_server(app_for(args.home)) as url:
            shots = take_all(driver, url, args, (a, b), bench, distill)
    finally:
        driver.quit()
    for path in shots:
        print(f"{path}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
