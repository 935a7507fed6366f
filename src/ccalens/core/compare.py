"""Several measures of one pair at once: each side is factorised once and reused by every
measure computed from factors (``ccalens compare -m all``)."""

from __future__ import annotations

from . import registry
from .factor import factorize

__all__ = ["RBF_MAX_N", "compare_measures", "measure_options", "select_measures"]

#: "all" skips kernel measures (RBF CKA) above this many datapoints: their n x n kernels
RBF_MAX_N = 5000


def compare_measures(X, Y, measures="all", *, layout: str = "datapoints_first", kernel_max_n: int = RBF_MAX_N,
                     **options) -> tuple[dict, dict]:
    """``({name: result}, {skipped name: why})`` for ``measures`` ("all", one name or several).

    ``options`` are the measures' keyword arguments (epsilon, keep, symmetric, compat,
    permutations, bootstrap, confidence, interval, seed, ...); each measure takes those its
    function has (:meth:`MeasureSpec.compute`). "all" leaves out, and says why, the measures
    that cannot run here: kernel measures above ``kernel_max_n`` datapoints and
    matched-neuron measures when the widths differ. ``symmetric`` goes to directed measures
    only, ``keep`` to the measures that keep a share of variance by default (SVCCA), and ``compat`` (google/svcca's numbers) is refused for measures without it.
    """
    wanted, skipped = select_measures(measures, {"A": X.shape, "B": Y.shape}, layout, kernel_max_n)
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
    results = {}
    for name in wanted:
        spec = registry.MEASURES[name]
        opts = measure_options(spec, options)
        if spec.kind == "factor" and factors is not None:
            results[name] = spec.compute(*factors, **opts)
        else:
            results[name] = spec.compute(X, Y, layout=layout, **opts)
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
                             f"ask for it with -m {name}")
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
