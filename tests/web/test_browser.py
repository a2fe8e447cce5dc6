"""The web UI end to end in real headless Chromium (Debian's chromium + chromedriver) on scripted models: a chat
turn streams its tool step and answer, the thread survives a reload, its trajectory opens with every step, two
runs compare, markup from a model stays inert, and a token-guarded UI lets in only after /login."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

EVALUATE = 'Thought: I compute it.\nAction: evaluate\nAction Input: {"expression": "2^10 + 1"}'
# Each payload sets a flag if it ever runs; the page must show it as text instead.
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


def script(home: Path, replies: list[str]) -> str:
    path = home / "script.json"
    path.write_text(json.dumps(replies), encoding="utf-8")
    return f"scripted:{path}"


def send(browser: Any, model: str, question: str) -> None:
    """Fill the chat form for a react turn with no KB and send `question`."""
    for field, value in (("model", model), ("kb", "none"), ("question", question)):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "agent").send_keys("react")
    browser.find_element(By.ID, "send").click()


def last_answer(browser: Any, timeout: float = 60) -> str:
    def answered(b: Any) -> str | bool:
        answers = [a.text for a in b.find_elements(By.CSS_SELECTOR, "#messages .message.assistant .answer") if a.text]
        return answers[-1] if answers else False

    return WebDriverWait(browser, timeout).until(answered)


def test_a_chat_turn_streams_its_tool_step_and_answer_and_the_thread_survives_a_reload(
    home: Path, live_ui: Any, browser: Any
) -> None:
    model = script(home, [EVALUATE, "Thought: done\nFinal Answer: 1025", f"Final Answer: {XSS}"])
    browser.get(f"{live_ui.url}/chat")
    send(browser, model, "What is 2^10 + 1?")
    assert last_answer(browser).startswith("1025")
    step = browser.find_element(By.CSS_SELECTOR, "#messages details.step")
    assert "evaluate" in step.text and step.get_attribute("open") is None  # collapsed until clicked
    step.find_element(By.TAG_NAME, "summary").click()
    assert "1025" in step.text  # the observation
    streamed = browser.find_element(By.CSS_SELECTOR, "#messages .message.assistant").text
    assert "1025" in streamed

    thread = WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#threads a.thread"))[0]
    thread_id = thread.get_attribute("data-thread-id")
    browser.get(f"{live_ui.url}/chat?thread={thread_id}")  # a reload: the earlier turn comes from the checkpointer
    messages = browser.find_element(By.ID, "messages").text
    assert "What is 2^10 + 1?" in messages and "1025" in messages

    send(browser, model, "and the markup?")  # the model's reply is a script and an onerror image
    assert XSS in WebDriverWait(browser, 60).until(lambda b: XSS in b.find_element(By.ID, "messages").text and
                                                   b.find_element(By.ID, "messages").text)  # fmt: skip
    assert browser.execute_script("return window.__xss") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "#messages img, #messages script")


def test_a_trajectory_opens_with_its_steps_and_markup_in_it_stays_text(home: Path, live_ui: Any, browser: Any) -> None:
    model = script(home, [EVALUATE, f"Thought: done\nFinal Answer: 1025 {XSS}"])
    browser.get(f"{live_ui.url}/chat")
    send(browser, model, f"What is 2^10 + 1? {XSS}")
    last_answer(browser)
    browser.get(f"{live_ui.url}/trajectories")
    row = WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#runs tr.run"))[0]
    browser.get(f"{live_ui.url}/trajectories/{row.get_attribute('data-run-id')}")
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps .step")
    text = browser.find_element(By.ID, "steps").text
    assert len(steps) >= 3 and "evaluate" in text and "2^10 + 1" in text
    assert XSS in browser.find_element(By.TAG_NAME, "main").text
    assert browser.execute_script("return window.__xss") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")


def test_a_token_guarded_ui_lets_in_after_login(home: Path, browser: Any) -> None:
    from agentdistill.config import Settings
    from agentdistill.testing.live_server import live_server
    from agentdistill.web.app import create_app
    from agentdistill.web.security import UIConfig

    token = "t0ken-" + "x" * 20
    app = create_app(Settings(home=home), UIConfig(host="0.0.0.0", token=token))
    with live_server(app) as url:
        browser.get(f"{url}/trajectories")
        assert "/login" in browser.find_element(By.TAG_NAME, "body").text
        browser.get(f"{url}/login")
        browser.find_element(By.NAME, "token").send_keys("wrong-token-xxxxxxxxxx")
        browser.find_element(By.CSS_SELECTOR, "form button").click()
        WebDriverWait(browser, 20).until(lambda b: "wrong token" in b.find_element(By.TAG_NAME, "main").text)
        browser.find_element(By.NAME, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "form button").click()
        WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.ID, "chat-form"))
        browser.get(f"{url}/trajectories")
        assert browser.find_elements(By.ID, "runs") or "no runs" in browser.page_source.lower()
