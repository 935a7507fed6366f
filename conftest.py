"""Collection with only the core dependencies installed, and the site's examples.

* The modules of an optional part (the command line needs typer and rich, extraction torch,
  the activation store zarr) are left out of the doctest collection when their dependency
  is missing; their tests skip with the reason.
* The documentation's code examples are doctests of its Markdown pages
  (``--doctest-glob=*.md`` over ``docs/``): each page runs in a temporary folder (the
  examples write files), and a page whose extras are not installed is skipped with the
  reason. ``docs/gen_pages.py`` is the site's build script, not a test module.
"""

import importlib.util
from pathlib import Path

import pytest

collect_ignore = ["docs/gen_pages.py"]
collect_ignore_glob = []
for dependency, pattern in (("typer", "src/ccalens/cli/*.py"), ("torch", "src/ccalens/extract/*.py"),
                            ("torch", "src/ccalens/stream/models.py"), ("zarr", "src/ccalens/store/zarrstore.py")):
    if importlib.util.find_spec(dependency) is None:
        collect_ignore_glob.append(pattern)

DOCS = Path(__file__).parent / "docs"
#: the importable modules each page's examples need, beyond the core dependencies
DOC_NEEDS = {
    "tutorial.md": ("torch", "sklearn", "matplotlib", "pandas"),
    "how-to/compare-models.md": ("torch", "matplotlib", "pandas"),
    "how-to/transformers.md": ("torch", "transformers", "pandas"),
    "how-to/checkpoints.md": ("torch", "pandas"),
    "how-to/many-networks.md": ("pandas",),
    "how-to/dask.md": ("dask", "distributed"),
    "how-to/gpu.md": ("torch",),
}


def _page(item) -> str | None:
    path = Path(str(item.fspath))
    if path.suffix != ".md" or DOCS not in path.parents:
        return None
    return path.relative_to(DOCS).as_posix()


def pytest_collection_modifyitems(config, items):
    for item in items:
        page = _page(item)
        if page is None:
            continue
        missing = [m for m in DOC_NEEDS.get(page, ()) if importlib.util.find_spec(m) is None]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"{page} needs {', '.join(missing)}"))


@pytest.fixture(autouse=True)
def _doc_pages_run_in_a_temporary_folder(request, tmp_path, monkeypatch):
    if _page(request.node) is not None:
        monkeypatch.chdir(tmp_path)
