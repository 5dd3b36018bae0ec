"""The HTML report in headless Chromium: the verdict table is on the first screen of a screenshot, tables sort.

Uses the system Chromium and its driver (Debian: ``apt-get install -y chromium chromium-driver``; ``.ci/run``
installs them) through Selenium; skips, saying why, where either is missing.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellbench.tools.cli import main
from tests.stores import FakeData, write_store

SKILLS = {("logistic_regression", "none"): 0.9, ("dummy", "none"): 0.5, ("cnn", "none"): 0.7,
          ("naive_bayes", "none"): 0.75}  # fmt: skip
WIDTH, HEIGHT = 1400, 900


def _browser_paths() -> tuple[str, str]:
    """The Chromium binary and its driver ($CHROMIUM / $CHROMEDRIVER, else on PATH); skip naming what is missing."""

    def find(env: str, *names: str) -> str | None:
        given = os.environ.get(env)
        if given:
            return given if Path(given).is_file() else None
        return next((p for p in map(shutil.which, names) if p), None)

    chromium, driver = find("CHROMIUM", "chromium", "chromium-browser"), find("CHROMEDRIVER", "chromedriver")
    if not chromium or not driver:
        pytest.skip(
            f"no headless browser: chromium {chromium or 'not found'}, chromedriver {driver or 'not found'} "
            "(apt-get install -y chromium chromium-driver, or set $CHROMIUM and $CHROMEDRIVER)"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDTH},{HEIGHT}"):  # fmt: skip
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    yield b
    b.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_store(root / "fake", [FakeData(name="alpha", skills=SKILLS), FakeData(name="beta", skills=SKILLS)],
                suite="fake")  # fmt: skip
    out = root / "html"
    assert main(["export", "--suite", "fake", "--results", str(root), "--format", "html", "--out", str(out)]) == 0
    return out / "report.html"


def test_the_verdict_table_is_on_the_first_screen_of_the_screenshot(browser, report, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    table = browser.find_element(By.ID, "answer-table")
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["alpha", "beta"]
    png = browser.get_screenshot_as_png()
    (tmp_path / "report.png").write_bytes(png)
    shot = Image.open(io.BytesIO(png)).convert("L")
    ratio = shot.width / browser.execute_script("return window.innerWidth")  # device pixels per CSS pixel
    box = table.rect
    top, bottom = box["y"] * ratio, (box["y"] + box["height"]) * ratio
    assert bottom <= shot.height, f"the verdict table ends at {bottom:.0f} px, below the first screen ({shot.height})"
    crop = np.asarray(shot.crop((int(box["x"] * ratio), int(top), int((box["x"] + box["width"]) * ratio),
                                 int(bottom))))  # fmt: skip
    # drawn, not blank: text and rules give dark pixels inside the table's box, the page around it is white
    assert crop.size and (crop < 128).mean() > 0.01 and crop.std() > 20


def test_a_click_on_a_header_sorts_the_table(browser, report):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    table = browser.find_element(By.ID, "alpha-given-ranking")
    header = table.find_elements(By.TAG_NAME, "th")[1]
    assert header.text == "model"

    def models() -> list[str]:
        return [
            r.find_elements(By.TAG_NAME, "td")[1].text.rstrip(" ⚠")
            for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]

    ranked = models()
    header.click()
    assert models() == sorted(ranked) != ranked
    header.click()
    assert models() == sorted(ranked, reverse=True)
