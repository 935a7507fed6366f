"""The site's code examples are doctests of its Markdown pages (pytest --doctest-glob=*.md).

Each page runs in a temporary folder (the examples write files), and a page whose extras
are not installed is skipped with the reason, as the rest of the suite does."""

import importlib.util
from pathlib import Path

import pytest

collect_ignore = ["gen_pages.py"]

#: the importable modules each page's examples need, beyond the core dependencies
NEEDS = {
    "tutorial.md": ("torch", "sklearn", "matplotlib", "pandas"),
    "how-to/compare-models.md": ("torch", "matplotlib", "pandas"),
    "how-to/transformers.md": ("torch", "transformers", "pandas"),
    "how-to/checkpoints.md": ("torch",),
    "how-to/many-networks.md": ("pandas",),
    "how-to/dask.md": ("dask", "distributed"),
    "how-to/gpu.md": ("torch",),
}


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".md":
            continue
        page = path.relative_to(root).as_posix() if root in path.parents else path.name
        missing = [m for m in NEEDS.get(page, ()) if importlib.util.find_spec(m) is None]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"{page} needs {', '.join(missing)}"))


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
