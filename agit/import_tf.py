"""`agit import-tf`: the authors' released TF1 checkpoints as agit runs (preset `official`).

The authors trained with `main.py`, whose `tf.train.Saver` writes `AGGAN-<epoch>.index` and
`AGGAN-<epoch>.data-*` (TF's checkpoint format V2). Reading that format takes TensorFlow
(`pip install 'agit[crosscheck]'`): no reader outside TF is maintained. Everything after
the reading, the name mapping (agit.released) and writing the run, needs none, and is
what the tests check without TensorFlow.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .config import preset
from .released import is_network_variable, load_released, source_domain
from .run import Run, RunExists


def checkpoint_prefix(path: str | Path) -> Path:
    """The checkpoint's prefix (`…/AGGAN-99`) from the prefix, its .index or .data file, or its folder."""
    path = Path(path)
    if path.is_dir():
        indexes = sorted(path.glob("*.index"), key=lambda p: _step(p.stem))
        if not indexes:
            raise ValueError(f"not a TF checkpoint: {path} holds no .index file")
        return indexes[-1].with_suffix("")
    prefix = Path(re.sub(r"\.(index|data-\d+-of-\d+)$", "", str(path)))
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise ValueError(f"not a TF checkpoint: no {prefix.name}.index beside {path}")
    return prefix


def _step(stem: str) -> int:
    found = re.search(r"-(\d+)$", stem)
    return int(found.group(1)) if found else -1


def read_checkpoint(prefix: Path) -> dict[str, np.ndarray]:
    """{variable name: array} of the networks' variables (and global_step), read by TensorFlow."""
    try:
        import tensorflow as tf
    except ImportError:
        raise RuntimeError("reading a TF checkpoint needs TensorFlow: pip install 'agit[crosscheck]'") from None
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        names = [n for n in reader.get_variable_to_shape_map() if is_network_variable(n) or n == "global_step"]
        return {n: reader.get_tensor(n) for n in names}
    except (tf.errors.OpError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read the TF checkpoint {prefix}: {first[:200]} (a partial or corrupt checkpoint?)") \
            from None


def write_imported_run(arrays: Mapping[str, np.ndarray], out: str | Path, source: str, overwrite: bool = False,
                       swap: bool = False, **overrides) -> Run:
    """An agit run folder holding the released weights `arrays`: config (official and `overrides`),
    checkpoint, provenance naming `source`. Checks everything before writing anything.

    `swap`: the checkpoint's domain B (`input_b`) becomes the source S, its B->A networks agit's
    s2t. The released code's A and B are whatever its CSV listed first; the authors' own
    horse2zebra model has input_a = zebra.
    """
    from . import AGGAN
    from .info import provenance

    cfg = preset("official", **overrides)
    model = AGGAN(cfg)
    load_released(model, arrays, swap)  # raises on any missing, unexpected or misshapen variable
    run = Run(out)
    if run.run_files() and not overwrite:
        raise RunExists(f"{out} already holds a run ({', '.join(run.run_files())}); choose another --out "
                        f"or pass --overwrite")
    # saver.save(..., global_step=epoch) runs before epoch `epoch` trains: the weights of `epoch` epochs
    epochs = int(arrays["global_step"]) if "global_step" in arrays else None
    run.start(cfg, overwrite=overwrite)
    run.save_checkpoint({"model": model.state_dict(), "config": cfg.to_dict(),
                         "epoch": epochs if epochs is not None else cfg.epochs, "step": 0})
    run.write_provenance({**provenance(), "imported_from": {
        "checkpoint": source, "format": "TensorFlow 1 checkpoint (V2) of the authors' released code",
        "epochs_trained": epochs, "source_domain": source_domain(swap),
        "variables": len([k for k in arrays if is_network_variable(k)]),
        "imported": time.strftime("%Y-%m-%d %H:%M:%S %Z")}})
    return run


def import_checkpoint(checkpoint: str | Path, out: str | Path, overwrite: bool = False, swap: bool = False,
                      **overrides) -> Run:
    """`agit import-tf CHECKPOINT --out RUN [--swap-domains]`."""
    prefix = checkpoint_prefix(checkpoint)
    return write_imported_run(read_checkpoint(prefix), out, str(prefix.resolve()), overwrite, swap, **overrides)
