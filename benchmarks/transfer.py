"""Does the quick recipe transfer? The `quick` preset, unchanged, on synthetic pairs it was not tuned on.

    python benchmarks/transfer.py [--pairs synthetic_fruit synthetic_stars synthetic_hard] [--seeds 2]

Trains Ours (each seed) and CycleGAN (seed 0) on every pair with `agit.synthetic.SYNTHETIC_PAIRS`'
options at the quick preset's size, evaluates them like the quick profile (scene-cnn KID, counterfactual
columns, ground truth), and writes results/transfer/transfer.{json,md}: per run and, for Ours, mean ±
std over seeds. Two runs at a time, one torch thread each, as `make reproduce` trains.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("cf_kid", "texture", "cf_psnr", "object_target", "iou", "bg_psnr", "empty_att")


def train_and_evaluate(task: tuple[str, str, int, str, str]) -> dict:
    pair, variant, seed, data_root, out = task
    import torch

    torch.set_num_threads(1)
    from agit import preset
    from agit.evaluate import evaluate_run
    from agit.train import Trainer

    run = Path(out) / "runs" / pair / f"{variant}_seed{seed}"
    start = time.time()
    cfg = preset("quick", data=str(Path(data_root) / pair), variant=variant, seed=seed)
    Trainer(cfg, run, overwrite=True).fit(progress=False)
    metrics = evaluate_run(run, kid="scene-cnn")
    return {"pair": pair, "method": {"ours": "Ours", "cyclegan": "CycleGAN"}[variant], "seed": seed,
            "seconds": round(time.time() - start), **{f"{k}_{d}": metrics[f"{k}_{d}"] for k in COLUMNS
                                                     for d in ("s2t", "t2s")}}


def main():
    from agit import preset
    from agit.evaluate import prepare_classifiers
    from agit.synthetic import SYNTHETIC_PAIRS, make_synthetic

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["synthetic_fruit", "synthetic_stars", "synthetic_hard"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(ROOT / "results" / "transfer"))
    args = parser.parse_args()
    size = preset("quick").size
    for pair in args.pairs:  # made, and their classifiers trained, once before the workers start
        prepare_classifiers(make_synthetic(args.data, pair, size=size, **SYNTHETIC_PAIRS[pair]), "scene-cnn")
    tasks = [(p, "ours", s, args.data, args.out) for p in args.pairs for s in range(args.seeds)]
    tasks += [(p, "cyclegan", 0, args.data, args.out) for p in args.pairs]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = pool.map(train_and_evaluate, tasks, chunksize=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(rows, indent=1))
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c.endswith(("_s2t", "_t2s"))]
    summary = table.groupby(["pair", "method"])[metrics].agg(["mean", "std"])
    cells = {(pair, method): {m: f"{summary.loc[(pair, method), (m, 'mean')]:.3g}"
                              + ("" if pd.isna(summary.loc[(pair, method), (m, 'std')])
                                 else f" ± {summary.loc[(pair, method), (m, 'std')]:.2g}") for m in metrics}
             for pair, method in summary.index}
    md = pd.DataFrame.from_dict(cells, orient="index")
    md.index.names = ["pair", "method"]
    text = (f"The `quick` preset, unchanged, on synthetic pairs it was not tuned on ({size} px, "
            f"`scene-cnn` features). Ours: mean ± std over {args.seeds} seeds; CycleGAN: seed 0. "
            "s2t is A→B (horse→zebra, apple→orange, star→leopard).\n\n"
            + md.to_markdown() + "\n\nPer run:\n\n" + table.to_markdown(index=False, floatfmt=".3g") + "\n")
    (out / "transfer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
