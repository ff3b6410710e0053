import json
import math
import shutil

import pytest
import torch

from agit import preset
from agit.config import check_schedule
from agit.cli import main
from agit.run import Run
from agit.step import lr_factor
from agit.train import Interrupted, Trainer, TrainingDiverged

from helpers import assert_same_training, stop_during


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_switch_freezes_attention_while_g_and_d_train(ci_cfg, tmp_path):
    t = Trainer(ci_cfg, tmp_path / "run")
    t.set_epoch(ci_cfg.switch_epoch)
    assert t.stage.number == 2 and t.stage.attention_frozen and t.stage.d_masked
    m = t.model
    before = {n: snapshot(getattr(m, n)) for n in ("att_s", "att_t", "gen_s2t", "gen_t2s", "dis_s", "dis_t")}
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    t.train_step(s, u)
    assert not changed(before["att_s"], m.att_s) and not changed(before["att_t"], m.att_t)
    for name in ("gen_s2t", "gen_t2s", "dis_s", "dis_t"):
        assert changed(before[name], getattr(m, name)), name


def test_stage1_trains_attention_and_da_never_freezes(ci_cfg, tmp_path):
    t = Trainer(ci_cfg, tmp_path / "run")
    before = snapshot(t.model.att_s)
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    t.train_step(s, u)
    assert changed(before, t.model.att_s)
    da = Trainer(preset("ci", data=ci_cfg.data, variant="da"), tmp_path / "da")
    da.set_epoch(5)
    assert da.stage.number == 2 and not da.stage.attention_frozen
    assert all(p.requires_grad for p in da.model.att_s.parameters())


def test_attention_warmup_keeps_a_fixed_while_f_and_d_train(ci_cfg, tmp_path):
    cfg = preset("ci", data=ci_cfg.data, epochs=4, switch_epoch=3, att_warmup_epochs=2)
    assert [cfg.stage(e).attention_frozen for e in range(4)] == [True, True, False, True]
    assert [cfg.stage(e).number for e in range(4)] == [1, 1, 1, 2]
    t = Trainer(cfg, tmp_path / "run")
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    for epoch, trains_attention in ((1, False), (2, True)):
        t.set_epoch(epoch)
        before = {n: snapshot(getattr(t.model, n)) for n in ("att_s", "att_t", "gen_s2t", "dis_t")}
        t.train_step(s, u)
        for name in ("att_s", "att_t"):
            assert changed(before[name], getattr(t.model, name)) == trains_attention, (epoch, name)
        assert changed(before["gen_s2t"], t.model.gen_s2t) and changed(before["dis_t"], t.model.dis_t)


@pytest.mark.parametrize("warmup, switch", [(3, 3), (4, 3), (-1, 3)])
def test_attention_warmup_must_end_before_the_switch(ci_cfg, warmup, switch):
    with pytest.raises(ValueError, match="att_warmup_epochs"):
        check_schedule(preset("ci", data=ci_cfg.data, epochs=5, switch_epoch=switch, att_warmup_epochs=warmup))


def test_attention_warmup_is_moot_without_attention(ci_cfg):
    cfg = preset("ci", data=ci_cfg.data, epochs=5, switch_epoch=3, att_warmup_epochs=4, method="cyclegan")
    assert cfg.att_warmup_epochs == 4


def test_sequential_update_order_steps_all_networks(ci_cfg, tmp_path):
    cfg = preset("ci", data=ci_cfg.data, update_order="sequential")
    t = Trainer(cfg, tmp_path / "run")
    before = snapshot(t.model)
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    losses = t.train_step(s, u)
    assert set(losses) == {"adv_s2t", "adv_t2s", "cyc_s2t", "cyc_t2s", "d_s2t", "d_t2s"}
    assert changed(before, t.model)


def test_lr_constant_then_linear_to_zero():
    cfg = preset("official")
    assert lr_factor(cfg, 0) == lr_factor(cfg, 49) == 1
    assert lr_factor(cfg, 75) == pytest.approx(0.5)
    assert lr_factor(cfg, 99) == pytest.approx(0.02)


def final_state(run):
    return Run(run).load_checkpoint()


@pytest.mark.parametrize("tf_exact", [False, True])
def test_resume_is_bit_identical(ci_cfg, tmp_path, tf_exact):
    if tf_exact:  # official's TF arithmetic: the shared Adam step count must resume too
        ci_cfg = preset("ci", data=ci_cfg.data, tf_same_padding=True, resize_filter="tf1_bilinear",
                        adam_epsilon_hat=True, adam_shared_counter=True, update_order="sequential")
    Trainer(ci_cfg, tmp_path / "straight").fit(progress=False)
    Trainer(ci_cfg, tmp_path / "split").fit(epochs=1, progress=False)
    Trainer.resume(tmp_path / "split").fit(progress=False)
    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "split")
    assert a["epoch"] == b["epoch"] == ci_cfg.epochs
    assert_same_training(a, b)
    logs = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "iter" for r in logs) == ci_cfg.epochs * ci_cfg.iters_per_epoch
    assert (tmp_path / "split" / "checkpoints" / "epoch_0001.pt").exists()
    assert sorted(p.name for p in (tmp_path / "split" / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]


def test_interrupt_mid_epoch_checkpoints_and_resumes_identically(ci_cfg, tmp_path, capsys):
    Trainer(ci_cfg, tmp_path / "straight").fit(progress=False)
    t = Trainer(ci_cfg, tmp_path / "cut")
    stop_during(t, 1, 1)  # Ctrl-C lands during the 2nd iteration of epoch 2
    with pytest.raises(Interrupted, match="at epoch 2, iteration 2"):
        t.fit(progress=False)
    state = final_state(tmp_path / "cut")
    assert (state["epoch"], state["step"]) == (1, 2)
    Trainer.resume(tmp_path / "cut").fit(progress=False)
    assert_same_training(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(ci_cfg, tmp_path):
    t = Trainer(ci_cfg, tmp_path / "run")
    t.fit(epochs=1, progress=False)
    good = (tmp_path / "run" / "checkpoints" / "latest.pt").read_bytes()
    t.train_step = lambda s, u: {"adv_s2t": math.nan, "d_s2t": 0.1}
    with pytest.raises(TrainingDiverged, match=r"adv_s2t=nan at epoch 2.*the last checkpoint, from before it: .*latest.pt\). A resume would diverge again: train a new run with a lower --set lr=… \(another --out, or --overwrite\)$"):
        t.fit(progress=False)
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").read_bytes() == good


def test_cli_train_translate_and_errors(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "ci", "--data", str(tiny_data), "--out", str(run),
                 "--epochs", "1", "--set", "iters_per_epoch=2"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["iters_per_epoch"] == 2
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert final_state(run)["epoch"] == 2
    assert main(["translate", "--run", str(run), "--input", str(tiny_data / "testB"),
                 "--direction", "t2s", "--out", str(tmp_path / "t")]) == 0
    assert len(list((tmp_path / "t" / "images").iterdir())) == 6
    capsys.readouterr()
    assert main(["train", "--preset", "ci", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert f"no such folder: {tmp_path / 'missing'}/trainA" in capsys.readouterr().err
    assert main(["train", "--preset", "ci", "--set", "bogus=1"]) == 2
    assert "unknown config key 'bogus'" in capsys.readouterr().err
    assert main(["translate", "--run", str(tmp_path / "none"), "--input", "x", "--out", "y"]) == 2
    assert "is not a run folder: it has no config.json" in capsys.readouterr().err


def test_recomputed_activations_train_identically(ci_cfg, tmp_path):
    from agit import preset

    plain = Trainer(ci_cfg, tmp_path / "a")
    lean = Trainer(preset("ci", data=ci_cfg.data, recompute_activations=True), tmp_path / "b")
    s, u = plain.domains[0][0]["image"][None], plain.domains[1][0]["image"][None]
    for stage2 in (False, True):
        for t in (plain, lean):
            t.set_epoch(ci_cfg.switch_epoch if stage2 else 0)
            t.train_step(s, u)
    for k, v in plain.model.state_dict().items():
        torch.testing.assert_close(v, lean.model.state_dict()[k], rtol=1e-5, atol=1e-6)


def one_step_each_stage(t, s, u):
    """Losses of a stage-1 and a stage-2 iteration."""
    out = []
    for epoch in (0, t.cfg.switch_epoch):
        t.set_epoch(epoch)
        out.append(t.train_step(s, u))
    return out


def test_compiled_networks_compute_eager_gradients_and_share_checkpoints(ci_cfg, tmp_path):
    """torch.compile (inductor, from an empty cache: 1-4 min here) against eager, a stage-1 and a stage-2 step.

    The stage-1 losses agree to 1e-4 (same weights, reordered float sums); stage 2 follows one
    Adam update, which turns rounding noise in near-zero gradients (a conv bias before instance
    norm has none: ~1e-6 either way) into steps of the size of lr: 1e-3 (measured: 6e-5).
    Gradients compared after stage 1, not updated weights, for the same reason."""
    eager = Trainer(ci_cfg, tmp_path / "a")
    fast = Trainer(preset("ci", data=ci_cfg.data, compile=True), tmp_path / "b")
    s, u = eager.domains[0][0]["image"][None], eager.domains[1][0]["image"][None]
    a, b = eager.train_step(s, u), fast.train_step(s, u)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k
    grads = dict(fast.model.named_parameters())
    for name, p in eager.model.named_parameters():  # same names: checkpoints load either way
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-3, atol=1e-5, msg=name)
    for t in (eager, fast):
        t.set_epoch(t.cfg.switch_epoch)
    a, b = eager.train_step(s, u), fast.train_step(s, u)
    for k in a:
        assert math.isfinite(b[k]) and b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-6), k
    fast.save()
    assert Run(tmp_path / "b").load_model().translate(s).image.shape == s.shape


def test_bf16_steps_stay_within_1_percent_of_fp32(ci_cfg, tmp_path):
    """Autocast to bf16 (on CPU here): a stage-1 and a stage-2 iteration, finite, every loss within
    1 % of fp32's (bf16 keeps 8 bits of mantissa, 0.4 % per rounding; measured: at most 0.12 %),
    the weights float32."""
    ref = Trainer(ci_cfg, tmp_path / "fp32")
    t = Trainer(preset("ci", data=ci_cfg.data, precision="bf16"), tmp_path / "bf16")
    before = snapshot(t.model)
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    for want, got in zip(one_step_each_stage(ref, s, u), one_step_each_stage(t, s, u)):
        assert want.keys() == got.keys()
        for k in want:
            assert math.isfinite(got[k]) and got[k] == pytest.approx(want[k], rel=1e-2), k
    assert changed(before, t.model)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    assert not t.updates.scaler.is_enabled()  # bf16 has float32's range: nothing to scale


def test_fp16_on_cpu_is_refused_in_one_line(ci_cfg, tmp_path, capsys):
    with pytest.raises(ValueError, match="precision=fp16 needs a CUDA GPU"):
        Trainer(preset("ci", data=ci_cfg.data, precision="fp16"), tmp_path / "run", device="cpu")
    assert main(["train", "--data", ci_cfg.data, "--preset", "ci", "--set", "precision=fp16", "--device", "cpu",
                 "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agit: error: precision=fp16 needs a CUDA GPU") and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 runs on CUDA only (refused on CPU)")
def test_fp16_trains_float32_weights_and_resumes_its_scaler(ci_cfg, tmp_path):
    t = Trainer(preset("ci", data=ci_cfg.data, precision="fp16"), tmp_path / "run", device="cuda")
    s, u = (t.domains[d][0]["image"][None].cuda() for d in (0, 1))
    for losses in one_step_each_stage(t, s, u):
        assert all(math.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    assert t.updates.scaler.is_enabled()
    t.updates.scaler.update(1234.0)
    t.save()
    assert Trainer.resume(tmp_path / "run", "cuda").updates.scaler.get_scale() == 1234.0


def test_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, got 'fp8'"):
        preset("ci", precision="fp8")


def test_cached_images_train_identically(ci_cfg, tmp_path):
    data = shutil.copytree(ci_cfg.data, tmp_path / "data")  # the cache goes beside the images
    plain = Trainer(preset("ci", data=str(data)), tmp_path / "a")
    cached = Trainer(preset("ci", data=str(data), cache_images=True), tmp_path / "b")
    assert sorted(p.name for p in (data / ".agit_cache").iterdir()) == ["trainA_36px_bilinear.pt", "trainB_36px_bilinear.pt"]
    for t in (plain, cached):
        t.fit(epochs=1, progress=False)
    assert_same_training(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
