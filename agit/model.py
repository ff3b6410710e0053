"""AGGAN: attention-guided generators (Eq. 1), cycle (Eq. 3), LSGAN (Eq. 2/4), stage-2 D (Eq. 6-7).

Directions are named from the source domain S to the target domain T:
``"s2t"`` uses F_ST, A_S and is judged by D_T; ``"t2s"`` uses F_TS, A_T and D_S.

The adversarial criterion is LSGAN (the paper's); ``cfg.gan_loss`` swaps it in one
place (`gan_loss`) for the Table 1 baselines, which live in baselines.py.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config, Stage
from .nets import AttentionNet, Discriminator, Generator, init_weights

DIRECTIONS = ("s2t", "t2s")
REVERSE = {"s2t": "t2s", "t2s": "s2t"}

# The paper's name for each loss term a training step returns and logs (AGGAN.iteration_losses).
PAPER_TERMS = {
    "adv_s2t": "L_adv^s (Eq. 2): F_ST and A_S want D_T to score s' as real",
    "adv_t2s": "L_adv^t: F_TS and A_T want D_S to score t' as real",
    "cyc_s2t": "λ_cyc · L_cyc^s (Eq. 3): s -> s' -> s'' should give back s",
    "cyc_t2s": "λ_cyc · L_cyc^t: t -> t' -> t'' should give back t",
    "idt_s2t": "CycleGAN's identity term: F_ST(t) should be t",
    "idt_t2s": "CycleGAN's identity term: F_TS(s) should be s",
    "d_s2t": "D_T's loss (Eq. 2, D's side, halved): real t -> 1, fake s' -> 0",
    "d_t2s": "D_S's loss: real s -> 1, fake t' -> 0",
    "total": "L (Eq. 4; Eq. 7 in stage 2): the generators' objective, the sum of their terms",
}


class Translation(NamedTuple):
    image: torch.Tensor  # s' (Eq. 1)
    attention: torch.Tensor  # s_a = A_S(s), N x 1 x H x W in [0, 1]
    raw: torch.Tensor  # F_ST(s), the generator's output before composition


class Cycle(NamedTuple):
    forward: Translation  # s -> s'
    back: torch.Tensor  # s'' (Eq. 3)


def compose(x: torch.Tensor, raw: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Eq. 1: s' = s_a * F_ST(s) + (1 - s_a) * s. Attention 0 keeps the input, 1 is CycleGAN's output."""
    return attention * raw + (1 - attention) * x


def d_inputs(model, direction: str, s, t, translations, stage: Stage):
    """(real, its attention, fake, its mask) for the D of `direction`'s target, for any model with
    `fake_for_d` (AGGAN, UNIT): D_T's real t is masked by A_T(t) in stage 2 (Eq. 6), which the
    reverse translation t -> t' computed already; the fake is what `model.fake_for_d` shows."""
    real = t if direction == "s2t" else s
    return real, translations[REVERSE[direction]].attention, *model.fake_for_d(translations[direction], stage)


def gan_loss(pred: torch.Tensor, real: bool, kind: str) -> torch.Tensor:
    """The adversarial criterion on D's scores, pushing them towards `real` or fake.

    'lsgan' (Eq. 2): squared distance to 1 or 0. 'gan': sigmoid cross-entropy (D's scores
    are logits); a generator asking for `real` gets the non-saturating form. 'wgan': the
    critic's mean score, to raise for real and lower for fake.
    """
    if kind == "wgan":
        return -pred.mean() if real else pred.mean()
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    if kind == "lsgan":
        return F.mse_loss(pred, target)
    if kind == "gan":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"unknown gan_loss {kind!r}")


def discriminator_gan_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor, kind: str) -> torch.Tensor:
    """D's term: real -> real, fake -> fake; halved for LSGAN as in CycleGAN."""
    loss = gan_loss(pred_real, True, kind) + gan_loss(pred_fake, False, kind)
    return 0.5 * loss if kind == "lsgan" else loss


def distance(x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """Mean absolute ('l1', the paper's) or squared ('l2') difference."""
    return F.l1_loss(x, y) if norm == "l1" else F.mse_loss(x, y)


class AGGAN(nn.Module):
    generator_class = Generator  # F; RA (baselines.py) swaps in its residual-attention generator

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.gen_s2t, self.gen_t2s = self.generator_class(cfg), self.generator_class(cfg)
        self.att_s = AttentionNet(cfg) if cfg.attention_s else None
        self.att_t = AttentionNet(cfg) if cfg.attention_t else None
        self.dis_s, self.dis_t = Discriminator(cfg), Discriminator(cfg)
        init_weights(self)
        for att in self.attention_nets():
            nn.init.constant_(att.last_conv.bias, cfg.att_init_bias)

    # -- parts by direction ---------------------------------------------------
    def generator(self, direction: str) -> Generator:
        return self.gen_s2t if direction == "s2t" else self.gen_t2s

    def attention_net(self, direction: str) -> AttentionNet | None:
        return self.att_s if direction == "s2t" else self.att_t

    def judge(self, direction: str) -> Discriminator:
        """The discriminator of the direction's *target* domain."""
        return self.dis_t if direction == "s2t" else self.dis_s

    def attention_nets(self) -> list[AttentionNet]:
        return [a for a in (self.att_s, self.att_t) if a is not None]

    def param_groups(self) -> dict[str, list[nn.Module | None]]:
        """One optimiser each: F_ST with A_S, F_TS with A_T, D_T, D_S."""
        return {"g_s2t": [self.gen_s2t, self.att_s], "g_t2s": [self.gen_t2s, self.att_t],
                "d_t": [self.dis_t], "d_s": [self.dis_s]}

    def generator_group(self, direction: str) -> str:
        """The param group that a direction's generator step updates."""
        return "g_" + direction

    # -- Eq. 1 ------------------------------------------------------------------
    def attention(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """A(x); a variant without that attention net uses 1 everywhere (CycleGAN)."""
        net = self.attention_net(direction)
        if net is None:
            return x.new_ones(x.shape[0], 1, *x.shape[2:])
        return net(x)

    def translate(self, x: torch.Tensor, direction: str = "s2t") -> Translation:
        """Eq. 1: s' = s_a * F_ST(s) + (1 - s_a) * s."""
        raw = self.generator(direction)(x)
        attention = self.attention(x, direction)
        return Translation(compose(x, raw, attention), attention, raw)

    def cycle(self, x: torch.Tensor, direction: str) -> Cycle:
        """s -> s' -> s''. The way back uses A_T(s'), the attention of the *translated*
        image; 'Ours-cycleAtt' reuses s_a instead."""
        fwd = self.translate(x, direction)
        back_dir = REVERSE[direction]
        raw_back = self.generator(back_dir)(fwd.image)
        if self.cfg.cycle_attention == "reuse":
            att_back = fwd.attention
        else:
            att_back = self.attention(fwd.image, back_dir)
        return Cycle(fwd, compose(fwd.image, raw_back, att_back))

    # -- what the discriminators see (Eq. 6): `stage.d_masked` says whether they are masked --
    def d_mask(self, attention: torch.Tensor, tau: float | None = None) -> torch.Tensor:
        """Eq. 6's mask: [A >= tau] as the released code (`tau_inclusive`), or [A > tau] as the paper writes."""
        tau = self.cfg.tau if tau is None else tau
        keep = attention >= tau if self.cfg.tau_inclusive else attention > tau
        return keep.to(attention.dtype)

    def d_input(self, image: torch.Tensor, attention: torch.Tensor, stage: Stage,
                tau: float | None = None) -> torch.Tensor:
        """Stage 1: the whole image. Stage 2: only the pixels of `d_mask(attention, tau)`."""
        if not stage.d_masked:
            return image
        return image * self.d_mask(attention, tau)

    def fake_for_d(self, fwd: Translation, stage: Stage) -> tuple[torch.Tensor, torch.Tensor]:
        """The (image, mask) pair a fake contributes, to G's adversarial term and to the pool.

        s' in stage 1; in stage 2 s' (`d_fake='composite'`, released code) or F_ST(s)
        (`'raw'`, Eq. 6), which `d_input` then masks by the pair's own attention.
        """
        raw = stage.d_masked and self.cfg.d_fake == "raw"
        return (fwd.raw if raw else fwd.image), fwd.attention

    def judge_score(self, direction: str, image, attention, stage: Stage) -> torch.Tensor:
        """D's scores for `image`; a masked D runs without its instance norms (same weights, Eq. 7)."""
        dis = self.judge(direction)
        return dis(self.d_input(image, attention, stage), norm=not stage.d_masked)

    # -- losses (Eq. 2-4, 7) ------------------------------------------------------
    def adversarial_loss(self, direction: str, fwd: Translation, stage: Stage) -> torch.Tensor:
        """Generator term (LSGAN, Eq. 2): F (and A) want D to score the fake as real (1)."""
        pred = self.judge_score(direction, *self.fake_for_d(fwd, stage), stage)
        return gan_loss(pred, True, self.cfg.gan_loss)

    def cycle_loss(self, x: torch.Tensor, cyc: Cycle) -> torch.Tensor:
        """Eq. 3, L1 (`cycle_norm`), already weighted by lambda_cyc (0 for 'Ours-cycle')."""
        if not self.cfg.use_cycle:
            return x.new_zeros(())
        return self.cfg.lambda_cyc * distance(cyc.back, x, self.cfg.cycle_norm)

    def identity_loss(self, target: torch.Tensor, direction: str) -> torch.Tensor:
        """CycleGAN's optional identity term: a target-domain image should pass F_ST unchanged."""
        weight = self.cfg.lambda_cyc * self.cfg.lambda_identity
        return weight * F.l1_loss(self.translate(target, direction).image, target)

    def generator_loss(self, s, t, directions, stage: Stage):
        """Eq. 4 (Eq. 7 in stage 2) for the generators of `directions`: both cycles count,
        the adversarial terms of `directions` only. Returns (total, named terms, and the
        forward translations s', t' by direction, which the discriminators then judge)."""
        cycles = {"s2t": self.cycle(s, "s2t"), "t2s": self.cycle(t, "t2s")}
        cyc = {d: self.cycle_loss(x, cycles[d]) for d, x in (("s2t", s), ("t2s", t))}
        adv = {d: self.adversarial_loss(d, cycles[d].forward, stage) for d in directions}
        loss = sum(adv.values()) + cyc["s2t"] + cyc["t2s"]
        terms = {**{f"adv_{d}": v for d, v in adv.items()}, **{f"cyc_{d}": v for d, v in cyc.items()}}
        if self.cfg.lambda_identity:
            targets = {"s2t": t, "t2s": s}
            idt = {f"idt_{d}": self.identity_loss(targets[d], d) for d in directions}
            loss = loss + sum(idt.values())
            terms.update(idt)
        return loss, terms, {d: c.forward for d, c in cycles.items()}

    def discriminator_loss(self, direction: str, real, real_att, fake, fake_att, stage: Stage):
        """D term (LSGAN, halved as in CycleGAN): real -> 1, fake (from the pool) -> 0."""
        pred_real = self.judge_score(direction, real, real_att, stage)
        pred_fake = self.judge_score(direction, fake, fake_att, stage)
        return discriminator_gan_loss(pred_real, pred_fake, self.cfg.gan_loss)

    def iteration_losses(self, s: torch.Tensor, t: torch.Tensor, stage: Stage) -> dict[str, torch.Tensor]:
        """Every loss term of one iteration at the current weights in `stage` (`cfg.stage(epoch)`),
        keyed as a training step logs them (PAPER_TERMS gives the paper's names): the generators'
        terms of Eq. 4 (Eq. 7 in stage 2) and their sum 'total', then each discriminator's term
        on these fakes (a training step shows D fakes from the history pool instead)."""
        total, terms, fakes = self.generator_loss(s, t, DIRECTIONS, stage)
        for d in DIRECTIONS:
            terms[f"d_{d}"] = self.discriminator_loss(d, *d_inputs(self, d, s, t, fakes, stage), stage)
        return {**terms, "total": total}
