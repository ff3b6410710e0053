"""Evaluate a trained run on its dataset's test split: KID (paper protocol) and ground-truth metrics.

For each direction, the source test set is translated once; the outputs are
scored against the target and source test sets (KID, Table 1's protocol) and,
where masks exist, against the true object masks. Results land in
``RUN/metrics.json`` as flat keys with a direction suffix (``kid_s2t`` …).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .data import domain_folders, mask_folder_for
from .metrics import EXTRACTORS, DomainCNN, evaluate_direction, to_uint8
from .model import DIRECTIONS, AGGAN
from .run import Run
from .translate import translate_dataset

METRIC_KEYS = ("kid", "kid_std", "iou", "iou_sweep", "bg_psnr", "fg_change", "empty_att", "target_rate")


def translate_test_set(model: AGGAN, folder: Path, direction: str, batch_size: int = 16) -> dict:
    """Inputs, outputs, attention (None for methods without it) and masks (None if absent) of one test set."""
    parts = {"inputs": [], "outputs": [], "attention": [], "masks": []}
    for batch, tr in translate_dataset(model, folder, direction, batch_size, mask_folder_for(folder)):
        parts["inputs"].append(batch["image"])
        parts["outputs"].append(tr.image.cpu())
        parts["attention"].append(tr.attention.cpu())
        if "mask" in batch:
            parts["masks"].append(batch["mask"])
    out = {k: torch.cat(v) if v else None for k, v in parts.items()}
    if out["masks"] is not None and len(out["masks"]) != len(out["inputs"]):
        out["masks"] = None  # only some files have masks: not a ground truth for the set
    if model.attention_net(direction) is None:
        out["attention"] = None  # attention identically 1 says nothing about where the object is
    return out


def _features(extractor, sets: dict) -> dict:
    return {k: extractor(to_uint8(v)) for k, v in sets.items()}


def evaluate_run(run_dir, data_dir=None, kid: str = "domain-cnn", device=None, batch_size: int = 16,
                 kid_subsets: int = 10, kid_subset_size: int = 50, seed: int = 0) -> dict:
    """Every metric, both directions; writes and returns RUN/metrics.json's flat dict."""
    if kid not in (*EXTRACTORS, "none"):
        raise ValueError(f"--kid must be one of {', '.join(EXTRACTORS)} or none, got {kid!r}")
    start = time.time()
    run = Run(run_dir)
    model = run.load_model(device=device)
    data = Path(data_dir or model.cfg.data)
    folders = dict(zip(DIRECTIONS, domain_folders(data, "test")))  # s2t translates testA
    extractor = EXTRACTORS[kid](data, device or "cpu") if kid != "none" else None
    tests = {d: translate_test_set(model, folders[d], d, batch_size) for d in DIRECTIONS}
    refs = _features(extractor, {d: t["inputs"] for d, t in tests.items()}) if extractor else None
    classifier = DomainCNN.for_dataset(data, device or "cpu") if kid == "domain-cnn" else None
    result = {"kid_extractor": kid, "data": str(data), "tau": model.cfg.tau}
    for d, test in tests.items():
        other = "t2s" if d == "s2t" else "s2t"
        prob_target = None
        if classifier is not None:
            prob_target = classifier.prob_b if d == "s2t" else (lambda x: 1 - classifier.prob_b(x))
        m = evaluate_direction(test["inputs"], test["outputs"], test["attention"], test["masks"],
                               refs[d] if refs else None, refs[other] if refs else None, extractor,
                               prob_target, tau=model.cfg.tau, kid_subsets=kid_subsets,
                               kid_subset_size=kid_subset_size, seed=seed)
        result.update({f"{k}_{d}": m[k] for k in METRIC_KEYS})
    result["seconds"] = round(time.time() - start, 2)
    run.write_metrics(result)
    return result


def format_table(result: dict) -> str:
    """A small text table: one row per metric, one column per direction."""
    lines = [f"{'metric':<12}{'s2t':>12}{'t2s':>12}   (KID x100, extractor: {result['kid_extractor']})"]
    for k in METRIC_KEYS:
        lines.append(f"{k:<12}" + "".join(f"{result[f'{k}_{d}']:>12.4g}" for d in DIRECTIONS))
    return "\n".join(lines)
