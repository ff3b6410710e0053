"""Metrics: KID (the paper's Table 1 protocol) and ground-truth metrics for data with masks.

KID (Bińkowski et al., 2018) is the squared maximum mean discrepancy between two
sets of image features under the polynomial kernel k(x, y) = (xᵀy/d + 1)³, with
the unbiased estimator. The paper reports, for translated test images, the mean of
KID against the *target* test set and KID against the *source* test set (a good
translation changes the object and keeps the background), averaged over 10 random
subsets of 50 images, ×100.

Features come from a named extractor in ``EXTRACTORS``:

* ``'inception'``: 2048-d pool features of the TF-compatible Inception-v3 used for
  FID/KID (``inception-v3-compat`` in torch-fidelity). Its weights must be on disk.
* ``'domain-cnn'``: penultimate features of a small A-vs-B classifier trained on the
  dataset's own train split. Needs no download; numbers are *not* comparable with
  Inception KID, so every KID result carries its extractor's name.

Where ground-truth masks exist (the synthetic data), the claims of the paper can be
measured directly: does the attention cover the object (IoU), is the background
left alone (PSNR outside the mask), does the object change, is attention near zero
on images without an object (the paper's Fig. 17), and is the result classified as
the target domain.

Conventions: images are float tensors in [-1, 1], N×3×H×W; masks and attention
maps are N×1×H×W, masks in {0, 1}, attention in [0, 1]; extractors take uint8.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from .data import domain_folders, list_images, read_rgb
from .run import Run

# --------------------------------------------------------------------------- KID


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased squared MMD between feature sets x (m×d) and y (n×d), polynomial kernel.

    The diagonals of k(x, x) and k(y, y) are left out: a sample compared with itself
    is what biases the plain estimate upward, and it matters with only 50 images.
    """
    x, y = x.double(), y.double()
    m, n, d = len(x), len(y), x.shape[1]

    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy = kernel(x, x), kernel(y, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * kernel(x, y).mean())


def subset_mmds(
    feats_a: Tensor,
    feats_b: Tensor,
    subsets: int = 10,
    subset_size: int = 50,
    seed: int = 0,
    names: tuple[str, str] = ("first", "second"),
) -> np.ndarray:
    """Squared MMD on `subsets` pairs of random subsets, drawn without replacement.

    The draws replay torch-fidelity's (one seeded RandomState, alternating a and b),
    so the same seed gives the same subsets as its KID.
    """
    for feats, name in zip((feats_a, feats_b), names):
        if len(feats) < subset_size:
            raise ValueError(
                f"KID needs at least {subset_size} images per set, got {len(feats)} in the "
                f"{name} set; pass --kid-subset-size {len(feats)} or fewer "
                f"(subset_size={len(feats)} in Python)"
            )
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        ia = rng.choice(len(feats_a), subset_size, replace=False)
        ib = rng.choice(len(feats_b), subset_size, replace=False)
        mmds.append(mmd2_unbiased(feats_a[ia], feats_b[ib]))
    return np.array(mmds)


def kid(feats_a: Tensor, feats_b: Tensor, subsets: int = 10, subset_size: int = 50, seed: int = 0,
        names: tuple[str, str] = ("first", "second")) -> tuple[float, float]:
    """KID as (mean, std) over subsets; std with ddof=0, as Bińkowski et al. and torch-fidelity."""
    mmds = subset_mmds(feats_a, feats_b, subsets, subset_size, seed, names)
    return float(mmds.mean()), float(mmds.std())


def paper_kid(translated: Tensor, source: Tensor, target: Tensor, *, extractor: str,
              subsets: int = 10, subset_size: int = 50, seed: int = 0) -> dict:
    """The paper's Table 1 number: mean of KID(translated, target) and KID(translated, source), ×100.

    `kid_std` is the std over subsets of the per-subset average: for subset i the two
    squared MMDs (subsets drawn with the same seed) are averaged, then mean and std
    are taken over i. The paper does not say how it combined the two stds; this keeps
    `kid` and `kid_std` describing one and the same sample of numbers.
    """
    to_target = subset_mmds(translated, target, subsets, subset_size, seed, ("translated", "target"))
    to_source = subset_mmds(translated, source, subsets, subset_size, seed, ("translated", "source"))
    both = (to_target + to_source) / 2
    return {
        "kid": 100 * float(both.mean()),
        "kid_std": 100 * float(both.std()),
        "kid_target": 100 * float(to_target.mean()),
        "kid_source": 100 * float(to_source.mean()),
        "kid_extractor": extractor,
    }


# -------------------------------------------------------------- feature extractors


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats to the uint8 images that feature extractors expect."""
    return ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class Extractor:
    """A feature function with its name; the name is written next to every KID it produces."""

    name: str
    fn: Callable[[Tensor], Tensor]
    batch_size: int = 50

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return torch.cat([self.fn(batch).float().cpu() for batch in images.split(self.batch_size)])


INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


class MissingWeightsError(RuntimeError):
    """The Inception weights are not on disk (and would otherwise be downloaded)."""


def inception_weights_path() -> Path:
    """Where the Inception weights are: $AGIT_INCEPTION_WEIGHTS, else torch hub's cache.

    Raises MissingWeightsError before torch-fidelity would try to download them, so an
    offline machine gets instructions instead of a network traceback.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    env = os.environ.get("AGIT_INCEPTION_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    if not env and hub_file.is_file():  # a wrong explicit path is an error, not a fallback
        return hub_file
    unset_or_wrong = (f"AGIT_INCEPTION_WEIGHTS={env} is not a file. " if env else "")
    raise MissingWeightsError(
        f"KID needs the Inception-v3 weights file {INCEPTION_WEIGHTS}, which is not on this "
        f"machine. {unset_or_wrong}Download it from {URL_INCEPTION_V3} and either put it at "
        f"{hub_file} or set AGIT_INCEPTION_WEIGHTS=/path/to/{INCEPTION_WEIGHTS}. "
        f"Offline, use the 'domain-cnn' extractor instead (its KID is not comparable with the paper's)."
    )


def inception_extractor(data_dir: str | Path | None = None, device: str = "cpu") -> Extractor:
    """torch-fidelity's TF-compatible Inception-v3, 2048-d pool features.

    It resizes to 299 the way TensorFlow 1 did and normalises internally, so it is
    fed raw uint8. `data_dir` is unused: these features do not depend on the dataset.
    """
    # Imported here: torch-fidelity is slow to import and only this extractor needs it.
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    net = tf_inception.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(inception_weights_path())
    ).to(device)
    return Extractor("inception", lambda x: net(x.to(device))[0])


class DomainCNN(nn.Module):
    """A small A-vs-B classifier, the offline stand-in for Inception on synthetic data.

    Trained for a few seconds on the dataset's train split and cached at
    `<data_dir>/.agit/domain_cnn.pt`. Its 128-d penultimate features feed KID; its
    output says whether a translated image looks like domain B.

    The features are divided by their root mean square over the train split. KID's
    kernel (xᵀy/d + 1)³ assumes features of order 1, as Inception's pool features
    are; unscaled, this network's features reach tens, and the cube lets a few
    images dominate every subset's estimate.
    """

    CACHE_FORMAT = 2  # bump when the cached network's meaning changes

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        layers, width = [], 3
        for out in (16, 32, 64, 128):
            layers += [nn.Conv2d(width, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, 1)
        self.register_buffer("feature_scale", torch.ones(()))

    def _prepare(self, x_uint8: Tensor) -> Tensor:
        x = x_uint8.to(next(self.parameters()).device).float() / 127.5 - 1
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x

    def forward(self, x_uint8: Tensor) -> Tensor:
        return self.head(self.body(self._prepare(x_uint8))).squeeze(1)

    @torch.no_grad()
    def features(self, x_uint8: Tensor) -> Tensor:
        return torch.cat([self.body(self._prepare(b)).cpu() for b in x_uint8.split(100)]) / self.feature_scale.cpu()

    @torch.no_grad()
    def prob_b(self, x_uint8: Tensor) -> Tensor:
        return torch.cat([torch.sigmoid(self(b)).cpu() for b in x_uint8.split(100)])

    @classmethod
    def for_dataset(cls, data_dir: str | Path, device: str = "cpu", seed: int = 0) -> DomainCNN:
        """Load the cached classifier, or train (and cache) it if the train split changed."""
        data_dir = Path(data_dir)
        files = dict(zip(("trainA", "trainB"), map(list_images, domain_folders(data_dir, "train"))))
        fingerprint = f"{cls.CACHE_FORMAT}:{_fingerprint(files['trainA'] + files['trainB'])}"
        cache = data_dir / ".agit" / "domain_cnn.pt"
        if cache.is_file():
            saved = torch.load(cache, map_location=device, weights_only=True)
            if saved["fingerprint"] == fingerprint:
                net = cls(saved["size"]).to(device)
                net.load_state_dict(saved["state_dict"])
                return net.eval()
        size = min(read_rgb(files["trainA"][0]).shape[-1], 64)  # bigger images are shrunk to stay CPU-fast
        a = _load_images(files["trainA"], size)
        b = _load_images(files["trainB"], size)
        net = _train_domain_cnn(a, b, size, seed).to(device).eval()
        net.feature_scale.fill_(net.features(torch.cat([a, b])).pow(2).mean().sqrt().item())
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": net.state_dict(), "size": size, "fingerprint": fingerprint}, cache)
        return net


def _train_domain_cnn(a: Tensor, b: Tensor, size: int, seed: int, steps: int = 200,
                      batch: int = 16) -> DomainCNN:
    """Balanced batches (half A, half B), so unequal domain sizes do not bias the classifier."""
    with torch.random.fork_rng():  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        net = DomainCNN(size)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        labels = torch.cat([torch.zeros(batch), torch.ones(batch)])
        for _ in range(steps):
            x = torch.cat([a[torch.randint(len(a), (batch,))], b[torch.randint(len(b), (batch,))]])
            loss = F.binary_cross_entropy_with_logits(net(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def _fingerprint(files: list[Path]) -> str:
    """Names and sizes of the train images: cheap, and changes when the data are regenerated."""
    text = "\n".join(f"{p.parent.name}/{p.name}:{p.stat().st_size}" for p in files)
    return hashlib.sha1(text.encode()).hexdigest()


def _load_images(files: list[Path], size: int) -> Tensor:
    """uint8 N×3×size×size, resized as the translations are (agit.data's reader)."""
    return torch.stack([TF.resize(read_rgb(p), [size, size], antialias=True) for p in files])


def domain_cnn_extractor(data_dir: str | Path, device: str = "cpu") -> Extractor:
    return Extractor("domain-cnn", DomainCNN.for_dataset(data_dir, device).features)


# name -> factory(data_dir, device) -> Extractor
EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "inception": inception_extractor,
    "domain-cnn": domain_cnn_extractor,
}


# ------------------------------------------------------------ ground-truth metrics


def _has_object(mask: Tensor) -> Tensor:
    return mask.flatten(1).amax(1) > 0


def attention_iou(attention: Tensor, mask: Tensor, tau: float = 0.1) -> float:
    """Mean IoU of {attention > tau} with the true mask, over images that contain an object.

    tau = 0.1 is the paper's threshold for what the stage-2 discriminator sees (Eq. 6).
    """
    keep = _has_object(mask)
    if not keep.any():
        return math.nan
    pred, true = (attention[keep] > tau).flatten(1), (mask[keep] > 0.5).flatten(1)
    inter = (pred & true).sum(1).double()
    union = (pred | true).sum(1).double()
    return float((inter / union).mean())


def attention_iou_sweep(attention: Tensor, mask: Tensor,
                        taus: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> float:
    """IoU averaged over thresholds: rewards maps that are sharp, not just right at tau = 0.1."""
    return float(np.mean([attention_iou(attention, mask, t) for t in taus]))


def background_psnr(inp: Tensor, out: Tensor, mask: Tensor, cap: float = 100.0) -> float:
    """PSNR (dB, images on [0, 1]) between input and output outside the true mask, mean over images.

    An untouched background would be +inf; it is capped at `cap` so means stay finite.
    Images whose mask covers everything have no background and are skipped.
    """
    bg = (mask < 0.5).expand_as(inp).flatten(1).double()
    sq = (((out - inp) / 2).double() ** 2).flatten(1)
    count = bg.sum(1)
    keep = count > 0
    if not keep.any():
        return math.nan
    mse = (sq * bg).sum(1)[keep] / count[keep]
    psnr = (10 * torch.log10(1 / mse)).clamp(max=cap)
    return float(psnr.mean())


def foreground_change(inp: Tensor, out: Tensor, mask: Tensor) -> float:
    """Mean absolute change (on [0, 1]) inside the true mask, over images with an object.

    The other half of background PSNR: an identity mapping keeps the background
    perfectly and fails here.
    """
    keep = _has_object(mask)
    if not keep.any():
        return math.nan
    fg = (mask[keep] > 0.5).expand_as(inp[keep]).flatten(1).double()
    change = ((out[keep] - inp[keep]).abs() / 2).double().flatten(1)
    return float(((change * fg).sum(1) / fg.sum(1)).mean())


def empty_attention(attention: Tensor, mask: Tensor) -> float:
    """Mean attention on images without an object; ideally ~0 (the paper's Fig. 17)."""
    empty = ~_has_object(mask)
    return float(attention[empty].double().mean()) if empty.any() else math.nan


def target_rate(prob_target: Tensor) -> float:
    """Share of translated images that a domain classifier assigns to the target domain."""
    return float((prob_target > 0.5).double().mean())


# ----------------------------------------------------------------- one direction


def evaluate_direction(
    inputs: Tensor,
    outputs: Tensor,
    attention: Tensor | None,
    masks: Tensor | None,
    source_feats: Tensor | None,
    target_feats: Tensor | None,
    extractor: Extractor | None,
    prob_target: Callable[[Tensor], Tensor] | None = None,
    *,
    tau: float = 0.1,
    kid_subsets: int = 10,
    kid_subset_size: int = 50,
    seed: int = 0,
) -> dict:
    """Every metric for one translation direction (source test set -> outputs).

    `source_feats` / `target_feats` are the test sets' features from the same
    `extractor` (compute them once per dataset). `attention` is None for methods
    without attention, `masks` None for data without ground truth, `extractor` None
    to skip KID, `prob_target`
    (uint8 images -> P(target domain)) None without a domain classifier; the metrics
    that need them are then NaN.
    """
    if extractor is None:  # ground-truth metrics only
        result = dict(kid=math.nan, kid_std=math.nan, kid_target=math.nan, kid_source=math.nan,
                      kid_extractor="none")
    else:
        translated = extractor(to_uint8(outputs))
        if not translated.shape[1] == source_feats.shape[1] == target_feats.shape[1]:
            raise ValueError(
                f"reference features ({source_feats.shape[1]}-d, {target_feats.shape[1]}-d) are not "
                f"from the '{extractor.name}' extractor ({translated.shape[1]}-d)"
            )
        result = paper_kid(translated, source_feats, target_feats, extractor=extractor.name,
                           subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    with_att = attention is not None and masks is not None
    result.update(
        iou=attention_iou(attention, masks, tau) if with_att else math.nan,
        iou_sweep=attention_iou_sweep(attention, masks) if with_att else math.nan,
        bg_psnr=background_psnr(inputs, outputs, masks) if masks is not None else math.nan,
        fg_change=foreground_change(inputs, outputs, masks) if masks is not None else math.nan,
        empty_att=empty_attention(attention, masks) if with_att else math.nan,
        target_rate=target_rate(prob_target(to_uint8(outputs))) if prob_target else math.nan,
    )
    return result


# ------------------------------------------------------------------------ tables


def collect(runs) -> pd.DataFrame:
    """One row per run from `RUN/metrics.json` (flat dict) and, if present, `RUN/config.json`.

    `runs` are run folders or paths to their metrics.json; the index is the run folder's name.
    """
    rows = {}
    for run in map(Path, runs):
        run_dir = Run(run.parent if run.suffix == ".json" else run)
        row = run_dir.metrics()
        config = run_dir.config_dict()
        if config is not None:
            row.update({k: config.get(k) for k in ("method", "variant", "preset")})
        rows[run_dir.path.name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
