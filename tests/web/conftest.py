"""Fixtures of the web UI tests: the app on a real uvicorn server, and a real headless Chromium driving it.

The browser is Debian's `chromium` with its `chromedriver` (the README's test command installs both; browsers
cannot be downloaded here). Without them the browser tests are skipped, saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentdistill.config import Settings
from agentdistill.testing.live_server import free_port, live_server
from agentdistill.web.app import create_app
from agentdistill.web.security import UIConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@dataclass(frozen=True)
class LiveUI:
    url: str
    home: Path
    csrf: str


@pytest.fixture
def live_ui(home: Path) -> Iterator[LiveUI]:
    """`agentdistill ui` on a free loopback port over the test's home, for as long as the test runs."""
    ui = UIConfig(port=free_port())
    with live_server(create_app(Settings(home=home), ui), ui.port) as url:
        yield LiveUI(url, home, ui.csrf_secret)


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One headless Chromium for the session (a page per test is cheap; a browser start is ~1 s)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no chromium/chromedriver on PATH: install Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: object) -> Iterator[object]:
    """The session's Chromium with cookies cleared before and no alert left open after the test."""
    chromium.delete_all_cookies()  # type: ignore[attr-defined]
    yield chromium
