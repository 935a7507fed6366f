"""The pairs of a block from one large product of the stacked bases: per-pair kernels, the
measures' batched kernels where every representation has one rank, and the measures that
need the activations (matched neurons, RBF CKA)."""

from __future__ import annotations

import numpy as np

from ..core import registry
from ..core.cka import KernelPair, rbf_kernel
from ..core.hsic import centre_kernel, hsic_biased
from ..core.factor import Factor
from ..core.pairs import stack_bases

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .uncertainty import Uncertainty

__all__ = ["compute_local", "direct_values", "groups", "block_jobs", "block_values", "record"]


def pair_values(fx: Factor, fy: Factor, m: np.ndarray, spec: registry.MeasureSpec, epsilon: float, keep: float):
    """(value with fx's weights, value with fy's weights, details) for one pair."""
    return registry.from_cross(spec.name, fx, fy, m, epsilon=epsilon, keep=keep)


def direct_values(arrays: dict, pairs, spec: registry.MeasureSpec, params: dict, extra: "Uncertainty", kernels=None):
    """Pairs of the measures computed from the activations (matched neurons, RBF CKA, RSA,
    predictivity); both directions of a directed one.

    ``kernels`` caches each representation's centred RBF kernel, or the part its measure
    prepares (:attr:`~ccalens.core.registry.MeasureSpec.prepare`: RDM ranks, neighbour sets),
    across calls, so K representations cost K of them, not one per pair.
    """
    from ..core.resampling import bootstrap_values, jackknife_values, null_distribution

    kernels = {} if kernels is None else kernels
    measure = spec.name

    def kernel(name):
        if name not in kernels:
            rule = spec.fixed.get("bandwidth_rule", "median_distance")
            k = centre_kernel(rbf_kernel(arrays[name], params["bandwidth"], name, rule))
            kernels[name] = (k, hsic_biased(k, k))
        return kernels[name]

    def uncertainty(x, y, pair, rng):
        data, opts = (arrays[x], arrays[y]), {"bandwidth": params["bandwidth"]}
        vals = {}
        if extra.permutations:
            vals["null"] = null_distribution(measure, data, opts, extra.permutations, rng, kernels=pair)
        if extra.bootstrap:
            vals["boot"] = bootstrap_values(measure, data, opts, extra.bootstrap, rng, extra.method)
            if extra.method == "bca":
                vals["jack"] = jackknife_values(measure, data, opts, rng)
        return vals

    def prepared(name):
        if name not in kernels:
            kernels[name] = spec.prepare(arrays[name], name, **spec.fixed)
        return kernels[name]

    def value_of(x, y, pair):
        if spec.prepare is not None:  # each representation's part made once, each pair from two parts
            return spec.from_prepared(prepared(x), prepared(y))[0]
        try:
            # the measures of the activations (matched neurons, RSA, predictivity): their registered function
            return float(pair.value()[0] if pair else spec.compute(arrays[x], arrays[y]).similarity)
        except ValueError as err:  # name the representations behind "X" and "Y"
            raise ValueError(f"{x} (X) against {y} (Y): {err}") from None

    out = []
    for a, b in pairs:
        pair = KernelPair.from_centred(*kernel(a), *kernel(b)) if spec.kind == "kernel" else None
        v_ab = value_of(a, b, pair)
        directed = spec.directed and a != b
        v_ba = value_of(b, a, None) if directed else v_ab
        info: dict = {}
        if extra:
            forward = uncertainty(a, b, pair, np.random.default_rng(extra.seeds.get((a, b), 0)))
            reverse = uncertainty(b, a, None, np.random.default_rng(extra.seeds.get((a, b), 0))) if directed else forward
            extra.add(info, forward, reverse, measure, v_ab, v_ba, len(arrays[a]))
        out.append((a, b, v_ab, v_ba, info))
    return out


def groups(widths: dict[str, int], n_samples: int, block: int | None) -> list[list[str]]:
    """Blocks of representations, fixed by all of them (not by what is left to do), so a
    resumed run forms each block's product from the same matrices as an uninterrupted one."""
    labels = list(widths)
    if block is None:  # bases of about 1 GB per block
        block = max(1, int(1e9 // (8 * n_samples * max(widths.values()))))
    return [labels[i : i + block] for i in range(0, len(labels), block)]


def block_jobs(todo, blocks):
    """(group_a, group_b, pairs of that block) for every block with pairs left to do."""
    pending = {frozenset(pair): pair for pair in todo}  # each pair in its computing orientation
    for gi, group_a in enumerate(blocks):
        for group_b in blocks[gi:]:
            # (a, a) is pending only for measures whose self-similarity is computed (spec.identical None)
            keys = {frozenset((a, b)) for a in group_a for b in group_b} & pending.keys()
            pairs = sorted(pending.pop(key) for key in keys)
            if pairs:
                yield group_a, group_b, pairs


def block_values(fa: dict[str, Factor], fb: dict[str, Factor], same: bool, pairs, spec, params,
                  extra: "Uncertainty | None" = None):
    """Values of the given pairs from one batched product of the two groups' bases."""
    epsilon, keep = params["epsilon"], params["keep"]
    group_a, group_b = list(fa), list(fb)
    ops = fa[group_a[0]].ops
    offs_a = np.cumsum([0] + [fa[x].rank for x in group_a])
    stacked_a = _stack_bases(ops, [fa[x] for x in group_a])
    if same:
        gram, offs_b = ops.gram_native(stacked_a), offs_a
    else:
        offs_b = np.cumsum([0] + [fb[x].rank for x in group_b])
        gram = ops.cross_native(stacked_a, _stack_bases(ops, [fb[x] for x in group_b]))
    del stacked_a
    index_a = {x: k for k, x in enumerate(group_a)}
    index_b = {x: k for k, x in enumerate(group_b)}
    factors = {**fa, **fb}
    located = []
    for a, b in pairs:
        if a in index_a and b in index_b:
            located.append((a, b, index_a[a], index_b[b], False))
        else:  # b in group_a, a in group_b
            located.append((a, b, index_a[b], index_b[a], True))
    ranks = {factors[x].rank for x in factors}
    batched = spec.batched
    if batched is not None and not epsilon and len(ranks) == 1:
        out = _batched_values(ops, gram, located, factors, batched, ranks.pop())
    else:
        gram = ops.to_numpy(gram)
        out = []
        for a, b, ia, ib, flip in located:
            m = gram[offs_a[ia] : offs_a[ia + 1], offs_b[ib] : offs_b[ib + 1]]
            m = np.ascontiguousarray(m.T if flip else m)
            out.append((a, b, *pair_values(factors[a], factors[b], m, spec, epsilon, keep)))
    for a, b, v_ab, v_ba, info in out:  # kept with each pair, so a resumed run knows them
        info["ranks"] = [factors[a].rank, factors[b].rank]
        if extra:
            extra.factor_pair(info, a, b, factors[a], factors[b], spec.name, epsilon, keep, v_ab, v_ba)
        # one pair at a time: with permutations or bootstraps (the costly part), each pair is
        # committed as soon as it is finished, not when its whole block is
        yield a, b, v_ab, v_ba, info


def _batched_values(ops, gram, located, factors, batched, r):
    """All pairs of a block at once, where every representation has rank r.

    The (r x r) cross blocks are gathered into one (pairs, r, r) array, which the measure's
    batched kernel decomposes at once (one batched SVD, on the GPU when the data are CUDA
    tensors; see ``MeasureSpec.batched``).
    """
    rows, cols = gram.shape[0] // r, gram.shape[1] // r
    blocks = gram.reshape(rows, r, cols, r)
    blocks = blocks.permute(0, 2, 1, 3) if ops.name == "torch" else blocks.transpose(0, 2, 1, 3)
    ia = [loc[2] for loc in located]
    ib = [loc[3] for loc in located]
    m = blocks[ia, ib]  # (pairs, r, r): rows from the group_a side
    flip = np.array([loc[4] for loc in located])
    if flip.any():
        index = ops.torch.as_tensor(np.flatnonzero(flip), device=m.device) if ops.name == "torch" else np.flatnonzero(flip)
        m[index] = m[index].mT
    values = batched(ops, m, [factors[loc[0]].projections for loc in located],
                     [factors[loc[1]].projections for loc in located])
    return [(a, b, *v) for (a, b, *_), v in zip(located, values)]


def _stack_bases(ops, factors: list[Factor]):
    """The factors' orthonormal bases side by side, (n_samples x sum of ranks): with numpy,
    :func:`ccalens.core.pairs.stack_bases`; with torch, one concatenation on the device."""
    if ops.name == "torch":
        return ops.torch.cat([f.basis() for f in factors], dim=1)
    return stack_bases(factors, ops.dtype)


def record(results, store, done, bar) -> int:
    """Keep (and commit) each pair as it arrives; returns how many arrived."""
    count = 0
    for a, b, v_ab, v_ba, info in results:
        done[(a, b)] = (v_ab, v_ba, info)
        if store:
            store.add(a, b, v_ab, v_ba, info)
        if bar:
            bar.update(1)
        count += 1
    return count


def compute_local(todo, factors, spec, params, block, store, done, progress, extra, direct) -> int:
    """Compute the pairs in ``todo`` block by block; returns how many were computed."""
    if not todo:
        return 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="pairs", unit="pair")
    computed = 0
    if direct:  # one pair at a time, each committed as it finishes
        kernels: dict = {}
        for pair in todo:
            computed += record(direct_values(factors, [pair], spec, params, extra, kernels), store, done, bar)
        if bar:
            bar.close()
        return computed
    first = next(iter(factors.values()))
    blocks = groups({k: f.rank for k, f in factors.items()}, first.n_samples, block)
    for group_a, group_b, pairs in block_jobs(todo, blocks):
        fa = {x: factors[x] for x in group_a}
        fb = fa if group_b is group_a else {x: factors[x] for x in group_b}
        computed += record(block_values(fa, fb, group_b is group_a, pairs, spec, params, extra), store, done, bar)
    if bar:
        bar.close()
    return computed
