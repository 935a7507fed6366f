"""Write tests/data/netrep_shape.json: netrep's LinearMetric angular distances on the shape
metric's test cases (tests/oracles.py:shape_cases), for tests/test_shape.py.

netrep (github.com/ahwillia/netrep) is not on PyPI; run this with a checkout on the path:

    PYTHONPATH=/path/to/netrep python tests/data/make_netrep_reference.py

The netrep commit used is recorded in the JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from oracles import SHAPE_ALPHAS, shape_cases  # noqa: E402


def main() -> None:
    import netrep
    from netrep.metrics import LinearMetric

    root = Path(netrep.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    values = {}
    for name, (x, y) in shape_cases().items():
        values[name] = {str(a): float(LinearMetric(alpha=a, center_columns=True, zero_pad=True,
                                                   score_method="angular").fit_score(x, y)) for a in SHAPE_ALPHAS}
    out = {"source": "netrep.metrics.LinearMetric(alpha, center_columns=True, zero_pad=True, "
                     "score_method='angular').fit_score(X, Y)",
           "netrep_commit": commit or "unknown", "values": values}
    (HERE / "netrep_shape.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
