"""The README's figure of one native-size translation: a wide synthetic scene through a trained run.

    python tools/native_size_figure.py --run results/quick/runs/synthetic/ours --out docs/native_size.png

The scene is drawn like the synthetic dataset (`agit.synthetic`, the default pair's
backgrounds) at 1.5 times the run's training size, then cropped to a 3:2 landscape
of odd height: neither square, nor the training size, nor a multiple of 4.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from agit import figures
from agit.run import Run
from agit.synthetic import SYNTHETIC_PAIRS, make_synthetic


def wide_scene(train_size: int, folder: Path, seed: int = 3) -> Path:
    """A landscape crop around the animal of the first test image (domain A) that has one."""
    side = round(1.5 * train_size)
    data = make_synthetic(folder, "scene", size=side, n_train=0, n_test=8, seed=seed, **SYNTHETIC_PAIRS["synthetic"])
    free = set(json.loads((data / "meta.json").read_text())["animal_free"]["testA"])
    name = next(p.name for p in sorted((data / "testA").iterdir()) if p.name not in free)
    mask = np.asarray(Image.open(data / "testA_mask" / name)) > 127
    height = round(side * 2 / 3) | 1
    centre = int(np.nonzero(mask.any(axis=1))[0].mean())
    top = min(max(centre - height // 2, 0), side - height)
    path = folder / f"scene_{side}x{height}.png"
    Image.open(data / "testA" / name).crop((0, top, side, top + height)).save(path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained run on the synthetic pair")
    p.add_argument("--out", default="docs/native_size.png")
    p.add_argument("--direction", default="s2t", choices=["s2t", "t2s"])
    args = p.parse_args(argv)
    train_size = Run(args.run).config().size
    with tempfile.TemporaryDirectory() as tmp:
        scene = wide_scene(train_size, Path(tmp))
        print(figures.save(figures.native_size(args.run, scene, args.direction), args.out, dpi=150))


if __name__ == "__main__":
    main()
