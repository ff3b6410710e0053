import json
import math

import pytest

from agit.cli import main
from agit.evaluate import evaluate_references, evaluate_run
from agit.metrics import METRIC_KEYS
from agit.train import Trainer


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data):
    from agit import preset

    run = tmp_path_factory.mktemp("runs") / "ours"
    Trainer(preset("ci", data=str(tiny_data), epochs=1), run).fit(progress=False)
    return run


@pytest.mark.parametrize("kid", ["scene-cnn", "domain-cnn"])
def test_evaluate_writes_every_metric_for_both_directions(trained_run, kid):
    result = evaluate_run(trained_run, kid=kid, kid_subsets=3, kid_subset_size=5)
    saved = json.loads((trained_run / "metrics.json").read_text())
    assert saved["kid_extractor"] == kid
    for d in ("s2t", "t2s"):
        for k in METRIC_KEYS:
            assert f"{k}_{d}" in saved
        for k in ("kid", "cf_kid"):
            assert math.isfinite(saved[f"{k}_{d}"]) and saved[f"{k}_std_{d}"] >= 0
        assert 0 <= saved[f"iou_{d}"] <= 1 and 0 <= saved[f"object_target_{d}"] <= 1
        assert 0 < saved[f"bg_psnr_{d}"] <= 100 and 0 < saved[f"cf_psnr_{d}"] <= 100 and saved[f"texture_{d}"] >= 0
    assert result == saved


def test_cyclegan_run_has_no_attention_metrics(tiny_data, tmp_path):
    from agit import preset

    run = tmp_path / "cg"
    Trainer(preset("ci", data=str(tiny_data), epochs=1, variant="cyclegan"), run).fit(progress=False)
    result = evaluate_run(run, kid="none")
    assert math.isnan(result["iou_s2t"]) and math.isnan(result["empty_att_s2t"])
    assert math.isnan(result["kid_s2t"]) and result["kid_extractor"] == "none"
    assert math.isfinite(result["bg_psnr_s2t"])


def test_cli_small_test_set_and_offline_inception_errors(trained_run, tmp_path, monkeypatch, capsys):
    assert main(["evaluate", "--run", str(trained_run), "--kid-subsets", "2"]) == 0  # 6 test images < 50 per subset
    assert "KID on subsets of 6, not 50: the smallest set has 6 images" in capsys.readouterr().out
    monkeypatch.delenv("AGIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    assert main(["evaluate", "--run", str(trained_run), "--kid", "inception"]) == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and "https://" in err
    assert main(["evaluate", "--run", str(trained_run), "--kid", "none"]) == 0
    assert "iou" in capsys.readouterr().out


@pytest.fixture(scope="module")
def sanity_data(tmp_path_factory):
    from agit.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("sanity"), "sanity", size=32, n_train=40, n_test=40, seed=2,
                          overlap=0.3)


def test_counterfactual_columns_rank_a_second_rendering_far_above_identity_and_repaint(sanity_data):
    """With no training: the counterfactuals rendered afresh (other stripe phase, count and tint)
    must beat the untouched input and a background repaint on every counterfactual column."""
    scores = evaluate_references(sanity_data, 32, kid_subsets=10, kid_subset_size=20)
    good, worse = scores["counterfactual_again"], (scores["identity"], scores["repaint"])
    for d in ("s2t", "t2s"):
        for bad in worse:
            assert good[f"cf_kid_{d}"] + 2 * good[f"cf_kid_std_{d}"] < bad[f"cf_kid_{d}"] - 2 * bad[f"cf_kid_std_{d}"]
            assert 3 * good[f"texture_{d}"] < bad[f"texture_{d}"]
            assert good[f"object_target_{d}"] >= 0.9 > 0.1 >= bad[f"object_target_{d}"]
        assert good[f"cf_psnr_{d}"] > scores["repaint"][f"cf_psnr_{d}"] + 10


def test_object_classifier_sees_only_objects_and_metrics_repeat(sanity_data, tmp_path):
    import shutil

    from agit.features import _labelled_train_set, list_images

    files = {f: list_images(sanity_data / f) for f in ("trainA", "trainB")}
    images, labels = _labelled_train_set(sanity_data, files, "object", 32)
    grey = (images == 128).all(1)
    assert grey.flatten(1).float().mean() > 0.5  # most of every image is the grey outside the object
    assert len(images) == len(labels["object"]) < 80  # object-free images are left out
    copy = shutil.copytree(sanity_data, tmp_path / "copy", ignore=shutil.ignore_patterns(".agit"))
    first = evaluate_references(sanity_data, 32, kinds=("identity",), kid_subsets=10, kid_subset_size=10)
    again = evaluate_references(copy, 32, kinds=("identity",), kid_subsets=10, kid_subset_size=10)
    assert first == again  # the classifiers retrained from scratch on the copy: same seed, same numbers
