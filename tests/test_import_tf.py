"""The released code's variable names -> agit, without TensorFlow.

tests/fixtures/released_tiny.npz is a checkpoint the released graph saved at ngf = ndf = 2,
32 px (every variable as the checkpoint keys it, Adam slots included), with an input pair
and the released graph's outputs for it; `python tools/crosscheck_released.py CLONE
--write-fixture tests/fixtures/released_tiny.npz` generates it.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import agit
from agit.cli import main
from agit.import_tf import checkpoint_prefix, write_imported_run
from agit.released import ReleasedCheckpointError
from agit.run import Run
from agit.train import Trainer

FIXTURE = Path(__file__).parent / "fixtures" / "released_tiny.npz"
TINY = dict(size=32, ngf=2, att_ngf=2, ndf=2)


@pytest.fixture(scope="module")
def released():
    z = np.load(FIXTURE)
    ckpt = {k[5:]: z[k] for k in z.files if k.startswith("ckpt:")}
    io = {k[3:]: z[k] for k in z.files if k.startswith("io:")}
    return ckpt, io


def nchw(x):
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def test_imported_run_translates_as_the_released_graph(released, tmp_path, capsys):
    ckpt, io = released
    write_imported_run(ckpt, tmp_path / "run", "fixture", **TINY)
    model = agit.load(tmp_path / "run").model
    with torch.no_grad():
        fs, ft = model.translate(nchw(io["s"]), "s2t"), model.translate(nchw(io["t"]), "t2s")
    assert (fs.image - nchw(io["s_prime"])).abs().max() < 5e-5  # the cross-check's tolerance
    assert (ft.image - nchw(io["t_prime"])).abs().max() < 5e-5
    assert (fs.attention - nchw(io["a_s"])[:, :1]).abs().max() < 5e-5
    assert Run(tmp_path / "run").config().tf_same_padding  # official's TF alignment: without it, ~0.3 off
    assert main(["info", str(tmp_path / "run")]) == 0
    provenance = (tmp_path / "run" / "provenance.json").read_text()
    assert "fixture" in provenance and '"epochs_trained": 0' in provenance
    with pytest.raises(RuntimeError, match="weights only"):
        Trainer.resume(tmp_path / "run")


def test_swapped_domains_make_the_checkpoints_b_the_source(released, tmp_path, capsys):
    """The authors' horse2zebra model has input_a = zebra: --swap-domains makes its B->A generator s2t."""
    ckpt, io = released
    write_imported_run(ckpt, tmp_path / "run", "fixture", swap=True, **TINY)
    model = agit.load(tmp_path / "run").model
    with torch.no_grad():
        ft, fs = model.translate(nchw(io["t"]), "s2t"), model.translate(nchw(io["s"]), "t2s")
    assert (ft.image - nchw(io["t_prime"])).abs().max() < 5e-5
    assert (fs.image - nchw(io["s_prime"])).abs().max() < 5e-5
    assert (fs.attention - nchw(io["a_s"])[:, :1]).abs().max() < 5e-5  # A_S of the checkpoint is agit's A_T
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "its domain B (input_b) is the source S" in out
    assert "Files: `config.json` (every setting), `checkpoints/latest.pt`." in out  # no log, no samples: not listed


@pytest.mark.parametrize("change, message", [
    ("drop", "1 of the released networks' .* variables are missing, e.g. Model/g_A/r9/c2/Conv/weights"),
    ("widths", r"has shape \(7, 7, 3, 2\), this config's layer needs \(32, 3, 7, 7\)"),
    ("blocks", "variables the released architecture \\(n_res 8\\) does not have, e.g. Model/g_A/r9"),
])
def test_another_architecture_or_a_partial_checkpoint_is_named_and_nothing_written(released, tmp_path, change,
                                                                                  message):
    ckpt, _ = released
    overrides = dict(TINY)
    if change == "drop":
        ckpt = {k: v for k, v in ckpt.items() if k != "Model/g_A/r9/c2/Conv/weights"}
    elif change == "widths":
        overrides = {}  # official's ngf 32 against a checkpoint of ngf 2
    else:
        overrides["n_res"] = 8
    with pytest.raises(ReleasedCheckpointError, match=message):
        write_imported_run(ckpt, tmp_path / "run", "fixture", **overrides)
    assert not (tmp_path / "run").exists()


def test_a_non_checkpoint_is_one_line_and_nothing_written(tmp_path, capsys):
    (tmp_path / "photo.jpg").write_bytes(b"not a checkpoint")
    assert main(["import-tf", str(tmp_path / "photo.jpg"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "agit: error: not a TF checkpoint: no photo.jpg.index beside" in err
    assert not (tmp_path / "run").exists()
    (tmp_path / "AGGAN-3.index").write_bytes(b"")
    (tmp_path / "AGGAN-12.index").write_bytes(b"")
    assert checkpoint_prefix(tmp_path) == tmp_path / "AGGAN-12"  # the newest epoch of a folder
    assert checkpoint_prefix(tmp_path / "AGGAN-3.data-00000-of-00001") == tmp_path / "AGGAN-3"
