"""``pairwise`` on a Dask cluster: blocks as tasks that read their representations (from
the store, for store paths), factorise them and return the block's values; the client
commits them as they arrive."""

from __future__ import annotations

from pathlib import Path

from .blocks import block_jobs, block_values, direct_values, groups, record
from .sources import factor_of, host_array, load

__all__ = ["compute_dask"]


def _remote_block(sources_a: dict, sources_b: dict, same: bool, pairs, spec, params, extra):
    """A Dask task: read (from the store, for store paths) and factorise, then one block."""
    if spec.kind != "factor":
        arrays = {k: load(v, k) for k, v in {**sources_a, **sources_b}.items()}
        return direct_values(arrays, pairs, spec, params, extra)
    fa = {k: factor_of(v, k, params["rtol"]) for k, v in sources_a.items()}
    fb = fa if same else {k: factor_of(v, k, params["rtol"]) for k, v in sources_b.items()}
    return list(block_values(fa, fb, same, pairs, spec, params, extra))


def _client(scheduler):
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def compute_dask(scheduler, todo, shapes, sources, spec, params, block, store, done, extra) -> int:
    """The same blocks as Dask tasks; results are committed as each task finishes."""
    if not todo:
        return 0
    from dask.distributed import as_completed

    client, cluster = _client(scheduler)
    try:
        # arrays go to every worker once (so that a worker lost midway loses no input: a
        # single copy made its tasks fail with "lost dependencies"); store paths travel as
        # text and are read where they are used
        shipped = {k: (v if isinstance(v, (str, Path)) else client.scatter(host_array(v), broadcast=True))
                   for k, v in sources.items()}
        n_samples = next(iter(shapes.values()))[0]
        # neuron counts stand in for ranks here: the blocks are fixed before anything is read
        blocks = groups({k: shape[1] for k, shape in shapes.items()}, n_samples, block)
        futures = []
        for group_a, group_b, pairs in block_jobs(todo, blocks):
            same = group_b is group_a
            futures.append(client.submit(
                _remote_block, {x: shipped[x] for x in group_a}, {x: shipped[x] for x in group_b},
                same, pairs, spec, params, extra, pure=False, retries=2,
            ))
        computed = 0
        for future in as_completed(futures):
            computed += record(future.result(), store, done, None)
        return computed
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
