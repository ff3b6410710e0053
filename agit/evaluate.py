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
import math
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from .data import DomainFolder, counterfactual_folder_for, domain_folders, list_images, mask_folder_for, read_rgb, \
    test_filter
from .features import EXTRACTORS, MissingWeightsError, inception_weights_path, label_cnn, to_uint8
from .metrics import METRIC_KEYS, Reference, check_kid_protocol, evaluate_direction, fitting_subset_size, kid_estimate
from .progress import track
from .model import DIRECTIONS, REVERSE, AGGAN
from .run import Run

KID_EXTRACTORS = ("auto", *EXTRACTORS, "none")
# What each offline extractor's KID means, for the lines that name it.
MEANING = {
    "inception": "Inception-v3 features, the paper's and torch-fidelity's",
    "scene-cnn": "a classifier of object and background kind trained on agit's synthetic train split; "
                 "not comparable with Inception KID",
    "domain-cnn": "a classifier of the dataset's two domains trained on its train split: folders compared as "
                  "that classifier sees them; comparable between runs on this dataset only, not with Inception KID",
}


def choose_extractor(kid: str, data: Path | None) -> tuple[str, str]:
    """`kid`, or for 'auto' the best features at hand, and a line saying which and why: agit's
    synthetic data -> scene-cnn (its KID is not a domain detector); else Inception if its
    weights are on disk; else domain-cnn, trained on the dataset's own train split."""
    if kid != "auto":
        return kid, ""
    if data is not None and (data / "meta.json").is_file():
        return "scene-cnn", f"KID features: scene-cnn (agit's synthetic data): {MEANING['scene-cnn']}"
    try:
        inception_weights_path()
        return "inception", f"KID features: inception ({MEANING['inception']})"
    except MissingWeightsError as missing:
        if data is None:
            raise ValueError(f"{missing} Or pass --data DATASET (a folder with trainA/ and trainB/) for the "
                             f"offline domain-cnn features: {MEANING['domain-cnn']}") from None
        return "domain-cnn", (f"KID features: domain-cnn, as the Inception weights are not on this machine "
                              f"(agit evaluate --kid inception says where they go): {MEANING['domain-cnn']}")
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
    kid = choose_extractor(kid, data)[0]
    extractor = EXTRACTORS[kid](data, device) if kid != "none" else None
    feats = lambda x: extractor.fixed_set(to_uint8(x)) if extractor is not None and x is not None else None  # noqa: E731
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


def evaluate_run(run_dir, data_dir=None, kid: str = "auto", device=None, batch_size: int = 16,
                 kid_subsets: int = 10, kid_subset_size: int = 50, seed: int = 0) -> dict:
    """Every metric, both directions; writes and returns RUN/metrics.json's flat dict.

    `kid` 'auto': `choose_extractor`. A test set smaller than `kid_subset_size` makes the
    subsets that size (`fitting_subset_size`); `kid_note` (and the CLI) says so.
    """
    if kid not in KID_EXTRACTORS:
        raise ValueError(f"--kid must be one of {', '.join(KID_EXTRACTORS)}, got {kid!r}")
    check_kid_protocol(kid_subsets, kid_subset_size)
    start = time.time()
    run = Run(run_dir)
    model = run.load_model(device=device)
    data = Path(data_dir or model.cfg.data)
    kid, why = choose_extractor(kid, data)
    sets = test_sets(data, model.cfg.size, test_filter(model.cfg.resize_filter))
    note = ""
    if kid != "none":
        kid_subset_size, note = fitting_subset_size(kid_subset_size, *(len(s["inputs"]) for s in sets.values()))
    refs, extractor = references(data, sets, kid, device or "cpu")
    tests = {d: translate_test_set(model, sets[d]["inputs"], d, batch_size) for d in DIRECTIONS}
    result = {"kid_extractor": kid, "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size,
              "kid_note": "\n".join(filter(None, (why, note))), "data": str(data), "tau": model.cfg.tau,
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
    """A small text table: one row per metric, one column per direction; n/a where a metric
    needs what the run or data lack (masks, counterfactuals, KID features, attention)."""
    lines = [f"{'metric':<15}{'s2t':>12}{'t2s':>12}   (KID x100, extractor: {result['kid_extractor']})"]
    cell = lambda v: f"{'n/a':>12}" if v is None or math.isnan(v) else f"{v:>12.4g}"  # noqa: E731
    missing = []
    for k in METRIC_KEYS:
        values = [result.get(f"{k}_{d}") for d in DIRECTIONS]
        if all(v is None or math.isnan(v) for v in values):
            missing.append(k)
        else:
            lines.append(f"{k:<15}" + "".join(map(cell, values)))
    if missing:
        lines.append(f"n/a (need masks, counterfactuals, attention or KID features): {', '.join(missing)}")
    return "\n".join(lines)


def folder_images(folder: Path, size: int) -> torch.Tensor:
    """Every image of `folder` as uint8 size x size (what KID extractors take), with progress."""
    return torch.stack([TF.resize(read_rgb(p), [size, size], antialias=True)
                        for p in track(list_images(folder), f"reading {folder}", unit="img")])


def folder_kid(a_dir, b_dir, kid: str = "auto", data_dir=None, subsets: int = 10, subset_size: int = 50,
               device: str = "cpu", seed: int = 0) -> dict:
    """KID between two folders of images (torch-fidelity's `fidelity --kid --input1 A --input2 B`):
    {'kid', 'kid_std'} (not x100, as torch-fidelity), the extractor, the subset size used and
    the lines that say what was chosen and adapted."""
    data = Path(data_dir) if data_dir else None
    kid, why = choose_extractor(kid, data)
    if kid == "none":
        raise ValueError("agit kid needs features: --kid none measures nothing")
    if kid != "inception" and data is None:
        raise ValueError(f"--kid {kid} needs --data DATASET, the dataset whose train split its classifier learns")
    extractor = EXTRACTORS[kid](data, device)
    feats = [extractor(folder_images(Path(d), 299)) for d in (a_dir, b_dir)]
    size, note = fitting_subset_size(subset_size, *map(len, feats))
    mean, std = kid_estimate(*feats, subsets, size, seed, (str(a_dir), str(b_dir)))
    return {"kid": mean, "kid_std": std, "kid_extractor": kid, "kid_subsets": subsets, "kid_subset_size": size,
            "counts": [len(f) for f in feats], "kid_note": "\n".join(filter(None, (why, note)))}
