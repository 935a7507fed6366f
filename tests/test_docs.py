"""The documentation site: it builds with --strict (every warning, broken link or missing
page an error) in well under a minute, its generated pages hold what the code and the
results hold, and in a real headless browser its pages show their figures. The site's code
examples run as doctests of the Markdown pages (docs/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

for module in ("mkdocs", "material", "mkdocstrings", "mkdocs_gen_files"):
    pytest.importorskip(module, reason="the docs extra (mkdocs-material, mkdocstrings, mkdocs-gen-files)")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


def build(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "-d",
                           str(out)], cwd=config.parent, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = build(ROOT / "mkdocs.yml", out)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    assert seconds < 60, f"the docs build took {seconds:.0f} s; CI gives it a minute"
    return out


def test_generated_pages_hold_the_registry_the_claims_and_the_api(site):
    from ccalens.core import registry

    invariances = (site / "explanation" / "invariances" / "index.html").read_text()
    for spec in registry.MEASURES.values():
        if not spec.alias_of:
            assert f"<code>{spec.name}</code>" in invariances, spec.name
    reproductions = (site / "reproductions" / "index.html").read_text()
    for path in (ROOT / "results" / "small").glob("*/claims.json"):
        for claim in json.loads(path.read_text())["claims"]:
            assert claim["id"] in reproductions, claim["id"]
    reference = (site / "reference" / "index.html").read_text()
    import ccalens

    for name in ("pwcca", "compare_models", "shape_metric", "pairwise", "RowSummary", "extract"):
        assert f'id="ccalens.{name}"' in reference or f'id="ccalens.stream.{name}"' in reference or \
            f'id="ccalens.extract.core.{name}"' in reference, name
    assert "compare_models" in ccalens.__all__
    # the page on intervals holds the committed benchmarks' tables, each family's default in bold
    bias = (site / "explanation" / "bias-and-nulls" / "index.html").read_text()
    for name in ("interval_coverage", "paired_calibration", "null_calibration"):
        assert f"benchmarks/{name}.py" in bias, name
    coverage = json.loads((ROOT / "benchmarks" / "results" / "interval_coverage.json").read_text())
    for family, d in coverage["decision"]["families"].items():
        s = d["scores"][d["default"]]
        assert f"<strong>{s['worst']:.2f} ({s['misses']}/{s['cells']} missed)</strong>" in bias, family


def test_a_broken_link_stops_the_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "results").symlink_to(ROOT / "results")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [a page that does not exist](nowhere.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "nowhere.md" in done.stdout + done.stderr


@pytest.mark.parametrize("page, figures", [("index.html", 1), ("reproductions/index.html", 8)])
def test_pages_show_their_figures_in_a_browser(site, browser, page, figures, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get((site / page).as_uri())
    images = [img for img in browser.find_elements(By.TAG_NAME, "img") if img.get_attribute("src").endswith(".png")]
    assert len(images) >= figures
    for img in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        assert loaded, img.get_attribute("src")
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
