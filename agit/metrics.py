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
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .data import domain_folders, list_images, mask_folder_for, read_mask, read_rgb

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


class LabelCNN(nn.Module):
    """A small image classifier with one or more heads, the offline stand-in for Inception.

    Trained for seconds on a dataset's train split (`label_cnn`) and cached in
    `<data>/.agit/`. Its 128-d penultimate features feed KID; its heads' probabilities
    say what a translated image shows.

    The features are divided by their root mean square over the train split. KID's
    kernel (xᵀy/d + 1)³ assumes features of order 1, as Inception's pool features
    are; unscaled, this network's features reach tens, and the cube lets a few
    images dominate every subset's estimate.
    """

    def __init__(self, size: int, heads: dict[str, int]):
        super().__init__()
        self.size = size
        layers, width = [], 3
        for out in (16, 32, 64, 128):
            layers += [nn.Conv2d(width, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({name: nn.Linear(128, n) for name, n in heads.items()})
        self.register_buffer("feature_scale", torch.ones(()))

    def _prepare(self, x_uint8: Tensor) -> Tensor:
        x = x_uint8.to(next(self.parameters()).device).float() / 127.5 - 1
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x

    def forward(self, x_uint8: Tensor) -> dict[str, Tensor]:
        h = self.body(self._prepare(x_uint8))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def features(self, x_uint8: Tensor) -> Tensor:
        return torch.cat([self.body(self._prepare(b)).cpu() for b in x_uint8.split(100)]) / self.feature_scale.cpu()

    @torch.no_grad()
    def probs(self, x_uint8: Tensor, head: str) -> Tensor:
        """Class probabilities (N×classes) of one head."""
        return torch.cat([self(b)[head].softmax(1).cpu() for b in x_uint8.split(100)])


# What each kind of LabelCNN learns, from the train split (`_labelled_train_set`):
#   domain: A or B (any dataset)                  -> the `domain-cnn` KID features
#   scene:  object none/A/B and background kind   -> the `scene-cnn` KID features (synthetic data)
#   object: A's or B's object, shown only the object (background grey) -> "object translated"
LABEL_HEADS = {"domain": {"domain": 2}, "scene": {"object": 3, "background": 2}, "object": {"object": 2}}
CACHE_FORMAT = 3  # bump when a cached network's meaning changes


def label_cnn(data_dir: str | Path, kind: str, device: str = "cpu", seed: int = 0) -> LabelCNN:
    """The dataset's classifier of `kind` (LABEL_HEADS): loaded from its cache, or trained and cached."""
    data_dir = Path(data_dir)
    files = dict(zip(("trainA", "trainB"), map(list_images, domain_folders(data_dir, "train"))))
    fingerprint = f"{CACHE_FORMAT}:{kind}:{_fingerprint(files['trainA'] + files['trainB'])}"
    cache = data_dir / ".agit" / f"{kind}_cnn.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location=device, weights_only=True)
        if saved["fingerprint"] == fingerprint:
            net = LabelCNN(saved["size"], LABEL_HEADS[kind]).to(device)
            net.load_state_dict(saved["state_dict"])
            return net.eval()
    size = min(read_rgb(files["trainA"][0]).shape[-1], 64)  # bigger images are shrunk to stay CPU-fast
    images, labels = _labelled_train_set(data_dir, files, kind, size)
    net = _train_label_cnn(images, labels, LABEL_HEADS[kind], size, seed).to(device).eval()
    net.feature_scale.fill_(net.features(images).pow(2).mean().sqrt().item())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # parallel evaluations may train it at once
    torch.save({"state_dict": net.state_dict(), "size": size, "fingerprint": fingerprint}, tmp)
    os.replace(tmp, cache)
    return net


def object_only(images_uint8: Tensor, masks: Tensor) -> Tensor:
    """The object region alone: every pixel outside the mask mid-grey (0 in [-1, 1])."""
    return torch.where(masks.bool().expand_as(images_uint8), images_uint8, torch.full_like(images_uint8, 128))


def _labelled_train_set(data_dir: Path, files: dict, kind: str, size: int) -> tuple[Tensor, dict[str, Tensor]]:
    """uint8 train images and their labels per head for a LabelCNN of `kind`."""
    images = {k: _load_images(v, size) for k, v in files.items()}
    n = {k: len(v) for k, v in files.items()}
    if kind == "domain":
        return torch.cat(list(images.values())), {"domain": torch.tensor([0] * n["trainA"] + [1] * n["trainB"])}
    meta_file = data_dir / "meta.json"
    if kind == "scene":
        if not meta_file.is_file():
            raise ValueError(f"the 'scene-cnn' features need object and background labels, which only agit's "
                             f"synthetic data carry ({meta_file} is missing); use --kid inception or domain-cnn")
        meta = json.loads(meta_file.read_text())
        objects, backgrounds = [], []
        for d, folder in enumerate(("trainA", "trainB")):
            free, swapped = set(meta["animal_free"][folder]), set(meta["other_background"][folder])
            objects += [0 if p.name in free else 1 + d for p in files[folder]]
            backgrounds += [d ^ (p.name in swapped) for p in files[folder]]
        return torch.cat(list(images.values())), {"object": torch.tensor(objects), "background": torch.tensor(backgrounds)}
    # kind == "object": only images with an object, shown only the object
    shown, labels = [], []
    for d, folder in enumerate(("trainA", "trainB")):
        mask_dir = mask_folder_for(data_dir / folder)
        if mask_dir is None:
            raise ValueError(f"the object classifier needs ground-truth masks of the train split ({folder}_mask/)")
        masks = torch.stack([TF.resize(read_mask(mask_dir / p.name), [size, size], InterpolationMode.NEAREST)
                             for p in files[folder]])
        has = masks.flatten(1).any(1).bool()
        shown.append(object_only(images[folder][has], masks[has]))
        labels += [d] * int(has.sum())
    return torch.cat(shown), {"object": torch.tensor(labels)}


def _train_label_cnn(images: Tensor, labels: dict[str, Tensor], heads: dict[str, int], size: int, seed: int,
                     steps: int = 300, batch: int = 32) -> LabelCNN:
    """Cross-entropy on every head, batches balanced over the first head's classes (so unequal
    domain sizes or a 15 % share of object-free images do not bias it), random flips."""
    first = labels[next(iter(heads))]
    groups = [torch.nonzero(first == c).flatten() for c in range(heads[next(iter(heads))])]
    groups = [g for g in groups if len(g)]
    with torch.random.fork_rng():  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        net = LabelCNN(size, heads)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(steps):
            idx = torch.cat([g[torch.randint(len(g), (batch // len(groups),))] for g in groups])
            x = images[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(-1), x)
            out = net(x)
            loss = sum(F.cross_entropy(out[h], labels[h][idx]) for h in heads)
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
    return Extractor("domain-cnn", label_cnn(data_dir, "domain", device).features)


def scene_cnn_extractor(data_dir: str | Path, device: str = "cpu") -> Extractor:
    """Features that describe the object *and* the scene, so KID is not a domain detector.

    `domain-cnn` features are trained to tell A from B and mostly encode *which domain*:
    the paper's mean of KID vs target and vs source is then about the same for any
    image that is half one domain and half the other. These are trained to name the
    object (none, A's, B's) and, separately, the background kind, so a translation that
    keeps the background and changes the object lands near the counterfactual set, and
    one that repaints the background does not.
    """
    return Extractor("scene-cnn", label_cnn(data_dir, "scene", device).features)


# name -> factory(data_dir, device) -> Extractor
EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "inception": inception_extractor,
    "scene-cnn": scene_cnn_extractor,
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


def _psnr(sq_err: Tensor, weight: Tensor, cap: float) -> Tensor:
    """Per-image PSNR (dB, images on [0, 1]) of squared errors averaged with `weight`; NaN where
    the weight is all zero, capped at `cap` (an exact match would be +inf)."""
    count = weight.sum(1)
    mse = (sq_err * weight).sum(1) / count
    return torch.where(count > 0, (10 * torch.log10(1 / mse)).clamp(max=cap), math.nan)


def background_psnr(inp: Tensor, out: Tensor, mask: Tensor, cap: float = 100.0) -> float:
    """PSNR (dB, images on [0, 1]) between input and output outside the true mask, mean over images.

    An untouched background would be +inf; it is capped at `cap` so means stay finite.
    Images whose mask covers everything have no background and are skipped.
    """
    bg = (mask < 0.5).expand_as(inp).flatten(1).double()
    psnr = _psnr((((out - inp) / 2).double() ** 2).flatten(1), bg, cap)
    return float(psnr.nanmean()) if not psnr.isnan().all() else math.nan


def counterfactual_psnr(out: Tensor, counterfactual: Tensor, cap: float = 100.0) -> float:
    """PSNR (dB) of each translation against its counterfactual over the whole image, mean over images.

    Full-reference and pixel-exact: it rewards the background kept and a plausible object
    colour, but cannot reward a stripe pattern whose phase no method can predict — that
    is what `texture_distance` is for.
    """
    sq = (((out - counterfactual) / 2).double() ** 2).flatten(1)
    return float(_psnr(sq, torch.ones_like(sq), cap).mean())


def _gabor_bank(size: int) -> Tensor:
    """Quadrature pairs of zero-mean Gabor filters: 4 orientations × 2 wavelengths (3 and 6 px at
    64 px, scaled with the image), each normalised to unit L1; (16, 1, k, k)."""
    wavelengths = (3 * size / 64, 6 * size / 64)
    half = max(2, math.ceil(1.4 * max(wavelengths)))
    y, x = torch.meshgrid(torch.arange(-half, half + 1.0), torch.arange(-half, half + 1.0), indexing="ij")
    kernels = []
    for wavelength in wavelengths:
        envelope = torch.exp(-(x**2 + y**2) / (2 * (0.56 * wavelength) ** 2))
        for angle in (0, math.pi / 4, math.pi / 2, 3 * math.pi / 4):
            phase = 2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / wavelength
            for wave in (torch.cos(phase), torch.sin(phase)):
                k = envelope * wave
                k = k - envelope * k.sum() / envelope.sum()  # no response to flat colour
                kernels.append(k / k.abs().sum())
    return torch.stack(kernels)[:, None]


def texture_statistics(images: Tensor, masks: Tensor) -> Tensor:
    """Per image, mean and std over the masked pixels of its colour (3) and oriented energy (8).

    Energy is the magnitude of a quadrature pair of Gabor responses on the luminance:
    invariant to where a stripe starts, sensitive to its orientation and width. Means
    and stds pooled over the object forget where each pixel is. Returns N×22.
    """
    x = (images.double() + 1) / 2
    luminance = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    bank = _gabor_bank(images.shape[-1]).to(luminance)
    responses = F.conv2d(F.pad(luminance, [bank.shape[-1] // 2] * 4, mode="reflect"), bank)
    energy = responses.unflatten(1, (-1, 2)).pow(2).sum(2).sqrt()
    channels = torch.cat([x, energy], 1).flatten(2)  # N×11×HW
    weight = (masks > 0.5).flatten(2).double()
    count = weight.sum(2).clamp(min=1)
    mean = (channels * weight).sum(2) / count
    std = (((channels - mean[..., None]) ** 2 * weight).sum(2) / count).sqrt()
    return torch.cat([mean, std], 1)


def texture_distance(out: Tensor, counterfactual: Tensor, mask: Tensor) -> float:
    """Mean absolute difference of `texture_statistics` inside the true mask, over images with an object.

    Why not PSNR inside the object: a zebra's stripes cannot be predicted to the pixel — their
    phase, count and waviness are drawn afresh for every rendering — so a pixel distance
    punishes a perfect zebra as much as a grey smear. Colour and oriented-energy statistics
    pooled over the object are what two renderings of the same coat share (a test checks that
    a second rendering scores far better than the untouched input or a repainted background).
    Lower is better; 0 for identical statistics.
    """
    keep = _has_object(mask)
    if not keep.any():
        return math.nan
    a = texture_statistics(out[keep], mask[keep])
    b = texture_statistics(counterfactual[keep], mask[keep])
    return float((a - b).abs().mean())


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
    """Share of images that a classifier assigns to the target domain (P > 1/2)."""
    return float((prob_target > 0.5).double().mean())


# ----------------------------------------------------------------- one direction


@dataclass
class Reference:
    """What one direction's translations are compared with; computed once per dataset.

    Each part is None where the dataset lacks it, and the metrics that need it are NaN.
    """

    source_feats: Tensor | None = None  # KID features of the source and target test sets
    target_feats: Tensor | None = None
    counterfactuals: Tensor | None = None  # the true translations of the source test set, [-1, 1]
    counterfactual_feats: Tensor | None = None
    object_target: Callable[[Tensor], Tensor] | None = None  # object-only uint8 images -> P(target's object)


# metrics.json keys per direction, in the order tables show them
METRIC_KEYS = ("cf_kid", "cf_kid_std", "cf_psnr", "texture", "object_target", "iou", "iou_sweep", "bg_psnr",
               "empty_att", "fg_change", "kid", "kid_std", "kid_target", "kid_source")


def evaluate_direction(inputs: Tensor, outputs: Tensor, attention: Tensor | None, masks: Tensor | None,
                       ref: Reference, extractor: Extractor | None, *, tau: float = 0.1, kid_subsets: int = 10,
                       kid_subset_size: int = 50, seed: int = 0) -> dict:
    """Every metric for one translation direction (source test set -> outputs), keyed as METRIC_KEYS.

    `attention` is None for methods without attention, `masks` None for data without ground
    truth, `extractor` None to skip KID.
    """
    nan = math.nan
    result = dict.fromkeys(METRIC_KEYS, nan)
    result["kid_extractor"] = extractor.name if extractor else "none"
    if extractor is not None:
        translated = extractor(to_uint8(outputs))
        for feats in (ref.source_feats, ref.target_feats, ref.counterfactual_feats):
            if feats is not None and feats.shape[1] != translated.shape[1]:
                raise ValueError(f"reference features ({feats.shape[1]}-d) are not from the "
                                 f"'{extractor.name}' extractor ({translated.shape[1]}-d)")
        if ref.source_feats is not None and ref.target_feats is not None:
            result.update(paper_kid(translated, ref.source_feats, ref.target_feats, extractor=extractor.name,
                                    subsets=kid_subsets, subset_size=kid_subset_size, seed=seed))
        if ref.counterfactual_feats is not None:
            mmds = subset_mmds(translated, ref.counterfactual_feats, kid_subsets, kid_subset_size, seed,
                               ("translated", "counterfactual"))
            result.update(cf_kid=100 * float(mmds.mean()), cf_kid_std=100 * float(mmds.std()))
    if ref.counterfactuals is not None:
        result["cf_psnr"] = counterfactual_psnr(outputs, ref.counterfactuals)
        if masks is not None:
            result["texture"] = texture_distance(outputs, ref.counterfactuals, masks)
    if masks is not None:
        result.update(bg_psnr=background_psnr(inputs, outputs, masks), fg_change=foreground_change(inputs, outputs, masks))
        keep = _has_object(masks)
        if ref.object_target is not None and keep.any():
            result["object_target"] = target_rate(ref.object_target(object_only(to_uint8(outputs[keep]), masks[keep])))
        if attention is not None:
            result.update(iou=attention_iou(attention, masks, tau), iou_sweep=attention_iou_sweep(attention, masks),
                          empty_att=empty_attention(attention, masks))
    return result
