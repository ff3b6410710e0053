"""Evaluate a trained run on its dataset's test split: the counterfactual metrics, KID (the
paper's protocol) and the ground-truth metrics.

For each direction the source test set is translated once; the outputs are scored
against the direction's `Reference` — the test sets' KID features, the counterfactuals
(the true translations, where the dataset has `test*_counterfactual/`), the object
classifier — and, where masks exist, against the true object masks. Results land in
``RUN/metrics.json`` as flat keys with a direction suffix (``cf_kid_s2t`` …).

`evaluate_references` scores what needs no training the same way: the input returned
unchanged (identity), and on agit's synthetic data a second rendering of the
counterfactuals and a repaint of the background — the floor and ceiling that give a
table's numbers their meaning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from .data import DomainFolder, counterfactual_folder_for, domain_folders, mask_folder_for, test_filter
from .features import EXTRACTORS, label_cnn, to_uint8
from .metrics import METRIC_KEYS, Reference, evaluate_direction
from .model import DIRECTIONS, REVERSE, AGGAN
from .run import Run

KID_EXTRACTORS = (*EXTRACTORS, "none")
REFERENCES = ("identity", "counterfactual_again", "repaint")  # evaluate_references' kinds


@torch.no_grad()
def translate_test_set(model: AGGAN, inputs: torch.Tensor, direction: str,
                       batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Outputs and attention of `inputs` (a test set of `test_sets`), in batches; attention None for
    methods without it (identically 1, it says nothing about where the object is)."""
    device = next(model.parameters()).device
    parts = [model.translate(x.to(device), direction) for x in inputs.split(batch_size)]
    has_attention = model.attention_net(direction) is not None
    attention = torch.cat([p.attention.cpu() for p in parts]) if has_attention else None
    return torch.cat([p.image.cpu() for p in parts]), attention


def test_sets(data: Path, size: int, resize_filter: str = "bicubic") -> dict[str, dict]:
    """Per direction: the source test images, their masks and counterfactuals (None where absent), at `size`."""
    sets = {}
    for direction, folder in zip(DIRECTIONS, domain_folders(data, "test")):
        images = DomainFolder(folder, size, mask_folder=mask_folder_for(folder), resize_filter=resize_filter)
        items = [images[i] for i in range(len(images))]
        masks = torch.stack([it["mask"] for it in items]) if all("mask" in it for it in items) else None
        cf_folder = counterfactual_folder_for(folder)
        counterfactuals = None
        if cf_folder:
            cf = DomainFolder(cf_folder, size, resize_filter=resize_filter)
            if [p.name for p in cf.paths] != [p.name for p in images.paths]:
                raise ValueError(f"{cf_folder} must hold one counterfactual per image of {folder}, same names")
            counterfactuals = torch.stack([cf[i]["image"] for i in range(len(cf))])
        sets[direction] = dict(inputs=torch.stack([it["image"] for it in items]), masks=masks,
                               counterfactuals=counterfactuals, paths=images.paths)
    return sets


def references(data: Path, sets: dict, kid: str, device: str = "cpu") -> tuple[dict[str, Reference], object]:
    """Each direction's Reference and the KID extractor (None for kid='none')."""
    if kid not in KID_EXTRACTORS:
        raise ValueError(f"--kid must be one of {', '.join(KID_EXTRACTORS)}, got {kid!r}")
    extractor = EXTRACTORS[kid](data, device) if kid != "none" else None
    feats = lambda x: extractor(to_uint8(x)) if extractor is not None and x is not None else None  # noqa: E731
    test_feats = {d: feats(s["inputs"]) for d, s in sets.items()}
    objects = label_cnn(data, "object", device) if _has_train_masks(data) else None
    refs = {}
    for d, s in sets.items():
        target_class = DIRECTIONS.index(d) ^ 1  # s2t's target is B's object (class 1)
        refs[d] = Reference(
            source_feats=test_feats[d], target_feats=test_feats[REVERSE[d]],
            counterfactuals=s["counterfactuals"], counterfactual_feats=feats(s["counterfactuals"]),
            object_target=(lambda x, c=target_class: objects.probs(x, "object")[:, c]) if objects else None)
    return refs, extractor


def _has_train_masks(data: Path) -> bool:
    return all(mask_folder_for(f) for f in domain_folders(data, "train"))


def prepare_classifiers(data_dir, kid: str, device: str = "cpu"):
    """Train (or find cached) the offline networks that evaluating on `data_dir` uses: once,
    before parallel evaluations would each train them."""
    data = Path(data_dir)
    kinds = {"scene-cnn": ["scene"], "domain-cnn": ["domain"]}.get(kid, []) + (["object"] if _has_train_masks(data) else [])
    for kind in kinds:
        label_cnn(data, kind, device)


def _score(outputs: dict, attention: dict, sets: dict, refs: dict, extractor, tau: float, kid_subsets: int,
           kid_subset_size: int, seed: int) -> dict:
    result = {}
    for d in DIRECTIONS:
        m = evaluate_direction(sets[d]["inputs"], outputs[d], attention[d], sets[d]["masks"], refs[d], extractor,
                               tau=tau, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed)
        result.update({f"{k}_{d}": m[k] for k in METRIC_KEYS})
    return result


def evaluate_run(run_dir, data_dir=None, kid: str = "scene-cnn", device=None, batch_size: int = 16,
                 kid_subsets: int = 10, kid_subset_size: int = 50, seed: int = 0) -> dict:
    """Every metric, both directions; writes and returns RUN/metrics.json's flat dict."""
    if kid not in KID_EXTRACTORS:
        raise ValueError(f"--kid must be one of {', '.join(KID_EXTRACTORS)}, got {kid!r}")
    start = time.time()
    run = Run(run_dir)
    model = run.load_model(device=device)
    data = Path(data_dir or model.cfg.data)
    sets = test_sets(data, model.cfg.size, test_filter(model.cfg.resize_filter))
    refs, extractor = references(data, sets, kid, device or "cpu")
    tests = {d: translate_test_set(model, sets[d]["inputs"], d, batch_size) for d in DIRECTIONS}
    result = {"kid_extractor": kid, "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size,
              "data": str(data), "tau": model.cfg.tau,
              **_score({d: t[0] for d, t in tests.items()}, {d: t[1] for d, t in tests.items()},
                       sets, refs, extractor, model.cfg.tau, kid_subsets, kid_subset_size, seed)}
    result["seconds"] = round(time.time() - start, 2)
    run.write_metrics(result)
    return result


def evaluate_references(data_dir, size: int, kid: str = "scene-cnn", kinds=REFERENCES, device: str = "cpu",
                        kid_subsets: int = 10, kid_subset_size: int = 50, seed: int = 0) -> dict[str, dict]:
    """The metrics of outputs that need no training, keyed by kind (flat dicts like metrics.json).

    'identity': every input returned unchanged. On agit's synthetic data (meta.json) also
    'counterfactual_again': the counterfactuals rendered afresh (new stripe phase and count,
    coat tint; same scenes), what a perfect method could at best be expected to match; and
    'repaint': the input with its background swapped to the other domain's kind, object kept,
    what a method that repaints the whole image and forgets the object would give.
    """
    from .synthetic import render_image

    data = Path(data_dir)
    sets = test_sets(data, size)
    refs, extractor = references(data, sets, kid, device)
    meta_file = data / "meta.json"
    params = json.loads(meta_file.read_text())["params"] if meta_file.is_file() else None
    out = {}
    for kind in kinds:
        if kind == "identity":
            outputs = {d: s["inputs"] for d, s in sets.items()}
        elif params is None:
            continue
        else:
            outputs = {}
            for d, s in sets.items():
                domain = "AB"[DIRECTIONS.index(d)]
                rendered = [render_image(params, "test", domain, int(p.stem), kind)[0] for p in s["paths"]]
                outputs[d] = _as_test_image(torch.from_numpy(np.stack(rendered)).permute(0, 3, 1, 2), size)
        out[kind] = _score(outputs, dict.fromkeys(DIRECTIONS), sets, refs, extractor, 0.1, kid_subsets,
                           kid_subset_size, seed)
    return out


def _as_test_image(images_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 renderings as the evaluation sees test images (agit.data's resize), in [-1, 1]."""
    if images_uint8.shape[-1] != size or images_uint8.shape[-2] != size:
        images_uint8 = TF.resize(images_uint8, [size, size], TF.InterpolationMode.BICUBIC, antialias=True)
    return images_uint8.float() / 127.5 - 1


def format_table(result: dict) -> str:
    """A small text table: one row per metric, one column per direction."""
    lines = [f"{'metric':<15}{'s2t':>12}{'t2s':>12}   (KID x100, extractor: {result['kid_extractor']})"]
    for k in METRIC_KEYS:
        lines.append(f"{k:<15}" + "".join(f"{result[f'{k}_{d}']:>12.4g}" for d in DIRECTIONS))
    return "\n".join(lines)
