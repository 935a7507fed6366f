"""``ccalens extract MODEL``: record layer activations into a store."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common

DATASETS = ("digits", "fashion-mnist", "cifar10")


def load_model(spec: str, state_dict: Optional[str], trust_pickle: bool):
    """A torch module from ``module:function`` (+ state dict), a TorchScript file, or a pickle."""
    import torch

    if ":" in spec and not Path(spec).exists():
        module_name, func_name = spec.rsplit(":", 1)
        import sys

        if "" not in sys.path and str(Path.cwd()) not in sys.path:  # as ``python -m`` does: the current
            sys.path.insert(0, str(Path.cwd()))  # folder's packages are importable (mypkg.models:make_cnn)
        try:
            factory = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load model factory {spec!r}: {err}. Use module.path:function, importable "
                             f"from the current folder or the Python path.") from None
        model = factory()
        if state_dict:
            weights = torch.load(state_dict, map_location="cpu", weights_only=True)
            try:
                result = model.load_state_dict(weights, strict=False)
            except RuntimeError as err:  # shapes that do not fit: torch's message spans lines
                detail = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
                raise ValueError(f"{state_dict} does not fit the model {spec}: {detail}") from None
            if result.missing_keys or result.unexpected_keys:
                raise ValueError(f"{state_dict} does not fit the model {spec}: missing keys "
                                 f"{_keys(result.missing_keys)}; unexpected keys {_keys(result.unexpected_keys)}. "
                                 f"Pass the factory that built the weights, or weights saved from this model.")
        return model
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path} (or pass module.path:function for a factory)")
    if state_dict:
        raise ValueError("--state-dict goes with a module:function factory, not with a model file.")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still read
            return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:
        pass
    if not trust_pickle:
        raise ValueError(
            f"{path} is not a TorchScript file. If it is a whole model saved with torch.save(model), "
            f"loading it runs code from the file: pass --trust-pickle if you trust it, or save a "
            f"state_dict and use a module:function factory."
        )
    return torch.load(path, map_location="cpu", weights_only=False)


def _keys(keys) -> str:
    keys = list(keys)
    return "none" if not keys else ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def load_inputs(data: str, data_dir: Optional[str], split: str, limit: Optional[int]):
    """Model inputs from a dataset name or an array file."""
    from .. import datasets
    from ..store import load_array

    if data in DATASETS:
        loader = {"digits": lambda: datasets.digits(), "fashion-mnist": lambda: datasets.fashion_mnist(data_dir),
                  "cifar10": lambda: datasets.cifar10(data_dir)}[data]
        if data == "cifar10" and data_dir is None:
            raise ValueError("cifar10 needs --data-dir pointing at the cifar-10-batches-py folder.")
        ds = loader()
        x = ds.x_train if split == "train" else ds.x_test
    else:
        x = load_array(data)
    return x if limit is None else x[:limit]


@_common.friendly
def extract(
    model: Annotated[str, typer.Argument(help="module.path:function factory (with --state-dict), a TorchScript file, or a torch.save'd model (--trust-pickle).")],
    layers: Annotated[str, typer.Option("--layers", "-l", help="Comma-separated module names (see --list-layers).")] = "",
    data: Annotated[str, typer.Option("--data", "-d", help=f"One of {', '.join(DATASETS)}, or an array file (.npy, .npz:KEY, .pt, ...).")] = "digits",
    out: Annotated[Path, typer.Option("--out", "-o", help="The store to write (a .zarr directory).")] = Path("activations.zarr"),
    state_dict: Annotated[Optional[str], typer.Option("--state-dict", help="Weights for a factory model.")] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Group name for this model's arrays in the store.")] = "",
    spatial: Annotated[str, typer.Option("--spatial", help="Conv layers: mean, flatten or as_samples.")] = "mean",
    sequence: Annotated[str, typer.Option("--sequence", help="Sequence layers: last, all, mean, each, or a timestep.")] = "last",
    split: Annotated[str, typer.Option("--split", help="Dataset split: train or test.")] = "train",
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Folder of fashion-mnist or cifar10 files.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N datapoints.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help="Checkpoint or training step, kept in the metadata.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace arrays that already exist.")] = False,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow loading a pickled whole model.")] = False,
    list_layers: Annotated[bool, typer.Option("--list-layers", help="Print the model's layer names and stop.")] = False,
) -> None:
    """Run MODEL on data and store each layer's (datapoints, neurons) activations."""
    from ..extract import extract as run_extract
    from ..extract import layer_names
    from ..store import ActivationStore, fingerprint

    _common.check_positive("--limit", limit)
    _common.check_out_dir(out)
    _common.check_positive("--batch-size", batch_size)
    net = load_model(model, state_dict, trust_pickle)
    if list_layers:
        for name in layer_names(net):
            typer.echo(name)
        return
    names = [n.strip() for n in layers.split(",") if n.strip()]
    if not names:
        raise ValueError("--layers is empty; name at least one layer (ccalens extract MODEL --list-layers shows them).")
    if split not in ("train", "test"):
        raise ValueError(f"--split must be train or test; got {split!r}.")
    seq = int(sequence) if sequence.lstrip("-").isdigit() else sequence
    x = load_inputs(data, data_dir, split, limit)
    store = ActivationStore(out)
    writer = store.writer(
        prefix, overwrite=overwrite, model=model, checkpoint=checkpoint, dataset=data, split=split,
        dataset_fingerprint=fingerprint(x), datapoints=int(len(x)),
    )
    writer.check_free(names)  # before the pass (and its progress bar), not after its first batch
    run_extract(net, x, names, spatial=spatial, sequence=seq, batch_size=batch_size, store=writer, progress=True)
    typer.echo(f"wrote {len(writer.arrays)} array(s) for {len(x):,} datapoints to {out}")
