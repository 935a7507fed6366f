"""The README stays true: its findings table is what results/small holds, its first-answer
numbers are those the site's tested example prints, and it stays a front page."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ROWS = {"Fig. 1 (CNN)": "fig1", "Fig. 1 (RNN)": "fig1-rnn", "Fig. 2": "fig2", "Fig. 3": "fig3", "Fig. 4": "fig4",
        "Fig. 5": "fig5", "Fig. 6": "fig6", "A.3": "seq"}


def test_the_findings_table_counts_the_committed_claim_records():
    seen = set()
    for line in README.splitlines():
        for label, figure in ROWS.items():
            if line.startswith(f"| {label}"):
                numbers = [int(x) for x in re.findall(r"\| (\d+) ", line + " ")]
                claims = json.loads((ROOT / "results" / "small" / figure / "claims.json").read_text())["claims"]
                counts = Counter(c["status"] for c in claims)
                exploratory = Counter(c["status"] for c in claims if c.get("analysis") == "exploratory")
                assert numbers == [counts["held"], counts["not held"], counts["inconclusive"],
                                   counts["premise not met"], exploratory["held"]], label
                seen.add(figure)
    assert seen == set(ROWS.values())


def test_the_first_answer_is_the_tested_one_and_the_readme_is_a_front_page():
    index = (ROOT / "docs" / "index.md").read_text()
    assert "(0.75, 0.118, 0.0099)" in index and "0.75, 0.118" in README
    assert len(README.splitlines()) <= 150
    for link in re.findall(r"\]\(((?:docs|results)/[^)#]+)\)", README):
        assert (ROOT / link).exists(), link


def test_the_readmes_python_runs_as_written(tmp_path, monkeypatch):
    """Every python block of the README, in order, in one namespace (as a reader pastes them)."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "layers.png").exists()
    install = README.split("## Install")[1].split("##")[0]
    assert "pip install -e ." in install and "not on PyPI yet" in install
    assert not re.search(r"^pip install ccalens\b", install, flags=re.M)  # fails wherever it is not published
    index = (ROOT / "docs" / "index.md").read_text().split("## Install")[1].split("##")[0]
    assert "pip install -e ." in index and not re.search(r"^pip install ccalens\b", index, flags=re.M)
