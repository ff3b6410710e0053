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


@pytest.mark.parametrize("name, inclusive", [("official", True), ("paper", False)])
def test_stage2_discriminator_input_is_thresholded(name, inclusive):
    m = tiny(tau_inclusive=preset(name).tau_inclusive)
    assert m.cfg.tau_inclusive is inclusive
    img = torch.ones(1, 3, 8, 8)
    att = torch.zeros(1, 1, 8, 8)
    att[..., :4] = 0.5
    att[..., 4:6] = 0.1  # exactly tau: kept by the released code's >=, not by the paper's >
    stage1, stage2 = m.cfg.stage(0), m.cfg.stage(m.cfg.switch_epoch)
    assert torch.equal(m.d_input(img, att, stage1), img)
    masked = m.d_input(img, att, stage2)
    assert masked[..., :4].eq(1).all() and masked[..., 6:].eq(0).all()
    assert masked[..., 4:6].eq(1 if inclusive else 0).all()
    # whole-image D ablations never mask
    whole = tiny(variant="d")
    assert torch.equal(whole.d_input(img, att, whole.cfg.stage(whole.cfg.switch_epoch)), img)


@pytest.mark.parametrize("d_fake", ["composite", "raw"])
def test_stage2_fake_for_d_follows_the_setting(d_fake):
    m = tiny(d_fake=d_fake)
    x = torch.rand(1, 3, 32, 32)
    tr = m.translate(x)
    assert m.fake_for_d(tr, m.cfg.stage(0))[0] is tr.image
    assert m.fake_for_d(tr, m.cfg.stage(m.cfg.switch_epoch))[0] is (tr.image if d_fake == "composite" else tr.raw)
    assert preset("official").d_fake == "composite" and preset("paper").d_fake == "raw"


def record_discriminator_inputs(model) -> dict[str, list]:
    """Every image each D is shown, in call order."""
    seen = {"d_t": [], "d_s": []}
    for name in seen:
        getattr(model, "dis_" + name[-1]).register_forward_pre_hook(
            lambda mod, args, name=name: seen[name].append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("d_fake, inclusive", [("composite", True), ("raw", False)])
def test_stage2_d_inputs_in_the_generator_term_and_through_the_pool(tiny_data, tmp_path, d_fake, inclusive):
    from agit.train import Trainer

    t = Trainer(preset("ci", data=str(tiny_data), d_fake=d_fake, tau_inclusive=inclusive), tmp_path)
    t.set_epoch(t.cfg.switch_epoch)
    m = t.model
    att = torch.zeros(1, 1, 32, 32)
    att[..., :10], att[..., 10:20], att[..., 20:] = 0.05, 0.1, 0.7  # below, at and above tau
    m.attention = lambda x, direction: att.expand(len(x), -1, -1, -1)  # a hand-made A_S = A_T
    s, u = t.domains[0][0]["image"][None], t.domains[1][0]["image"][None]
    with torch.no_grad():
        fwd = {"s2t": m.translate(s, "s2t"), "t2s": m.translate(u, "t2s")}
    mask = ((att >= 0.1) if inclusive else (att > 0.1)).float()
    fake = {d: (f.image if d_fake == "composite" else f.raw) * mask for d, f in fwd.items()}
    seen = record_discriminator_inputs(m)
    t.train_step(s, u)
    # joint update: G's adversarial term first, then D on the real image and the pooled fake
    for name, direction, real in (("d_t", "s2t", u), ("d_s", "t2s", s)):
        g_term, real_shown, pooled = seen[name]
        torch.testing.assert_close(g_term, fake[direction])
        torch.testing.assert_close(real_shown, real * mask)
        torch.testing.assert_close(pooled, fake[direction])  # the pool's first answer is the new fake
        stored_image, stored_mask = t.updates.pools[direction].items[0]
        torch.testing.assert_close(m.d_input(stored_image[None], stored_mask[None], t.stage), fake[direction])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_masks_real_and_fake_alike(tiny_data, tmp_path, variant):
    """In stage 2 each D sees both sides masked or both whole: never a black background on one side only."""
    from agit.train import Trainer

    t = Trainer(preset("ci", data=str(tiny_data), variant=variant), tmp_path)
    t.set_epoch(t.cfg.switch_epoch)
    m = t.model
    learned = {d: m.attention_net(d) is not None for d in ("s2t", "t2s")}
    low = torch.full((1, 1, 32, 32), 0.05)  # every learned map below tau: a masked input is black
    m.attention = lambda x, d: low.expand(len(x), -1, -1, -1) if learned[d] else torch.ones_like(x[:, :1])
    seen = record_discriminator_inputs(m)
    t.train_step(t.domains[0][0]["image"][None], t.domains[1][0]["image"][None])
    for name, inputs in seen.items():
        black = [bool(x.eq(0).all()) for x in inputs]
        assert len(set(black)) == 1, (variant, name, black)
    assert any(x.eq(0).all() for x in seen["d_t"]) == m.cfg.attention_guided_d


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
    with pytest.raises(ValueError, match="variant must be one of ours, cycle, "):
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
    assert diff == {"preset", "gen_last_kernel", "att_up_kernel", "att_last_kernel", "tau_inclusive", "d_fake",
                    "tf_same_padding", "resize_filter", "adam_epsilon_hat", "adam_shared_counter"}
    for name in ("paper", "quick", "ci"):  # TF's arithmetic is the released code's alone
        c = preset(name)
        assert (c.tf_same_padding, c.resize_filter, c.adam_epsilon_hat, c.adam_shared_counter) == \
            (False, "bilinear", False, False), name
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


def test_tf_same_padding_puts_the_odd_pixel_after():
    from agit.nets import tf_same_padding

    assert tf_same_padding(256, 3, 2) == (0, 1)  # the released c2/c3 at 256 px: PyTorch's padding=1 is (1, 1)
    assert tf_same_padding(255, 3, 2) == (1, 1)
    assert tf_same_padding(256, 7, 1) == (3, 3)
    assert tf_same_padding(5, 4, 2) == (1, 2) and tf_same_padding(6, 4, 2) == (1, 1)


def test_tf_same_conv_and_transposed_conv_against_hand_computed_outputs():
    from agit.nets import TFSameConv2d, TFSameConvTranspose2d

    conv = TFSameConv2d(1, 1, 3, 2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # windows rows/cols {0,1,2} and {2,3,pad}: e.g. 0+1+2+4+5+6+8+9+10 = 45
    assert conv(x).squeeze().tolist() == [[45, 39], [66, 50]]
    assert torch.nn.functional.conv2d(x, conv.weight, stride=2, padding=1)[0, 0, 0, 0] == 10  # PyTorch's (1, 1)

    up = TFSameConvTranspose2d(1, 1, 3, 2, bias=False)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    for tap, expected in [((0, 0), [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]),  # pixel i at 2i + tap
                          ((2, 2), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])]:
        torch.nn.init.zeros_(up.weight)
        with torch.no_grad():
            up.weight[0, 0][tap] = 1
        assert up(x).squeeze().tolist() == expected


def test_tf_same_padding_changes_outputs_not_weights():
    a, b = AGGAN(preset("ci")), AGGAN(preset("ci", tf_same_padding=True))
    b.load_state_dict(a.state_dict())  # the same parameters under the same names
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert a.translate(x).image.shape == b.translate(x).image.shape == x.shape
        assert (a.translate(x).raw - b.translate(x).raw).abs().mean() > 1e-3


def test_adam_epsilon_hat_is_tfs_update():
    """Two steps with a gradient as small as epsilon, where the two placements differ most (float64)."""
    from agit.step import TFAdam

    b1, b2, eps, g = 0.5, 0.999, 1e-8, 1e-8
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = TFAdam([p], lr=1.0, betas=(b1, b2), eps=eps)
    expected = 0.0
    for t in (1, 2):
        p.grad = torch.full_like(p, g)
        opt.step()
        m, v = (1 - b1**t) * g, (1 - b2**t) * g * g  # constant gradient: the moments in closed form
        expected -= (1 - b2**t) ** 0.5 / (1 - b1**t) * m / (v**0.5 + eps)  # TF: eps outside the correction
        assert p.item() == pytest.approx(expected, rel=1e-12)
    # by hand: 0.031623 / 1.031623 + 0.044710 / 1.044710; torch's own Adam: 0.5 + 0.5
    assert p.item() == pytest.approx(-(0.030653 + 0.042797), abs=1e-5)


def test_adam_shared_counter_is_tfs_one_optimizer():
    """Two TFAdams on one counter step as TF's one AdamOptimizer serving two minimize ops:
    the second's first step is TF's step T = 2 (float64, by the formula)."""
    from agit.step import TFAdam

    b1, b2, eps, g = 0.5, 0.999, 1e-8, 1e-3
    counter = [0]
    p, q = (torch.zeros(1, dtype=torch.float64, requires_grad=True) for _ in range(2))
    first, second = (TFAdam([x], lr=1.0, betas=(b1, b2), eps=eps, counter=counter) for x in (p, q))
    for opt, x in ((first, p), (second, q)):
        x.grad = torch.full_like(x, g)
        opt.step()
    assert counter == [2]
    m, v = (1 - b1) * g, (1 - b2) * g * g  # q's own moments after its one step
    assert q.item() == pytest.approx(-(1 - b2**2) ** 0.5 / (1 - b1**2) * m / (v**0.5 + eps), rel=1e-12)
    # by hand: sqrt(1 - b2^2) / (1 - b1^2) * 0.5 g / (sqrt(0.001) g + eps), g = 1e-3: 0.9423 of lr, not 1
    assert q.item() == pytest.approx(-(0.044710 / 0.75) * (0.5 / 0.031633), rel=1e-4)
    assert p.item() == pytest.approx(-(1 - b2) ** 0.5 / (1 - b1) * m / (v**0.5 + eps), rel=1e-12)
