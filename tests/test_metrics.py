"""Metrics: KID against torch-fidelity and a direct reference, ground-truth metrics on known answers."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch_fidelity.metric_kid import kid_features_to_metric, kernel_mmd

from agit import features
from agit import metrics as M

torch.set_num_threads(1)


def feats(n, d=16, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def reference_mmd2(x, y):
    """Unbiased squared MMD written out term by term, as in Bińkowski et al. (Eq. 3)."""
    x, y = x.numpy(), y.numpy()
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_torch_fidelity():
    a, b = feats(80, seed=1), feats(70, shift=0.3, seed=2)
    ours = M.kid_estimate(a, b, subsets=10, subset_size=50, seed=3)
    theirs = kid_features_to_metric(a, b, kid_subsets=10, kid_subset_size=50, rng_seed=3, verbose=False)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-12)
    # the per-subset MMD alone, on one pair of equal-size sets
    assert M.mmd2_unbiased(a[:50], b[:50]) == pytest.approx(kernel_mmd(a[:50].numpy(), b[:50].numpy()), rel=1e-12)


def test_full_subset_is_the_full_sample_estimate():
    a, b = feats(20, seed=1), feats(20, shift=0.5, seed=2)
    mean, std = M.kid_estimate(a, b, subsets=1, subset_size=20)
    assert mean == pytest.approx(reference_mmd2(a, b), rel=1e-10)
    assert std == 0
    # unequal sizes use the general estimator
    assert M.mmd2_unbiased(a, b[:13]) == pytest.approx(reference_mmd2(a, b[:13]), rel=1e-10)


def test_kid_near_zero_for_same_distribution_positive_for_shifted():
    a, b = feats(200, seed=1), feats(200, seed=2)
    same, same_std = M.kid_estimate(a, b)
    shifted, _ = M.kid_estimate(a, feats(200, shift=1.0, seed=3))
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.1 and shifted > 10 * abs(same)


def test_kid_too_few_images_says_how_to_fix():
    with pytest.raises(ValueError, match=r"at least 50 images per set, got 37 in the translated set; "
                                         r"pass --kid-subset-size 37 or fewer"):
        M.paper_kid(feats(37), feats(60), feats(60), extractor="x")


def test_paper_kid_averages_target_and_source():
    t, s, g = feats(60, seed=1), feats(60, shift=0.2, seed=2), feats(55, shift=0.6, seed=3)
    out = M.paper_kid(t, s, g, extractor="domain-cnn", seed=4)
    to_g = M.subset_mmds(t, g, seed=4)
    to_s = M.subset_mmds(t, s, seed=4)
    assert out["kid_target"] == pytest.approx(100 * M.kid_estimate(t, g, seed=4)[0])
    assert out["kid_source"] == pytest.approx(100 * M.kid_estimate(t, s, seed=4)[0])
    assert out["kid"] == pytest.approx((out["kid_target"] + out["kid_source"]) / 2)
    assert out["kid_std"] == pytest.approx(100 * ((to_g + to_s) / 2).std())
    assert out["kid_extractor"] == "domain-cnn"


def test_missing_inception_weights_message(monkeypatch, tmp_path):
    monkeypatch.delenv("AGIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(features.MissingWeightsError) as err:
        features.EXTRACTORS["inception"]()
    msg = str(err.value)
    assert features.INCEPTION_WEIGHTS in msg
    assert "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + features.INCEPTION_WEIGHTS in msg
    assert str(tmp_path / "checkpoints" / features.INCEPTION_WEIGHTS) in msg
    assert "AGIT_INCEPTION_WEIGHTS=" in msg


def test_inception_loads_release_format_weights_through_torch_fidelity(monkeypatch, inception_weights):
    """The extractor reads $AGIT_INCEPTION_WEIGHTS with torch-fidelity's own loader (a state dict
    of its FeatureExtractorInceptionV3, here randomly initialised) and gives 2048-d features."""
    monkeypatch.setenv("AGIT_INCEPTION_WEIGHTS", str(inception_weights))
    extractor = features.EXTRACTORS["inception"]()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    feats = extractor(images)
    assert extractor.name == "inception" and feats.shape == (3, 2048) and torch.isfinite(feats).all()
    assert not torch.equal(feats[0], feats[1])  # the weights were read: features depend on the image
    broken = inception_weights.parent / "broken.pth"
    torch.save({"fc.weight": torch.zeros(1)}, broken)  # not the release's format: torch-fidelity refuses it
    monkeypatch.setenv("AGIT_INCEPTION_WEIGHTS", str(broken))
    with pytest.raises(RuntimeError, match="state_dict"):
        features.EXTRACTORS["inception"]()


# ground truth: two 8x8 images, the first with a 4x4 object, the second empty
def masks():
    m = torch.zeros(2, 1, 8, 8)
    m[0, :, 2:6, 2:6] = 1
    return m


def test_attention_recall_precision_and_object_free_psnr():
    m = masks()  # image 0: a 4x4 object; image 1: no object
    half = m.clone()
    half[0, :, 2:4] = 0.05  # under tau: half the object missed -> recall 0.5, precision 1
    assert M.attention_recall_precision(half, m) == (pytest.approx(0.5), pytest.approx(1.0))
    spread = m.clone()
    spread[0, :, 0:2, 2:6] = 0.9  # 8 background pixels attended too -> recall 1, precision 16 / 24
    assert M.attention_recall_precision(spread, m) == (pytest.approx(1.0), pytest.approx(2 / 3))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    y = x.clone()
    y[1] += 0.2  # the object-free image changed by 0.1 on [0, 1]: 20 dB
    assert M.object_free_psnr(x, x, m) == 100.0 and M.object_free_psnr(x, y, m) == pytest.approx(20.0)
    y[0] = 0  # a change where the object is does not count
    assert M.object_free_psnr(x, y, m) == pytest.approx(20.0)


def test_attention_iou():
    m = masks()
    assert M.attention_iou(m, m) == 1.0  # the empty image does not count
    assert M.attention_iou_sweep(m, m) == 1.0
    half = m.clone()
    half[0, :, 2:4] = 0.05  # under tau: half the object missed
    assert M.attention_iou(half, m) == pytest.approx(0.5)
    assert math.isnan(M.attention_iou(m, torch.zeros_like(m)))


def test_background_psnr():
    m = masks()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert M.background_psnr(x, x, m) == 100.0  # identity: the cap, not inf
    x = torch.full((2, 3, 8, 8), -1.0)
    y = x.clone()
    y[:, :, :4] = 0.0  # top half: change 0.5 on [0, 1] ...
    y[0, :, 2:6, 2:6] = 1.0  # ... object pixels do not count: still half of image 0's background
    # MSE = 0.5 * 0.5**2 = 1/8 -> PSNR = 10 log10(8) for both images
    assert M.background_psnr(x, y, m) == pytest.approx(10 * math.log10(8))


def test_foreground_change_and_empty_attention():
    m = masks()
    x = torch.full((2, 3, 8, 8), -1.0)
    y = x.clone()
    y[0, :, 2:6, 2:6] = 0.0  # object moved half-way to white: change 0.5 on [0, 1]
    y[1] = 1.0  # the empty image does not count
    assert M.foreground_change(x, y, m) == pytest.approx(0.5)
    att = torch.zeros(2, 1, 8, 8)
    att[1] = 0.25
    assert M.empty_attention(att, m) == pytest.approx(0.25)
    assert math.isnan(M.empty_attention(att, torch.ones_like(m)))
    assert M.target_rate(torch.tensor([0.9, 0.2, 0.6, 0.5])) == 0.5


def make_dataset(root, n=16, size=32):
    rng = np.random.default_rng(0)
    for folder, channel in (("trainA", 0), ("trainB", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[..., channel] = rng.integers(150, 255, (size, size))
            Image.fromarray(img).save(root / folder / f"{i}.png")


def test_domain_cnn_trains_separates_and_caches(tmp_path):
    make_dataset(tmp_path)
    cnn = features.label_cnn(tmp_path, "domain")
    cache = tmp_path / ".agit" / "domain_cnn.pt"
    assert cache.is_file()
    red = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    red[:, 0] = 200
    blue = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)  # another size: resized to the trained one
    blue[:, 2] = 200
    assert (cnn.probs(blue, "domain")[:, 1] > 0.5).all() and (cnn.probs(red, "domain")[:, 1] < 0.5).all()
    assert cnn.features(red).shape == (4, 128)

    mtime = cache.stat().st_mtime_ns
    again = features.label_cnn(tmp_path, "domain")
    assert cache.stat().st_mtime_ns == mtime
    assert torch.equal(again.features(blue), cnn.features(blue))
    assert features.EXTRACTORS["domain-cnn"](tmp_path).name == "domain-cnn"
    with pytest.raises(ValueError, match="scene-cnn.*synthetic data.*meta.json"):
        features.label_cnn(tmp_path, "scene")


def stripes(n, size=32, period=4.0, phase=0.0, colour=(1.0, 1.0, 1.0)):
    x = torch.arange(size, dtype=torch.float64)
    wave = (torch.sin(2 * math.pi * x / period + phase) > 0).double()
    img = wave.expand(size, size) * torch.tensor(colour, dtype=torch.float64)[:, None, None]
    return (img * 2 - 1).expand(n, 3, size, size).clone()


def test_texture_distance_ignores_stripe_phase_not_width_or_colour():
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 4:28, 4:28] = 1
    zebra = stripes(2)
    shifted = M.texture_distance(stripes(2, phase=1.3), zebra, mask)
    assert shifted < 0.02
    assert M.texture_distance(stripes(2, period=8), zebra, mask) > 2 * shifted
    assert M.texture_distance(stripes(2, colour=(0.6, 0.3, 0.1)), zebra, mask) > 5 * shifted
    assert M.texture_distance(torch.zeros_like(zebra), zebra, mask) > 5 * shifted  # a grey smear
    assert math.isnan(M.texture_distance(zebra, zebra, torch.zeros_like(mask)))


def test_counterfactual_psnr():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[1] += 0.2  # 0.1 on [0, 1]: 20 dB
    assert M.counterfactual_psnr(x, y) == pytest.approx((100 + 20) / 2)


def test_evaluate_direction(tmp_path):
    m = masks().repeat(30, 1, 1, 1)
    x = torch.rand(60, 3, 8, 8) * 2 - 1
    extractor = features.Extractor("toy", lambda imgs: imgs.flatten(1)[:, :16].double() / 255)
    feats_x = extractor(features.to_uint8(x))
    ref = M.Reference(feats_x, feats_x, x, feats_x, lambda imgs: torch.ones(len(imgs)))
    out = M.evaluate_direction(x, x, m, m, ref, extractor)
    assert out["kid_extractor"] == "toy" and out["kid"] < 0.5 and out["cf_kid"] < 0.5
    assert out["iou"] == 1.0 and out["bg_psnr"] == 100.0 and out["fg_change"] == 0.0
    assert out["empty_att"] == 0.0 and out["object_target"] == 1.0
    assert out["cf_psnr"] == 100.0 and out["texture"] == 0.0
    assert set(out) == {*M.METRIC_KEYS, "kid_extractor"}

    bare = M.evaluate_direction(x, x, None, None, M.Reference(feats_x, feats_x), extractor)
    assert all(math.isnan(bare[k]) for k in M.METRIC_KEYS if not k.startswith("kid") and k != "changed")
    assert bare["changed"] == 0.0 and math.isnan(bare["att_mean"])  # no attention given; output = input
    with pytest.raises(ValueError, match="not from the 'toy' extractor"):
        M.evaluate_direction(x, x, None, None, M.Reference(feats_x[:, :8], feats_x), extractor)
