"""The Table 1 baselines: each trains under `ci`, resumes bit-identically, and has what defines it."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from agit import METHODS, build_model, preset
from agit.baselines import RA, UNIT, CycleGAN, DiscoGAN, DualGAN, ResidualAttention
from agit.cli import default_run_dir, main
from agit.run import Run
from agit.train import Interrupted, Trainer

from helpers import assert_same_training, stop_during

BASELINES = [m for m in METHODS if m != "aggan"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast, and immune to stalls when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(n=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def tiny(method, **kw):
    torch.manual_seed(0)
    return build_model(preset("ci", method=method, **kw))


# -- config: the method is a field of its own, its defaults over the preset's -----------------
def test_method_defaults_lie_over_the_preset_and_under_overrides():
    d = preset("ci", method="dualgan")
    assert (d.gan_loss, d.optimizer, d.n_critic, d.clip) == ("wgan", "rmsprop", 2, 0.01)
    assert (d.lr, d.pool_size, d.size) == (5e-5, 0, preset("ci").size)  # over the preset's lr and pool
    assert preset("ci", method="dualgan", lr=1e-3).lr == 1e-3
    disco = preset("quick", method="discogan")
    assert (disco.gan_loss, disco.lambda_cyc, disco.data) == ("gan", 1.0, preset("quick").data)
    assert preset("ci", method="unit").update_order == "joint"
    a = preset("official")
    assert (a.method, a.gan_loss, a.optimizer, a.n_critic, a.clip) == ("aggan", "lsgan", "adam", 1, 0)
    assert a.lambda_identity == 0 and a.cycle_norm == "l1" and a.weight_decay == 0


def test_cyclegan_method_and_variant_are_one_switch():
    assert preset("ci", method="cyclegan").to_dict() == preset("ci", variant="cyclegan").to_dict()
    assert preset("ci", variant="cyclegan").method == "cyclegan"
    assert preset("ci", method="ra").variant == "cyclegan"  # every baseline is attention-free
    with pytest.raises(ValueError, match="ablates AGGAN's attention"):
        preset("ci", method="unit", variant="d")
    with pytest.raises(ValueError, match="unknown method"):
        preset("ci", method="munit")
    with pytest.raises(ValueError, match="update_order='joint'"):
        preset("ci", method="unit", update_order="sequential")
    with pytest.raises(ValueError, match="gan_loss"):
        preset("ci", gan_loss="hinge")


# -- what defines each method --------------------------------------------------------------------
def test_cyclegan_output_is_the_raw_generator_output():
    m = tiny("cyclegan")
    assert type(m) is CycleGAN and m.attention_nets() == []
    x = images(2)
    for d in ("s2t", "t2s"):
        tr = m.translate(x, d)
        assert torch.equal(tr.image, tr.raw) and torch.equal(tr.raw, m.generator(d)(x))
        assert torch.all(tr.attention == 1)


def test_discogan_loss_is_cross_entropy_with_reconstruction_weighted_equally():
    m = tiny("discogan")
    assert type(m) is DiscoGAN
    s, t = images(1, seed=1), images(1, seed=2)
    loss, terms, fakes = m.generator_loss(s, t, ("s2t", "t2s"), m.cfg.stage(0))
    for d, x in (("s2t", s), ("t2s", t)):
        logits = m.judge(d)(fakes[d].image)
        torch.testing.assert_close(terms[f"adv_{d}"], -F.logsigmoid(logits).mean())  # non-saturating
        back = m.translate(fakes[d].image, "t2s" if d == "s2t" else "s2t").image
        torch.testing.assert_close(terms[f"cyc_{d}"], F.mse_loss(back, x))  # weight 1, like the GAN term
    torch.testing.assert_close(loss, sum(terms.values()))
    real, fake = images(1, seed=3), images(1, seed=4)
    pr, pf = m.dis_t(real), m.dis_t(fake)
    expected = -F.logsigmoid(pr).mean() - F.logsigmoid(-pf).mean()  # not halved
    torch.testing.assert_close(m.discriminator_loss("s2t", real, None, fake, None, m.cfg.stage(0)), expected)


def test_ra_module_output_is_one_plus_mask_times_trunk():
    m = tiny("ra")
    assert type(m) is RA
    module = m.gen_s2t.attention_module
    assert isinstance(module, ResidualAttention) and module is m.gen_s2t.net[1]
    h = m.gen_s2t.net[0](images(2))  # the generator's first layer feeds it
    mask = module.mask(h)
    assert mask.shape == h.shape and 0 <= mask.min() and mask.max() <= 1
    torch.testing.assert_close(module(h), (1 + mask) * module.trunk(h))
    tr = m.translate(images(1, size=36), "t2s")  # sizes that are not powers of two pass too
    assert tr.image.shape == (1, 3, 36, 36) and torch.equal(tr.image, tr.raw)


def test_unit_encoders_share_high_level_layers_only():
    m = tiny("unit")
    assert type(m) is UNIT and m.attention_net("s2t") is None
    shared = [(m.enc["s"][-1], m.enc["t"][-1]), (m.dec["s"][0], m.dec["t"][0])]
    for a, b in shared:
        assert a is b and all(p is q for p, q in zip(a.parameters(), b.parameters()))
    for a, b in ((m.enc["s"][0], m.enc["t"][0]), (m.dec["s"][-2], m.dec["t"][-2])):
        assert all(p is not q for p, q in zip(a.parameters(), b.parameters()))
    params = [p for mod in m.param_groups()["g"] for p in mod.parameters()]
    assert len(params) == len({id(p) for p in params})  # one optimiser sees each shared weight once
    x = images(2)
    assert torch.equal(m.translate(x).image, m.translate(x).image)  # mean code: deterministic
    loss, terms, _ = m.generator_loss(x[:1], x[1:], ("s2t", "t2s"), m.cfg.stage(0))
    assert {"recon_s", "kl_t", "cyc_s2t", "kl_cyc_t2s", "adv_t2s"} <= set(terms)
    assert torch.isfinite(loss)


def test_identity_loss_is_optional_and_weighted_like_cyclegan():
    m = tiny("cyclegan", lambda_identity=0.5)
    s, t = images(1, seed=1), images(1, seed=2)
    _, terms, _ = m.generator_loss(s, t, ("s2t",), m.cfg.stage(0))
    torch.testing.assert_close(terms["idt_s2t"], 10 * 0.5 * F.l1_loss(m.gen_s2t(t), t))
    assert "idt_s2t" not in tiny("cyclegan").generator_loss(s, t, ("s2t",), m.cfg.stage(0))[1]


# -- every baseline trains, logs finite losses and resumes bit-identically ------------------------
@pytest.mark.parametrize("method", BASELINES)
def test_baseline_trains_and_resumes_bit_identically(method, tiny_data, tmp_path):
    cfg = preset("ci", data=str(tiny_data), method=method, epochs=1, iters_per_epoch=2, sample_every=0)
    Trainer(cfg, tmp_path / "straight").fit(progress=False)
    cut = Trainer(cfg, tmp_path / "cut")
    stop_during(cut, 0, 0)  # Ctrl-C during the first iteration
    with pytest.raises(Interrupted):
        cut.fit(progress=False)
    resumed = Trainer.resume(tmp_path / "cut")
    resumed.fit(progress=False)
    assert_same_training(Run(tmp_path / "straight").load_checkpoint(), Run(tmp_path / "cut").load_checkpoint())

    logs = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    iters = [r for r in logs if r["kind"] == "iter"]
    assert len(iters) == 2
    assert all(math.isfinite(v) for r in iters for k, v in r.items() if k not in ("kind",))
    g_steps = [r["step"] for r in iters if "adv_s2t" in r]
    assert g_steps == ([2] if method == "dualgan" else [1, 2])  # n_critic 2: G on every second iteration
    assert all("d_s2t" in r and "d_t2s" in r for r in iters)
    if method == "dualgan":
        clip = cfg.clip
        for dis in (resumed.model.dis_s, resumed.model.dis_t):
            learned = [p for p in dis.parameters() if p.requires_grad]
            assert all(p.abs().max() <= clip for p in learned)
            assert any(p.abs().max() == clip for p in learned)  # the clip is active, not vacuous
    if method == "unit":
        m = resumed.model
        assert all(p is q for p, q in zip(m.enc["s"][-1].parameters(), m.enc["t"][-1].parameters()))


def test_cli_trains_a_baseline_and_translates_with_it(tiny_data, tmp_path, capsys):
    run = tmp_path / "unit"
    assert main(["train", "--preset", "ci", "--method", "unit", "--data", str(tiny_data), "--out", str(run),
                 "--epochs", "1", "--set", "iters_per_epoch=1"]) == 0
    assert json.loads((run / "config.json").read_text())["method"] == "unit"
    assert type(Run(run).load_model()) is UNIT
    assert main(["translate", "--run", str(run), "--input", str(tiny_data / "testA"),
                 "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o" / "images").iterdir())) == 6
    assert main(["evaluate", "--run", str(run), "--kid", "none"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["bg_psnr_s2t"]) and math.isnan(metrics["iou_s2t"])  # no attention to score
    assert default_run_dir(preset("ci", method="dualgan")).name == "ci-ci-dualgan"
    assert default_run_dir(preset("ci", variant="d")).name == "ci-ci-d"
    assert type(build_model(preset("ci", method="dualgan"))) is DualGAN
