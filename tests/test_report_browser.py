"""The committed report, opened in a real headless browser: every figure loads, no raw JSON.

Needs Debian's chromium and chromium-driver (``.ci/run`` installs them) and selenium (the
``test`` extra); skipped, with the reason, where they are missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("selenium.webdriver")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)")


@pytest.mark.parametrize("report", sorted(p.parent.name for p in ROOT.glob("results/*/index.html")))
def test_the_committed_report_shows_every_figure_and_no_raw_json(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    folder = ROOT / "results" / report
    browser.get((folder / "index.html").as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    pngs = sorted(folder.glob("*/*.png"))
    assert len(images) == len(pngs) > 0
    for img in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        assert loaded, img.get_attribute("src")
    table = browser.find_element(By.TAG_NAME, "table").text
    assert "{" not in table and "\"" not in table  # values and intervals, not JSON
    assert "scale: ;" not in browser.find_element(By.TAG_NAME, "body").text
    shot = tmp_path / f"{report}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
