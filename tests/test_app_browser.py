"""The app in headless Chromium: upload an image, read each arm's class and probability, compare with `predict`.

A tiny suite (logistic regression + cnn_tiny for one epoch) runs with ``--final``; the page is served on a free
port of 127.0.0.1 and driven through Selenium with the system Chromium (skips, saying why, where the browser,
its driver, selenium or gradio is missing).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from cellbench.datasets import load_dataset
from cellbench.tools.cli import main
from cellbench.tools.predict import find_finals
from tests.test_html_browser import _browser_paths

SUITE = """
name = "appt"
seed = 0
strategies = ["none"]
[cv]
folds = 2
[datasets.synthetic]
n_patients = 6
fields_per_patient = 2
[models]
logistic_regression = {}
cnn_tiny = {}
[deep]
max_epochs = 1
size = 32
"""


@pytest.fixture(scope="module")
def final_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    suite = root / "appt.toml"
    suite.write_text(SUITE)
    results = root / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results), "--final", "--quiet", "--jobs", "1"]) == 0
    return suite, results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_predict_without_final_models_says_how_to_make_them(tmp_path, capsys):
    suite = tmp_path / "appt.toml"
    suite.write_text(SUITE)
    assert main(["predict", "--suite", str(suite), "--results", str(tmp_path), "x.png"]) == 2
    err = capsys.readouterr().err
    assert "no final model in" in err and f"cellbench run --suite {suite} --final" in err


def test_the_page_shows_what_predict_prints(final_run, tmp_path):
    chromium, driver = _browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    pytest.importorskip("gradio", reason="gradio is not installed (pip install gradio)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cellbench.tools.app import serve

    suite, results = final_run
    image = str(load_dataset("synthetic", n_patients=6, fields_per_patient=2).samples[3].image_path)
    csv = tmp_path / "p.csv"
    assert main(["predict", "--suite", str(suite), "--results", str(results), "--csv", str(csv), image]) == 0
    expected = pd.read_csv(csv)
    assert list(expected.arm) == ["handcrafted", "deep"]

    port = _free_port()
    page = serve(find_finals(results / "appt"), port=port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        b.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(b, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        b.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(Path(image).resolve()))

        def shown(arm: str, what: str) -> str:
            box = b.find_element(By.CSS_SELECTOR, f"#{what}-{arm} textarea, #{what}-{arm} input")
            return box.get_attribute("value") or ""

        t0 = time.time()
        WebDriverWait(b, 60).until(lambda d: all(shown(a, "probability") for a in expected.arm))
        for row in expected.to_dict("records"):
            assert shown(row["arm"], "class") == row["class"]
            assert shown(row["arm"], "probability") == f"{row['probability']:.3f}"
        assert b.find_elements(By.CSS_SELECTOR, "#cam-deep img"), "no Grad-CAM image shown"
        names = find_finals(results / "appt", arm="handcrafted")[0].saved.card["feature_names"]
        table = b.find_element(By.ID, "features-handcrafted").text
        assert any(n in table for n in names), "no top features shown"
        assert time.time() - t0 < 60
    finally:
        b.quit()
        page.close()
