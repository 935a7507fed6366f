"""The house rules, checked: layers (import-linter), no private names across packages, no
self-import of ccalens inside the library, packages that are not code in ``__init__.py``,
one place that loads matplotlib, and one registry that every measure list comes from."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ccalens"


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts), ast.parse(path.read_text(), str(path))


def _package(module: str) -> str:
    """ccalens.core.factor -> ccalens.core; ccalens.stream -> ccalens.stream."""
    return ".".join(module.split(".")[:2])


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_another_packages_private_names():
    found = []
    for path, module, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(module, node, path.name == "__init__.py")
            if not target.startswith("ccalens") or _package(target) == _package(module):
                continue
            names = [a.name for a in node.names]
            if any(_private(p) for p in target.split(".")) or any(_private(n) for n in names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {target} import {', '.join(names)}")
    assert not found, "private names imported across packages:\n" + "\n".join(found)


def test_the_library_never_imports_ccalens_itself():
    found = []
    for path, module, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: import {a.name}" for a in node.names
                          if a.name == "ccalens" or a.name.startswith("ccalens.")]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ccalens"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ...")
    assert not found, "the library imports itself by name (use relative imports of the module it needs):\n" + \
        "\n".join(found)


def test_packages_keep_no_code_in_their_init():
    heavy = []
    for path, module, tree in _modules():
        if path.name != "__init__.py":
            continue
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        if defs:
            heavy.append(f"{path.relative_to(ROOT)} defines {', '.join(defs)}")
    assert not heavy, "\n".join(heavy)


def test_modules_stay_small_and_no_name_is_both_a_module_and_a_function():
    import ccalens

    for path in SRC.rglob("*.py"):
        if "experiments" in path.relative_to(SRC).parts:  # the paper's pipelines, one figure each
            continue
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines; split it by concern"
    submodules = {p.stem for p in SRC.glob("*.py")} | {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    functions = {name for name in ccalens.__all__ if callable(getattr(ccalens, name)) and name[0].islower()}
    assert not submodules & functions, f"names that are both a module and a function: {submodules & functions}"


def test_one_module_loads_matplotlib():
    loaders = sorted({str(path.relative_to(ROOT)) for path, _, tree in _modules() for node in ast.walk(tree)
                     if (isinstance(node, ast.Import) and any(a.name.startswith("matplotlib") for a in node.names))
                     or (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("matplotlib"))})
    assert loaders == ["src/ccalens/plot.py"], loaders


def test_every_measure_list_comes_from_the_registry():
    from ccalens import stream
    from ccalens.core import registry
    from ccalens.core.compare import compare_measures
    from ccalens.experiments import sanity

    assert stream.MEASURES == tuple(n for n, s in registry.MEASURES.items() if s.streamable)
    assert sanity.MEASURES == tuple(n for n, s in registry.MEASURES.items() if s.alias_of is None)
    cli = pytest.importorskip("ccalens.cli.compare")
    assert [m.value for m in cli.Measure] == [*registry.MEASURES, "all"]
    for name, spec in registry.MEASURES.items():
        assert spec.function is not None and (spec.kind != "factor" or spec.from_factors is not None), name
    # a measure registered at run time is known to the multi-measure front door at once
    import numpy as np

    def first_neuron_corr(X, Y):
        from ccalens.core.results import MatchedResult

        return MatchedResult(similarity=float(np.corrcoef(X[:, 0], Y[:, 0])[0, 1]), measure="first", n_samples=len(X))

    registry.register(registry.MeasureSpec("first", "first neurons", "raw", frozenset(), first_neuron_corr,
                                           same_width=True))
    try:
        x = np.random.default_rng(0).standard_normal((50, 2))
        results, _ = compare_measures(x, 3 * x, "all")
        assert results["first"].similarity == pytest.approx(1.0)
    finally:
        registry.unregister("first")


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (pip install import-linter)")
    out = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "broken" in out.stdout and "0 broken" in out.stdout


def test_no_import_circle_inside_a_package():
    """No module of ccalens reaches itself through its imports, lazy (in-function) ones
    included: a circle (core/measures.py <-> core/resampling.py was one) hides which module
    a concept lives in."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("ccalens")
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == module or not imported.startswith("ccalens.") or imported == "ccalens":
                continue
            if module.startswith(imported + ".") or imported.startswith(module + "."):
                continue  # a package and its own modules (the __init__ re-exports them)
            if graph.chain_exists(importer=imported, imported=module, as_packages=False):
                circles.append(f"{module} <-> {imported}")
    assert not circles, "import circles:\n" + "\n".join(circles)
