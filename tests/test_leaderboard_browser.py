"""The rendered leaderboard page in a real browser: tables and plots show, and headers sort.

Drives headless Chromium through selenium and chromedriver (Debian: ``apt-get install chromium
chromium-driver``; PyPI: ``selenium``). Skipped when any of them is missing. Paths can be set with
``CHROMIUM=/path/to/chromium`` and ``CHROMEDRIVER=/path/to/chromedriver``. A full-page screenshot
goes to ``$EQUIBENCH_SCREENSHOT`` (default ``/tmp/equibench-leaderboard.png``).

Run with: ``pytest tests/test_leaderboard_browser.py`` (marker ``browser``).
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from equibench_leaderboard.render import render
from test_leaderboard import CPU, filled_store  # noqa: F401  (a fixture, used by name)

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-extensions", "--window-size=1400,1000", "--hide-scrollbars"]


def _find(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    chromium = _find("CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver_path = _find("CHROMEDRIVER", "chromedriver")
    if not chromium or not driver_path:
        pytest.skip("headless Chromium not found: install chromium and chromium-driver "
                    "(or set CHROMIUM and CHROMEDRIVER)")
    profile = tempfile.mkdtemp(prefix="equibench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site_url(filled_store, tmp_path):  # noqa: F811  (the fixture imported above)
    """The rendered site served from a local http.server on a free port of 127.0.0.1."""
    rendered = render(filled_store, tmp_path / "out")
    handler = functools.partial(_QuietHandler, directory=str(rendered.html.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _column(driver, table_id: str, index: int, attribute: str | None = None) -> list[str]:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr td:nth-child({index + 1})")
    return [c.get_attribute(attribute) if attribute else c.text for c in cells]


def _rows(driver, table_id: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]


def _header(driver, table_id: str, title: str):
    from selenium.webdriver.common.by import By

    headers = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")
    titles = [h.text for h in headers]
    return headers[titles.index(title)], titles.index(title)


def _expected(keys: list[str], numeric: bool, descending: bool) -> list[int]:
    """The page's sort rule: by key, empty keys last, ties in their current order."""
    def value(raw):
        return float(raw) if numeric else raw.lower()

    present = [i for i, k in enumerate(keys) if k != ""]
    present.sort(key=lambda i: value(keys[i]), reverse=descending)  # sort is stable, also reversed
    return present + [i for i, k in enumerate(keys) if k == ""]


def test_page_shows_tables_and_plots_and_sorts(browser, site_url):
    from selenium.webdriver.common.by import By

    browser.get(site_url)
    assert browser.title == "equibench leaderboard"
    board = "board-md17-xtb-ethanol-v1-0"
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.sortable")) == 3
    models = _column(browser, board, 0)
    assert models == ["eqnet", "transformer", "mlp", "mlp (no aug)"]  # ranked by forces_mae
    assert browser.find_element(By.LINK_TEXT, "eqnet").get_attribute("href") == "https://example.org/eqnet"
    plots = browser.find_elements(By.CSS_SELECTOR, "figure.plot svg")
    assert len(plots) == 4
    for plot in plots:
        assert plot.size["width"] > 300 and plot.size["height"] > 150  # drawn at a readable size
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.plot svg path")) > 40  # lines, ticks, markers

    # the primary-metric column starts ascending: one click reverses it
    header, index = _header(browser, board, "forces_mae ↓")
    assert header.get_attribute("aria-sort") == "ascending"
    header.find_element(By.TAG_NAME, "button").click()
    assert header.get_attribute("aria-sort") == "descending"
    assert _column(browser, board, 0) == ["mlp (no aug)", "mlp", "transformer", "eqnet"]
    assert _column(browser, board, index) == ["50", "20", "12", "5"]

    # a text column sorts alphabetically
    header, _ = _header(browser, board, "model")
    header.click()
    assert _column(browser, board, 0) == ["eqnet", "mlp", "mlp (no aug)", "transformer"]

    # "never" (no value) stays last in both directions; numbers sort as numbers (1000 > 0)
    header, index = _header(browser, board, "step ≤ 2%")
    for descending in (False, True):
        before = _column(browser, board, 0)
        keys = _column(browser, board, index, "data-sort")
        header.click()
        assert _column(browser, board, 0) == [before[i] for i in _expected(keys, True, descending)]
        assert _column(browser, board, index)[-1] == "never"

    # every numeric column of every table follows the rule
    for table in browser.find_elements(By.CSS_SELECTOR, "table.sortable"):
        table_id = table.get_attribute("id")
        for k, th in enumerate(table.find_elements(By.CSS_SELECTOR, "thead th")):
            numeric = th.get_attribute("data-type") == "number"
            for _ in range(2):
                before = _rows(browser, table_id)
                keys = _column(browser, table_id, k, "data-sort")
                descending = th.get_attribute("aria-sort") == "ascending"
                th.click()
                after = _rows(browser, table_id)
                assert after == [before[i] for i in _expected(keys, numeric, descending)], (table_id, th.text)

    shot = Path(os.environ.get("EQUIBENCH_SCREENSHOT", "/tmp/equibench-leaderboard.png"))
    browser.get(site_url)  # the page as first rendered
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height + 100)
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert CPU in browser.page_source
