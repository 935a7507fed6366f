"""Several measures of one pair at once: each side is factorised once and reused by every
measure computed from factors (``ccalens compare -m all``)."""

from __future__ import annotations

from . import registry
from .factor import factorize

__all__ = ["RBF_MAX_N", "compare_measures", "measure_options", "select_measures"]

#: "all" skips kernel measures (RBF CKA) above this many datapoints: their n x n kernels
RBF_MAX_N = 5000


def compare_measures(X, Y, measures="all", *, layout: str = "datapoints_first", kernel_max_n: int = RBF_MAX_N,
                     subset: int | None = None, subsets: dict | None = None, **options) -> tuple[dict, dict]:
    """``({name: result}, {skipped name: why})`` for ``measures`` ("all", one name or several).

    With "all", a measure that refuses these arrays (too few datapoints for it, n x n
    matrices beyond memory, ...) is skipped with its reason; the others are computed.
    ``subset``: the measures of the datapoints (kernel and raw measures: RBF CKA, RSA,
    predictivity, the neighbour measures, ...) take a seeded random subset of that many
    datapoints when there are more (seed: ``options["seed"]``, default 0), and ``subsets``
    (a dict, when given) gets ``{name: {"datapoints": subset, "of": n, "seed": seed}}``.

    ``options`` are the measures' keyword arguments (epsilon, keep, symmetric, compat,
    permutations, bootstrap, confidence, interval, seed, ...); each measure takes those its
    function has (:meth:`MeasureSpec.compute`). "all" leaves out, and says why, the measures
    that cannot run here: kernel measures above ``kernel_max_n`` datapoints and
    matched-neuron measures when the widths differ. ``symmetric`` goes to directed measures
    only, ``keep`` to the measures that keep a share of variance by default (SVCCA), and ``compat`` (google/svcca's numbers) is refused for measures without it.
    """
    limit = kernel_max_n if subset is None or subset > kernel_max_n else max(X.shape) + 1  # a subset fits
    wanted, skipped = select_measures(measures, {"A": X.shape, "B": Y.shape}, layout, limit)
    compat = options.get("compat")
    if compat is not None:
        lacking = [m for m in wanted if "compat" not in registry.MEASURES[m].options]
        if lacking:
            with_compat = [m for m in registry.names() if "compat" in registry.MEASURES[m].options]
            raise ValueError(f"--compat applies to {' and '.join(with_compat)} only; google/svcca has no other "
                             f"function to match (asked for {', '.join(lacking)}).")
    factors = None
    if compat is None and any(registry.MEASURES[m].kind == "factor" for m in wanted):
        factors = (factorize(X, layout=layout, name="A"), factorize(Y, layout=layout, name="B"))
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 3):
        raise ValueError(f"subset must be a whole number of datapoints, at least 3; got {subset!r}.")
    axis = 1 if layout == "neurons_first" else 0
    n = X.shape[axis]
    rows = None
    if subset is not None and subset < n:
        import numpy as np

        rows = np.sort(np.random.default_rng(options.get("seed", 0)).choice(n, size=subset, replace=False))
    results = {}
    for name in wanted:
        spec = registry.MEASURES[name]
        opts = measure_options(spec, options)
        try:
            if spec.kind == "factor" and factors is not None:
                results[name] = spec.compute(*factors, **opts)
            elif rows is not None and spec.kind != "factor":
                xs, ys = (X[:, rows], Y[:, rows]) if axis else (X[rows], Y[rows])
                results[name] = spec.compute(xs, ys, layout=layout, **opts)
                if subsets is not None:
                    subsets[name] = {"datapoints": int(subset), "of": int(n), "seed": int(options.get("seed", 0))}
            else:
                results[name] = spec.compute(X, Y, layout=layout, **opts)
        except (ValueError, MemoryError) as err:
            if measures != "all":
                raise
            skipped[name] = str(err).rstrip(".")
    return results, skipped


def select_measures(measures, shapes: dict, layout: str = "datapoints_first",
                    kernel_max_n: int = RBF_MAX_N) -> tuple[list, dict]:
    """``(names, {skipped name: why})`` for ``measures`` ("all", one name or several) on
    arrays of ``shapes`` (name -> shape): "all" leaves out kernel measures above
    ``kernel_max_n`` datapoints and matched-neuron measures when the widths differ."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    first = next(iter(shapes.values()))
    n = first[1] if layout == "neurons_first" else first[0]
    skipped: dict[str, str] = {}
    if measures != "all":
        wanted = [measures] if isinstance(measures, str) else list(measures)
        for name in wanted:
            registry.check_measure(name)
        return wanted, skipped
    sides = list(shapes)
    together = " and ".join(sides) if len(sides) < 3 else ", ".join(sides[:-1]) + " and " + sides[-1]
    wanted = []
    for name in registry.names():
        spec = registry.MEASURES[name]
        if spec.kind == "kernel" and n > kernel_max_n:
            skipped[name] = (f"{n:,} datapoints: its n x n kernels are large above {kernel_max_n:,}; "
                             f"ask for it with -m {name}, or take a random subset of datapoints (--subset N)")
        elif spec.same_width and len(set(shapes.values())) > 1:
            skipped[name] = f"{together} have different widths; matched-neuron measures compare neuron i with neuron i"
        else:
            wanted.append(name)
    return wanted, skipped


def measure_options(spec, options: dict) -> dict:
    """The options of a multi-measure call that ``spec`` takes: ``symmetric`` for directed
    measures only, ``keep`` only where it is the measure's default (SVCCA's kept variance;
    PWCCA's optional thresholding stays off)."""
    opts = dict(options)
    if not spec.directed:
        opts.pop("symmetric", None)
    if spec.defaults.get("keep") is None:
        opts.pop("keep", None)
    return opts
