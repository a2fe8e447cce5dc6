"""The /bench and /distill pages over small real run directories made with the project's own classes."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentdistill.benchmarks.report import compare_runs, write_report
from agentdistill.benchmarks.results import LOCK_FILE, ItemResult, RunDir, RunSpec
from agentdistill.config import Settings
from agentdistill.web.app import create_app
from agentdistill.web.home_paths import OutsideHome, inside_home
from agentdistill.web.loss_svg import HEIGHT, WIDTH, loss_curve
from agentdistill.web.security import UIConfig

XSS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


def make_run(path: Path, label: str, outcomes: list[bool], *, planned: int | None = None, suite: str = "gsm8k",
             answer: str = "42") -> Path:  # fmt: skip
    """A bench run of `planned` items (default: as many as outcomes) with the first ones finished."""
    ids = tuple(f"q{i}" for i in range(planned or len(outcomes)))
    run = RunDir.create(path, RunSpec(suite=suite, agent="react", model="scripted:x", item_ids=ids, label=label))
    for item_id, ok in zip(ids, outcomes, strict=False):
        run.append(ItemResult(item_id=item_id, status="ok", correct=ok, metrics={"em": float(ok), "f1": float(ok)},
                              answer=answer if ok else f"not {answer}", gold=(answer,), run_id=f"traj-{item_id}",
                              prompt_tokens=50, completion_tokens=10, latency_s=1.5))  # fmt: skip
    return path


def make_distill(out: Path, *, finished: bool) -> Path:
    """A distill run dir as pipeline.py leaves it: mid-training, or finished with its report."""
    out.mkdir(parents=True)
    plan = {"agent": "lag", "suite": "sample", "teacher": "local:t", "student": "local:s", "method": "sft",
            "train_limit": 4, "eval_limit": 3, "train": {"max_steps": 10}}  # fmt: skip
    (out / "plan.json").write_text(json.dumps(plan))
    make_run(out / "collect", "collect", [True, True, False, True])
    (out / "data").mkdir()
    info = {"considered": 4, "runs": 3, "examples": 14, "train": 12, "val": 2, "dropped": {"wrong": 1}}
    (out / "data" / "info.json").write_text(json.dumps(info))
    (out / "train").mkdir()
    steps = 10 if finished else 6
    rows = [{"step": s, "loss": 2.0 / s, **({"val_loss": 1.0 / s} if s % 5 == 0 else {})} for s in range(1, steps + 1)]
    (out / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 7, "lo')
    if finished:
        (out / "train" / "result.json").write_text(json.dumps({"steps": 10, "train_loss": 0.2, "val_loss": 0.1}))
        (out / "student" / "merged").mkdir(parents=True)
        dirs = [make_run(out / "eval" / name, f"{name} (spec)", outcomes) for name, outcomes in
                (("teacher", [True, True, False]), ("base-student", [False, False, False]),
                 ("student", [True, False, False]))]  # fmt: skip
        compare_runs(dirs, out / "report")
    return out


@pytest.fixture
def client(home: Path) -> TestClient:
    with TestClient(create_app(Settings(home=home), UIConfig())) as client:
        yield client


def rows_of(page_html: str, row_class: str) -> list[str]:
    return re.findall(rf'<tr class="{row_class}" data-dir="([^"]+)"', page_html)


# -- bench ------------------------------------------------------------------------------------------------------
def test_bench_lists_runs_with_progress_accuracy_and_state(home: Path, client: TestClient) -> None:
    make_run(home / "bench" / "gsm8k-react-1", "teacher", [True, True, False, True])
    make_run(home / "bench" / "gsm8k-react-2", "student", [True, False], planned=4)
    live = make_run(home / "bench" / "nested" / "gsm8k-react-3", "live one", [], planned=2)
    (live / LOCK_FILE).write_text(f"pid {os.getpid()}")  # what the runner writes while it holds the lock

    data = client.get("/api/bench").json()
    by_dir = {r["dir"]: r for r in data["runs"]}
    assert [r["dir"] for r in data["runs"]] == ["bench/nested/gsm8k-react-3", "bench/gsm8k-react-2",
                                                "bench/gsm8k-react-1"]  # newest first  # fmt: skip
    one, two = by_dir["bench/gsm8k-react-1"], by_dir["bench/gsm8k-react-2"]
    assert (one["done"], one["total"], one["accuracy"], one["state"]) == (4, 4, 0.75, "done")
    assert (two["done"], two["total"], two["accuracy"], two["state"]) == (2, 4, 0.5, "stopped")
    assert by_dir["bench/nested/gsm8k-react-3"]["state"] == "running"
    assert (one["suite"], one["agent"], one["model"]) == ("gsm8k", "react", "scripted:x")

    page = client.get("/bench").text
    assert rows_of(page, "bench-run") == [r["dir"] for r in data["runs"]] and 'id="bench-runs"' in page
    assert "4/4" in page and "75.0%" in page and "2/4" in page and "50.0%" in page


def test_bench_run_page_shows_the_report_items_and_plots(home: Path, client: TestClient) -> None:
    run = make_run(home / "bench" / "r1", "teacher", [True, False, True])
    write_report(run)  # report/*.png, as `bench report` leaves them

    page = client.get("/bench/run", params={"dir": "bench/r1"}).text
    assert 'id="report-table"' in page and "66.7% [" in page and "1.50 s" in page
    assert page.count('<tr class="item">') == 3 and 'href="/trajectories/traj-q0"' in page
    plots = [html.unescape(p) for p in re.findall(r'<img src="(/files/png\?path=[^"]+)"', page)]
    assert len(plots) == 3
    for url in plots:
        png = client.get(url)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"

    data = client.get("/api/bench/run", params={"dir": str(run)}).json()  # an absolute dir inside the home works too
    assert data["summary"][1] == ["accuracy", "66.7% [20.8%, 93.9%]"] and data["done"] == 3


def test_bench_compare_renders_the_compare_table(home: Path, client: TestClient) -> None:
    make_run(home / "bench" / "a", "teacher", [True, True, False, True])
    make_run(home / "bench" / "b", "student", [True, False, False, False])

    page = client.get("/bench/compare", params=[("dir", "bench/a"), ("dir", "bench/b")]).text
    head = re.search(r'<table id="compare-table".*?<thead><tr><th></th>(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["teacher", "student"]
    assert re.search(r"<tr><th>accuracy</th><td>75\.0% \[.*?\]</td><td>25\.0% \[.*?\]</td></tr>", page)
    assert 'id="paired"' in page and "data:image/png;base64," in page
    assert not (home / "bench" / "a" / "compare.md").exists()  # a page never writes next to the runs
    data = client.get("/api/bench/compare?dir=bench/a&dir=bench/b").json()
    assert data["paired"]["only_a"] == 2 and data["names"] == ["teacher", "student"]
    one = client.get("/bench/compare?dir=bench/a")
    assert one.status_code == 400 and "at least two runs" in one.text


# -- paths ------------------------------------------------------------------------------------------------------
def test_paths_outside_the_home_are_refused(home: Path, client: TestClient, tmp_path: Path) -> None:
    outside = make_run(tmp_path / "elsewhere", "outsider", [True])
    (outside / "secret.png").write_bytes(b"\x89PNG secret")
    (home / "bench").mkdir()
    (home / "bench" / "link").symlink_to(outside)  # inside the home by name, outside once resolved

    for raw in (str(outside), "../elsewhere", "bench/../../elsewhere", "bench/link"):
        for url in ("/bench/run", "/bench", "/distill/run", "/api/bench/run"):
            response = client.get(url, params={"dir": raw})
            assert response.status_code == 400, (url, raw)
            assert "outside the home" in response.text and "outsider" not in response.text
    for raw in (str(outside / "secret.png"), "bench/link/secret.png", "../elsewhere/secret.png"):
        response = client.get("/files/png", params={"path": raw})
        assert response.status_code == 400 and b"\x89PNG" not in response.content
    assert client.get("/api/bench").json()["runs"] == []  # the link is not followed when listing either
    assert client.get("/bench/run", params={"dir": "bench/none"}).status_code == 404
    (home / "notes.txt").write_text("not a plot")
    assert client.get("/files/png", params={"path": "notes.txt"}).status_code == 404


def test_inside_home_resolves_before_it_checks(home: Path) -> None:
    assert inside_home(home, "bench/x/../y") == (home / "bench" / "y").resolve()
    assert inside_home(home, ".") == home.resolve()
    for raw in ("..", "/", "bench/../..", "", "a\x00b"):
        with pytest.raises(OutsideHome):
            inside_home(home, raw)


# -- distill ----------------------------------------------------------------------------------------------------
def test_distill_run_in_progress_shows_stages_loss_curve_and_polls(home: Path, client: TestClient) -> None:
    make_distill(home / "distill" / "lag-sample", finished=False)

    listing = client.get("/distill").text
    assert rows_of(listing, "distill-run") == ["distill/lag-sample"] and 'id="distill-runs"' in listing
    assert "train (running)" in listing

    data = client.get("/api/distill/run", params={"dir": "distill/lag-sample"}).json()
    stages = {s["name"]: (s["state"], s["detail"]) for s in data["stages"]}
    assert stages["collect"] == ("done", "4/4 items, 3 correct")
    assert stages["dataset"] == ("done", "12 train / 2 val examples from 3 runs")
    assert stages["train"] == ("running", "step 6/10, loss 0.3333, val loss 0.2000")  # the torn last line skipped
    assert stages["student"][0] == "pending" and stages["eval"][0] == "pending"
    assert data["active"] and data["current"] == "train" and data["eval_table"] is None

    page = client.get("/distill/run", params={"dir": "distill/lag-sample"}).text
    assert 'data-active="true"' in page and '<script src="/static/runs.js"' in page
    points = re.search(r'<polyline class="train" points="([^"]+)"', page).group(1).split()
    assert len(points) == 6
    xs = [float(p.split(",")[0]) for p in points]
    ys = [float(p.split(",")[1]) for p in points]
    assert xs == sorted(xs) and ys == sorted(ys)  # steps go right, the falling loss goes down the page (y grows)
    assert 'id="loss-curve"' in page and '"train_limit": 4' in html.unescape(page)


def test_finished_distill_run_shows_the_report_table_and_stops_polling(home: Path, client: TestClient) -> None:
    make_distill(home / "distill" / "lag-sample", finished=True)

    data = client.get("/api/distill/run?dir=distill/lag-sample").json()
    assert not data["active"] and data["current"] == "finished"
    assert [s["name"] for s in data["stages"]][-4:] == ["eval teacher", "eval base-student", "eval student", "report"]
    table = data["eval_table"]
    assert table["source"] == "report" and table["names"] == ["teacher (spec)", "base-student (spec)", "student (spec)"]
    assert table["rows"][1][0] == "accuracy" and table["rows"][1][1].startswith("66.7%")

    page = client.get("/distill/run?dir=distill/lag-sample").text
    assert 'data-active="false"' in page and 'id="eval-table"' in page and "33.3% [" in page
    assert client.get("/distill/run?dir=distill").status_code == 404  # a folder, not a run


def test_loss_curve_fits_the_box_and_skips_what_is_not_a_number() -> None:
    rows = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.0, "val_loss": 2.0}]
    curve = loss_curve(rows)
    assert curve is not None and len(curve.train.split()) == 2 and len(curve.val.split()) == 1
    for point in (curve.train + " " + curve.val).split():
        x, y = map(float, point.split(","))
        assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT
    assert curve.last_step == 3 and curve.last_loss == 1.0
    assert loss_curve([{"step": 1}]) is None


# -- escaping ---------------------------------------------------------------------------------------------------
def test_run_text_is_escaped_on_bench_and_distill_pages(home: Path, client: TestClient) -> None:
    for n, payload in enumerate(XSS):
        make_run(home / "bench" / f"x{n}", payload, [True, False], answer=payload)
    out = home / "distill" / "xss"
    out.mkdir(parents=True)
    (out / "plan.json").write_text(json.dumps({"agent": XSS[0], "teacher": XSS[1]}))

    pages = [client.get("/bench").text, client.get("/bench/run?dir=bench/x0").text,
             client.get("/bench/run?dir=bench/x1").text, client.get("/bench/compare?dir=bench/x0&dir=bench/x1").text,
             client.get("/distill").text, client.get("/distill/run?dir=distill/xss").text]  # fmt: skip
    for text in pages:
        for payload in XSS:
            assert payload not in text
    assert html.escape(XSS[0], quote=False) in pages[1] and html.escape(XSS[1], quote=False) in pages[2]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[4]


def test_a_running_distill_page_follows_the_training_in_a_browser(home: Path, live_ui: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = make_distill(home / "distill" / "lag-sample", finished=False)
    browser.get(f"{live_ui.url}/distill/run?dir=distill/lag-sample")
    detail = browser.find_element(By.CSS_SELECTOR, '#stages tr[data-stage="train"] .stage-detail')
    assert detail.text.startswith("step 6/10")
    before = browser.find_element(By.CSS_SELECTOR, "#loss-curve polyline.train").get_attribute("points")
    rows = [{"step": s, "loss": 2.0 / s} for s in range(1, 9)]
    (out / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def updated(b: Any) -> bool:
        cell = b.find_element(By.CSS_SELECTOR, '#stages tr[data-stage="train"] .stage-detail')
        return cell.text.startswith("step 8/10")

    from selenium.common.exceptions import StaleElementReferenceException

    # polled, not reloaded: the same curve element, new points (a cell may be replaced while it is read)
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(updated)
    after = browser.find_element(By.CSS_SELECTOR, "#loss-curve polyline.train").get_attribute("points")
    assert len(after.split()) == 8 and after != before
    assert "updated" in browser.find_element(By.ID, "poll-status").text
