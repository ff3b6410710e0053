import pytest
import torch

from agit import AGGAN, VARIANTS, Config, preset
from agit.config import parse_override
from agit.nets import conv_weight_count


@pytest.mark.parametrize("name, gen, att, dis", [
    ("official", 2_847_936, 103_040, 2_763_776),
    ("paper", None, 153_728, 2_763_776),
])
def test_weight_counts_match_the_released_architecture(name, gen, att, dis):
    m = AGGAN(preset(name))
    if gen:
        assert conv_weight_count(m.gen_s2t) == gen
    assert conv_weight_count(m.att_s) == att == conv_weight_count(m.att_t)
    assert conv_weight_count(m.dis_t) == dis


def tiny(**kw):
    return AGGAN(preset("ci", **kw))


def force_attention(model, value):
    """Make A output exactly `value` everywhere (0 or 1) via the last layer."""
    for att in model.attention_nets():
        torch.nn.init.zeros_(att.last_conv.weight)
        torch.nn.init.constant_(att.last_conv.bias, 1e4 if value else -1e4)


def test_translate_shapes_and_range():
    m = tiny()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    tr = m.translate(x, "t2s")
    assert tr.image.shape == tr.raw.shape == x.shape
    assert tr.attention.shape == (3, 1, 32, 32)
    assert 0 <= tr.attention.min() and tr.attention.max() <= 1


def test_eq1_attention_zero_is_identity_and_one_is_the_generator():
    m = tiny()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    force_attention(m, 0)
    assert torch.equal(m.translate(x).image, x)
    force_attention(m, 1)
    tr = m.translate(x)
    assert torch.equal(tr.image, tr.raw)


def test_eq1_blends_per_pixel():
    m = tiny()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    tr = m.translate(x)
    a = tr.attention
    torch.testing.assert_close(tr.image, a * tr.raw + (1 - a) * x)


def test_cyclegan_variant_has_no_attention_nets():
    m = tiny(variant="cyclegan")
    assert m.att_s is None and m.att_t is None
    x = torch.rand(1, 3, 32, 32)
    tr = m.translate(x)
    assert torch.equal(tr.image, tr.raw) and torch.all(tr.attention == 1)


@pytest.mark.parametrize("variant, att_s, att_t", [("as", True, False), ("at", False, True)])
def test_single_attention_variants(variant, att_s, att_t):
    m = tiny(variant=variant)
    assert (m.att_s is not None) == att_s and (m.att_t is not None) == att_t


def test_cycle_uses_attention_of_the_translated_image():
    m = tiny()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    cyc = m.cycle(x, "s2t")
    a_back = m.att_t(cyc.forward.image)
    raw_back = m.gen_t2s(cyc.forward.image)
    torch.testing.assert_close(cyc.back, a_back * raw_back + (1 - a_back) * cyc.forward.image)
    reuse = tiny(variant="cycleatt")
    reuse.load_state_dict(m.state_dict())
    cyc2 = reuse.cycle(x, "s2t")
    s_a = cyc2.forward.attention
    torch.testing.assert_close(cyc2.back, s_a * raw_back + (1 - s_a) * cyc2.forward.image)


def test_stage2_discriminator_input_is_thresholded():
    m = tiny()
    img = torch.ones(1, 3, 8, 8)
    att = torch.zeros(1, 1, 8, 8)
    att[..., :4] = 0.5
    att[..., 4:6] = 0.1  # exactly tau: not above it
    assert torch.equal(m.d_input(img, att, stage2=False), img)
    masked = m.d_input(img, att, stage2=True)
    assert masked[..., :4].eq(1).all() and masked[..., 4:].eq(0).all()
    # whole-image D ablations never mask
    assert torch.equal(tiny(variant="d").d_input(img, att, stage2=True), img)


def test_stage2_fake_for_d_is_the_raw_generator_output():
    m = tiny()
    x = torch.rand(1, 3, 32, 32)
    tr = m.translate(x)
    assert m.fake_for_d(tr, stage2=False)[0] is tr.image
    assert m.fake_for_d(tr, stage2=True)[0] is tr.raw


def test_discriminator_norm_switch_keeps_weights():
    m = tiny()
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(m.dis_t(x, norm=True), m.dis_t(x, norm=False))


def test_no_cycle_variant_has_zero_cycle_loss():
    m = tiny(variant="cycle")
    x = torch.rand(1, 3, 32, 32)
    assert m.cycle_loss(x, m.cycle(x, "s2t")).item() == 0


def test_config_rejects_unknown_keys_and_variants():
    with pytest.raises(KeyError, match="'nope'"):
        preset("quick", nope=1)
    with pytest.raises(ValueError, match="unknown variant"):
        preset("quick", variant="x")
    with pytest.raises(KeyError, match="unknown preset"):
        preset("huge")
    with pytest.raises(KeyError, match="'bogus'"):
        Config.from_dict({"bogus": 1})
    assert parse_override("lr=0.001") == ("lr", 0.001)
    assert parse_override("shuffle=false") == ("shuffle", False)
    assert parse_override("iters_per_epoch=7") == ("iters_per_epoch", 7)
    with pytest.raises(KeyError):
        parse_override("nope=1")


def test_presets_differ_only_where_paper_and_code_disagree():
    official, paper = preset("official").to_dict(), preset("paper").to_dict()
    diff = {k for k in official if official[k] != paper[k]}
    assert diff == {"preset", "gen_last_kernel", "att_up_kernel", "att_last_kernel"}
    o = preset("official")
    assert (o.lr, o.epochs, o.switch_epoch, o.decay_epoch, o.tau, o.pool_size) == (1e-4, 100, 30, 50, 0.1, 50)
    assert o.update_order == "sequential" and not o.shuffle and o.size == 256 and o.load_size == 286


def test_every_variant_builds_and_steps(tiny_data):
    from agit.train import Trainer

    for v in VARIANTS:
        t = Trainer(preset("ci", data=str(tiny_data), variant=v), "/nonexistent-unused")
        s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
        losses = t.train_step(s, u)
        assert all(torch.isfinite(torch.tensor(list(losses.values())))), v
