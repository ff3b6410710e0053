import json
import math

import pytest

from agit.cli import main
from agit.evaluate import METRIC_KEYS, evaluate_run
from agit.metrics import collect
from agit.train import Trainer


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data):
    from agit import preset

    run = tmp_path_factory.mktemp("runs") / "ours"
    Trainer(preset("ci", data=str(tiny_data), epochs=1), run).fit(progress=False)
    return run


def test_evaluate_writes_every_metric_for_both_directions(trained_run):
    result = evaluate_run(trained_run, kid="domain-cnn", kid_subsets=3, kid_subset_size=5)
    saved = json.loads((trained_run / "metrics.json").read_text())
    assert saved["kid_extractor"] == "domain-cnn"
    for d in ("s2t", "t2s"):
        for k in METRIC_KEYS:
            assert f"{k}_{d}" in saved
        assert math.isfinite(saved[f"kid_{d}"]) and saved[f"kid_std_{d}"] >= 0
        assert 0 <= saved[f"iou_{d}"] <= 1 and 0 <= saved[f"target_rate_{d}"] <= 1
        assert 0 < saved[f"bg_psnr_{d}"] <= 100
    assert result == saved
    table = collect([trained_run])
    assert table.loc["ours", "variant"] == "ours" and "kid_s2t" in table.columns


def test_cyclegan_run_has_no_attention_metrics(tiny_data, tmp_path):
    from agit import preset

    run = tmp_path / "cg"
    Trainer(preset("ci", data=str(tiny_data), epochs=1, variant="cyclegan"), run).fit(progress=False)
    result = evaluate_run(run, kid="none")
    assert math.isnan(result["iou_s2t"]) and math.isnan(result["empty_att_s2t"])
    assert math.isnan(result["kid_s2t"]) and result["kid_extractor"] == "none"
    assert math.isfinite(result["bg_psnr_s2t"])


def test_cli_small_test_set_and_offline_inception_errors(trained_run, tmp_path, monkeypatch, capsys):
    assert main(["evaluate", "--run", str(trained_run)]) == 2  # 6 test images < 50 per subset
    err = capsys.readouterr().err
    assert "at least 50" in err and "6" in err and "--kid-subset-size" in err
    monkeypatch.delenv("AGIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    assert main(["evaluate", "--run", str(trained_run), "--kid", "inception"]) == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and "https://" in err
    assert main(["evaluate", "--run", str(trained_run), "--kid", "none"]) == 0
    assert "iou" in capsys.readouterr().out
