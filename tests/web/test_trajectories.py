"""The /trajectories pages and their JSON twins over a real store: paging, filters, a run's steps, side by side."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentdistill.config import Settings
from agentdistill.memory import trajectory_page
from agentdistill.memory.trajectories import TrajectoryStore, _filters
from agentdistill.memory.trajectory_page import BadPageQuery, PageQuery
from agentdistill.trajectory import Recorder, Run, Step, StepError
from agentdistill.web.app import create_app
from agentdistill.web.divergence import first_divergence
from agentdistill.web.security import UIConfig

T0 = 1_750_000_000.0  # 2025-06-15, a run every hour after it
DAY = 86_400
XSS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


def model_step(run_id: str, index: int, completion: str, **more: object) -> Step:
    fields: dict = {"messages_in": [{"role": "user", "content": "question?"}], "prompt_tokens": 10,
                    "completion_tokens": 5, **more}  # fmt: skip
    return Step(run_id=run_id, index=index, kind="model", node="think", completion=completion, **fields)


def tool_step(run_id: str, index: int, query: str, observation: str = "passage") -> Step:
    return Step(run_id=run_id, index=index, kind="tool", node="act", tool="search", tool_args={"query": query},
                observation=observation)  # fmt: skip


def fill(home: Path, n: int = 120) -> list[Run]:
    """`n` runs, one an hour: agents react/lag/codeact in turn, every 4th an error, scores 1/0 on hotpotqa."""
    runs = []
    for i in range(n):
        run = Run(id=f"run{i:04d}", agent=("react", "lag", "codeact")[i % 3], question=f"question {i}",
                  models={"policy": "local:teacher" if i % 2 else "local:student"},
                  status="error" if i % 4 == 0 else "ok", answer=f"answer {i}", score=float(i % 5 == 0),
                  suite="hotpotqa" if i % 2 else "gsm8k", item_id=f"item{i % 10}",
                  created_at=T0 + i * 3600)  # fmt: skip
        run.steps = [model_step(run.id, 0, "Action: search"), tool_step(run.id, 1, f"q{i}")]
        runs.append(run)
    with TrajectoryStore.open(home / "trajectories.db") as store:
        assert store.add_runs(runs) == (n, 0)
    return runs


@pytest.fixture
def client(home: Path) -> TestClient:
    with TestClient(create_app(Settings(home=home), UIConfig())) as client:
        yield client


def row_ids(page_html: str) -> list[str]:
    return re.findall(r'<tr class="run" data-run-id="([^"]+)"', page_html)


def link(page_html: str, element_id: str) -> str | None:
    found = re.search(rf'<a id="{element_id}" href="([^"]+)"', page_html)
    return html.unescape(found.group(1)) if found else None


# -- paging and filters ---------------------------------------------------------------------------------------
def test_the_table_pages_newest_first_and_back(home: Path, client: TestClient) -> None:
    fill(home)
    newest_first = [f"run{i:04d}" for i in reversed(range(120))]

    first = client.get("/trajectories")
    assert first.status_code == 200 and row_ids(first.text) == newest_first[:50]
    count = re.search(r'<p id="run-count" class="muted">(.*?)</p>', first.text, re.S).group(1)
    assert " ".join(count.split()).startswith("120 runs, newest first.")
    assert link(first.text, "prev") is None
    second = client.get(link(first.text, "next"))
    assert row_ids(second.text) == newest_first[50:100]
    third = client.get(link(second.text, "next"))
    assert row_ids(third.text) == newest_first[100:] and link(third.text, "next") is None
    back = client.get(link(third.text, "prev"))
    assert row_ids(back.text) == newest_first[50:100]
    assert row_ids(client.get(link(back.text, "prev")).text) == newest_first[:50]
    assert link(client.get(link(back.text, "prev")).text, "prev") is None  # the first page has no newer one


def test_filters_combine_and_pages_keep_them(home: Path, client: TestClient) -> None:
    runs = fill(home)
    expected = [r.id for r in reversed(runs) if r.agent == "react" and r.status == "ok" and r.suite == "hotpotqa"]
    assert len(expected) == 20

    page = client.get("/trajectories", params={"agent": "react", "status": "ok", "suite": "hotpotqa", "limit": "15"})
    assert row_ids(page.text) == expected[:15]
    nxt = link(page.text, "next")
    assert "agent=react" in nxt and "suite=hotpotqa" in nxt and "limit=15" in nxt
    assert row_ids(client.get(nxt).text) == expected[15:]
    assert 'value="react"' in page.text  # the form shows the filter again

    scored = client.get("/api/trajectories", params={"min_score": "1", "model": "local:teacher"}).json()
    assert [r["id"] for r in scored["runs"]] == [r.id for r in reversed(runs) if r.score == 1 and r.id[-1] in "13579"]
    assert scored["total"] == 12 and not scored["total_capped"]


def test_date_range_includes_the_until_day(home: Path, client: TestClient) -> None:
    import datetime as dt

    runs = fill(home)
    day = dt.date.fromtimestamp(T0 + 2 * DAY)
    start = dt.datetime.combine(day, dt.time()).timestamp()
    expected = [r.id for r in reversed(runs) if start <= r.created_at < start + DAY]

    data = client.get("/api/trajectories", params={"since": day.isoformat(), "until": day.isoformat()}).json()
    assert [r["id"] for r in data["runs"]] == expected and len(expected) == 24


def test_json_twin_carries_steps_and_tokens_and_cursors(home: Path, client: TestClient) -> None:
    fill(home)
    data = client.get("/api/trajectories", params={"agent": "lag", "limit": "5"}).json()
    assert [r["id"] for r in data["runs"]] == ["run0118", "run0115", "run0112", "run0109", "run0106"]
    assert data["runs"][0]["steps"] == 2 and data["runs"][0]["tokens"] == 15
    assert data["total"] == 40 and data["prev"] is None
    more = client.get("/api/trajectories", params={"agent": "lag", "limit": "5", "before": data["next"]}).json()
    assert more["runs"][0]["id"] == "run0103"


def test_bad_filters_are_a_400_that_names_the_field(home: Path, client: TestClient) -> None:
    fill(home, 3)
    assert client.get("/trajectories", params={"min_score": "high"}).status_code == 400
    assert "min_score must be a number" in client.get("/api/trajectories?min_score=high").json()["error"]
    assert "YYYY-MM-DD" in client.get("/api/trajectories?since=yesterday").json()["error"]
    assert "cursor" in client.get("/api/trajectories?before=nonsense").json()["error"]
    assert client.get("/api/trajectories?status=fine").status_code == 400


def test_the_count_stops_at_the_cap_for_filtered_runs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(home)
    monkeypatch.setattr(trajectory_page, "COUNT_CAP", 10)
    with TrajectoryStore.open(home / "trajectories.db") as store:
        page = store.page(PageQuery(agent="react"))
        assert (page.total, page.total_capped, len(page.rows)) == (10, True, 40)
        assert store.page(PageQuery()).total == 120  # unfiltered: an exact index count


def test_page_queries_use_an_ordered_index_not_a_sort(home: Path) -> None:
    fill(home, 5)
    with TrajectoryStore.open(home / "trajectories.db") as store:
        for query in (PageQuery(), PageQuery(agent="react", status="ok"), PageQuery(suite="gsm8k", min_score=1)):
            sql, args = query.page_sql(*_filters(**query.store_filters()))
            plan = " ".join(row[-1] for row in store._db.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_page_query_refuses_two_cursors_and_silly_limits() -> None:
    cursor = trajectory_page.Cursor(T0, 1)
    assert trajectory_page.Cursor.parse(str(cursor)) == cursor
    with pytest.raises(BadPageQuery):
        PageQuery(before=cursor, after=cursor)
    with pytest.raises(BadPageQuery):
        PageQuery(limit=0)


# -- one run ---------------------------------------------------------------------------------------------------
def test_run_page_shows_every_step_in_order(home: Path, client: TestClient) -> None:
    store = TrajectoryStore.open(home / "trajectories.db")
    recorder = Recorder(store, agent="react")
    run_id = recorder.start("What is the capital of Australia?")
    messages = [{"role": "system", "content": "You answer with tools."}, {"role": "user", "content": "Capital?"}]
    for step in (
        model_step(run_id, 0, "Action: search", messages_in=messages, parsed={"tool": "search"}, latency_s=0.25),
        tool_step(run_id, 1, "capital of Australia", "Canberra is the capital."),
        Step(run_id=run_id, index=2, kind="event", node="plan", role="subquestions", data={"chain": ["a", "b"]}),
        model_step(run_id, 3, "Final Anser: Canberra", error=StepError("parse_error", "no Action line")),
    ):
        store.append_step(step)
    store.finish_run(run_id, status="ok", answer="Canberra")
    store.set_score(run_id, 1.0, {"em": 1.0}, suite="hotpotqa", item_id="h1")

    page = client.get(f"/trajectories/{run_id[:10]}")  # a unique prefix, as `trajectories show` takes
    assert page.status_code == 200
    text = page.text
    assert "What is the capital of Australia?" in text and 'id="answer">Canberra<' in text
    steps = re.findall(r'<section class="step step-(\w+)" data-index="(\d+)"', text)
    assert steps == [("model", "0"), ("tool", "1"), ("event", "2"), ("model", "3")]
    assert text.count('<details class="message">') == 2 + 1  # each message of each model call is collapsible
    assert "You answer with tools." in text and "role policy" in text and "250 ms" in text
    assert "tokens 10+5" in text and "&#34;tool&#34;: &#34;search&#34;" in text  # the parsed action
    assert "Canberra is the capital." in text and "capital of Australia" in text
    assert "subquestions" in text and "error [parse_error]: no Action line" in text
    assert 'id="steps"' in text and "hotpotqa / h1" in text

    data = client.get(f"/api/trajectories/{run_id}").json()
    assert data["id"] == run_id and [s["kind"] for s in data["steps"]] == ["model", "tool", "event", "model"]
    assert client.get("/trajectories/nope").status_code == 404
    assert "no run matches" in client.get("/api/trajectories/nope").json()["error"]


def test_run_page_lists_other_runs_of_the_same_item(home: Path, client: TestClient) -> None:
    fill(home, 30)
    text = client.get("/trajectories/run0003").text
    same = re.findall(r'<tr class="same-item-run" data-run-id="([^"]+)"', text)
    assert same == ["run0023", "run0013"]  # item3 on hotpotqa, newest first, itself left out
    assert "/trajectories/compare?a=run0003&amp;b=run0023" in text


def test_text_from_models_and_tools_is_escaped_everywhere(home: Path, client: TestClient) -> None:
    runs = []
    for n, payload in enumerate(XSS):
        run = Run(id=f"xss{n}", agent="react", question=f"Q {payload}", answer=f"A {payload}", status="ok",
                  models={"policy": payload}, suite=payload, meta={"note": payload}, created_at=T0 + n)  # fmt: skip
        run.steps = [model_step(run.id, 0, f"C {payload}", messages_in=[{"role": "user", "content": payload}]),
                     tool_step(run.id, 1, payload, f"O {payload}")]  # fmt: skip
        runs.append(run)
    with TrajectoryStore.open(home / "trajectories.db") as store:
        store.add_runs(runs)

    pages = [client.get(url).text for url in ("/trajectories", "/trajectories/xss0", "/trajectories/xss1",
                                              "/trajectories/compare?a=xss0&b=xss1")]  # fmt: skip
    for text in pages:
        for payload in XSS:
            assert payload not in text
    run_page = pages[1] + pages[2]
    for payload in XSS:
        escaped = html.escape(payload, quote=False)
        for label in ("Q", "A", "C", "O"):
            assert f"{label} {escaped}" in run_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0] and "&lt;img src=x onerror=alert(1)&gt;" in pages[3]


# -- side by side -----------------------------------------------------------------------------------------------
def test_first_divergence() -> None:
    a = [model_step("a", 0, "search"), tool_step("a", 1, "x"), model_step("a", 2, "Final: 1")]
    same = [model_step("b", 0, "search"), tool_step("b", 1, "x", "other text"), model_step("b", 2, "Final: 1")]
    assert first_divergence(a, same) is None  # observations and run ids do not count
    assert first_divergence(a, [*same[:2], model_step("b", 2, "Final: 2")]) == 2
    assert first_divergence(a, [same[0], tool_step("b", 1, "y")]) == 1  # other arguments
    assert first_divergence(a, same[:2]) == 2  # a prefix: the first step only the longer run has
    assert first_divergence([], a) == 0
    assert first_divergence(a, [model_step("b", 0, "search", role="planner"), *same[1:]]) == 0


def test_compare_aligns_steps_and_marks_the_first_divergence(home: Path, client: TestClient) -> None:
    teacher = Run(id="teacher1", agent="react", question="Who?", answer="Ada", status="ok", created_at=T0)
    teacher.steps = [model_step("teacher1", 0, "search"), tool_step("teacher1", 1, "who"),
                     model_step("teacher1", 2, "Final Answer: Ada")]  # fmt: skip
    student = Run(id="student1", agent="react", question="Who?", answer="Bob", status="ok", created_at=T0 + 1)
    student.steps = [model_step("student1", 0, "search"), tool_step("student1", 1, "who"),
                     model_step("student1", 2, "search again"), tool_step("student1", 3, "who else"),
                     model_step("student1", 4, "Final Answer: Bob")]  # fmt: skip
    with TrajectoryStore.open(home / "trajectories.db") as store:
        store.add_runs([teacher, student])

    text = client.get("/trajectories/compare", params={"a": "teacher1", "b": "student1"}).text
    rows = re.findall(r'<tr class="step-row( divergence)?"\s+data-index="(\d+)"( id="first-divergence")?', text)
    assert rows == [("", "0", ""), ("", "1", ""), (" divergence", "2", ' id="first-divergence"'), ("", "3", ""),
                    ("", "4", "")]  # fmt: skip
    assert text.count("no step") == 2 and 'id="compare"' in text
    ticked = client.get("/trajectories/compare?run=teacher1&run=student1")  # the table's checkboxes
    assert 'id="first-divergence"' in ticked.text
    data = client.get("/api/trajectories/compare", params={"a": "teacher1", "b": "student1"}).json()
    assert data["first_divergence"] == 2 and data["b"]["answer"] == "Bob"
    assert client.get("/trajectories/compare?a=teacher1").status_code == 400
    assert client.get("/trajectories/compare?a=teacher1&b=missing").status_code == 404


def test_the_table_offers_checkboxes_that_lead_to_compare(home: Path, client: TestClient) -> None:
    fill(home, 3)
    text = client.get("/trajectories").text
    assert 'id="compare-form" method="get" action="/trajectories/compare"' in text
    assert re.findall(r'<input type="checkbox" name="run" value="([^"]+)"', text) == ["run0002", "run0001", "run0000"]
    assert 'id="filters"' in text and 'id="runs"' in text


def test_ticking_two_runs_in_a_browser_opens_their_comparison(home: Path, live_ui: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fill(home, 3)  # same steps but the tool's query: they part ways at step 1
    browser.get(f"{live_ui.url}/trajectories")
    button = browser.find_element(By.ID, "compare-button")
    assert not button.is_enabled()  # nothing ticked yet
    boxes = browser.find_elements(By.CSS_SELECTOR, "#runs tr.run input.pick")
    boxes[0].click()
    assert not button.is_enabled()
    boxes[2].click()
    assert button.is_enabled()
    button.click()
    WebDriverWait(browser, 20).until(lambda b: "/trajectories/compare" in b.current_url)
    marked = browser.find_element(By.ID, "first-divergence")
    assert marked.get_attribute("data-index") == "1" and "divergence" in marked.get_attribute("class")
    assert "a=run0002" in browser.current_url and "b=run0000" in browser.current_url
