"""Metrics: KID (the estimator, the paper's Table 1 protocol) and ground-truth metrics for data with masks.

KID (Bińkowski et al., 2018) is the squared maximum mean discrepancy between two
sets of image features under the polynomial kernel k(x, y) = (xᵀy/d + 1)³, with
the unbiased estimator (`kid_estimate`). The paper reports, for translated test
images, the mean of KID against the *target* test set and KID against the *source*
test set (a good translation changes the object and keeps the background), averaged
over 10 random subsets of 50 images, ×100 (`paper_kid`). The features come from
features.py, whose extractor's name every KID carries.

Where ground-truth masks exist (the synthetic data), the claims of the paper can be
measured directly: does the attention cover the object (IoU), is the background
left alone (PSNR outside the mask), does the object change, is attention near zero
on images without an object (the paper's Fig. 17), and is the result classified as
the target domain. Where counterfactuals exist (the true translation of each test
image), the translations are compared with them.

Conventions: images are float tensors in [-1, 1], N×3×H×W; masks and attention
maps are N×1×H×W, masks in {0, 1}, attention in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .features import Extractor, object_only, to_uint8

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


def check_kid_protocol(subsets: int, subset_size: int) -> None:
    """KID is a mean over at least one subset; the unbiased MMD needs two images per subset."""
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs --kid-subsets >= 1 and --kid-subset-size >= 2, "
                         f"got {subsets} and {subset_size}")


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
    check_kid_protocol(subsets, subset_size)
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


def fitting_subset_size(requested: int, *set_sizes: int) -> tuple[int, str]:
    """The KID subset size that the sets allow: `requested`, or the smallest set's size, with a
    sentence saying so. At the smallest set's size each subset of that set is all of it, so the
    std over subsets reflects only the larger set's draws."""
    smallest = min(set_sizes)
    if smallest < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {smallest}")
    if smallest >= requested:
        return requested, ""
    return smallest, (f"KID on subsets of {smallest}, not {requested}: the smallest set has {smallest} "
                      f"images (a small-sample estimate; compare only with KIDs of the same subset size)")


def kid_estimate(feats_a: Tensor, feats_b: Tensor, subsets: int = 10, subset_size: int = 50, seed: int = 0,
                 names: tuple[str, str] = ("first", "second")) -> tuple[float, float]:
    """KID between two feature sets (Bińkowski et al.'s estimator): (mean, std) of `subset_mmds`;
    std with ddof=0, as Bińkowski et al. and torch-fidelity. The paper's number is `paper_kid`."""
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


def attention_recall_precision(attention: Tensor, mask: Tensor, tau: float = 0.1) -> tuple[float, float]:
    """(recall, precision) of {attention > tau} against the true mask, means over images with an object.

    Fig. 7's two failure modes apart: a switch too early leaves part of the object unattended
    (low recall), a late one lets the attention spread onto the background (low precision).
    An image whose map is empty counts as precision 0."""
    keep = _has_object(mask)
    if not keep.any():
        return math.nan, math.nan
    pred, true = (attention[keep] > tau).flatten(1), (mask[keep] > 0.5).flatten(1)
    inter = (pred & true).sum(1).double()
    return float((inter / true.sum(1)).mean()), float((inter / pred.sum(1).clamp(min=1)).mean())


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


def object_free_psnr(inp: Tensor, out: Tensor, mask: Tensor, cap: float = 100.0) -> float:
    """PSNR (dB) between input and output on images without the object, mean over them: the
    paper's Fig. 5 (bottom) in a number. Attention-guided translation should return such an
    image unchanged (high); a method that paints target texture anyway scores low."""
    empty = ~_has_object(mask)
    if not empty.any():
        return math.nan
    err = (((out[empty] - inp[empty]) / 2).double() ** 2).flatten(1)
    return float(_psnr(err, torch.ones_like(err), cap).mean())


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
               "empty_att", "att_recall", "att_precision", "free_psnr", "fg_change", "kid", "kid_std", "kid_target",
               "kid_source", "att_mean", "changed")
# What needs neither masks nor features (any pair of folders): mean attention over the source test
# images, and the share of their pixels that the translation changed by more than CHANGE_THRESHOLD.
CHANGE_THRESHOLD = 0.05  # on [0, 1]: 13 of 255 grey levels, above JPEG noise, below any visible change


def changed_share(inp: Tensor, out: Tensor) -> float:
    """Share of pixels whose largest channel change exceeds CHANGE_THRESHOLD (0: identity, 1: all repainted)."""
    return float((((out - inp).abs() / 2).amax(1) > CHANGE_THRESHOLD).double().mean())


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
            mean, std = kid_estimate(translated, ref.counterfactual_feats, kid_subsets, kid_subset_size, seed,
                                     ("translated", "counterfactual"))
            result.update(cf_kid=100 * mean, cf_kid_std=100 * std)
    result["changed"] = changed_share(inputs, outputs)
    if attention is not None:
        result["att_mean"] = float(attention.double().mean())
    if ref.counterfactuals is not None:
        result["cf_psnr"] = counterfactual_psnr(outputs, ref.counterfactuals)
        if masks is not None:
            result["texture"] = texture_distance(outputs, ref.counterfactuals, masks)
    if masks is not None:
        result.update(bg_psnr=background_psnr(inputs, outputs, masks), fg_change=foreground_change(inputs, outputs, masks),
                      free_psnr=object_free_psnr(inputs, outputs, masks))
        keep = _has_object(masks)
        if ref.object_target is not None and keep.any():
            result["object_target"] = target_rate(ref.object_target(object_only(to_uint8(outputs[keep]), masks[keep])))
        if attention is not None:
            result.update(iou=attention_iou(attention, masks, tau), iou_sweep=attention_iou_sweep(attention, masks),
                          empty_att=empty_attention(attention, masks))
            result["att_recall"], result["att_precision"] = attention_recall_precision(attention, masks, tau)
    return result
