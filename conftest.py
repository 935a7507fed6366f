"""Collection with only the core dependencies installed: the modules of an optional part
(the command line needs typer and rich, extraction torch, the activation store zarr) are left out of the doctest
collection when their dependency is missing; their tests skip with the reason."""

import importlib.util

collect_ignore_glob = []
for dependency, pattern in (("typer", "src/ccalens/cli/*.py"), ("torch", "src/ccalens/extract/*.py"),
                            ("zarr", "src/ccalens/store/zarrstore.py")):
    if importlib.util.find_spec(dependency) is None:
        collect_ignore_glob.append(pattern)
