"""AGGAN: attention-guided generators (Eq. 1), cycle (Eq. 3), LSGAN (Eq. 2/4), stage-2 D (Eq. 6-7).

Directions are named from the source domain S to the target domain T:
``"s2t"`` uses F_ST, A_S and is judged by D_T; ``"t2s"`` uses F_TS, A_T and D_S.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .nets import AttentionNet, Discriminator, Generator, init_weights

DIRECTIONS = ("s2t", "t2s")
REVERSE = {"s2t": "t2s", "t2s": "s2t"}


class Translation(NamedTuple):
    image: torch.Tensor  # s' (Eq. 1)
    attention: torch.Tensor  # s_a = A_S(s), N x 1 x H x W in [0, 1]
    raw: torch.Tensor  # F_ST(s), the generator's output before composition


class Cycle(NamedTuple):
    forward: Translation  # s -> s'
    back: torch.Tensor  # s'' (Eq. 3)


class AGGAN(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.gen_s2t, self.gen_t2s = Generator(cfg), Generator(cfg)
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
        return Translation(attention * raw + (1 - attention) * x, attention, raw)

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
        return Cycle(fwd, att_back * raw_back + (1 - att_back) * fwd.image)

    # -- what the discriminators see (Eq. 6) -----------------------------------------
    def masked_for_d(self, stage2: bool) -> bool:
        return stage2 and self.cfg.attention_guided_d

    def d_input(self, image: torch.Tensor, attention: torch.Tensor, stage2: bool) -> torch.Tensor:
        """Stage 1: the whole image. Stage 2: only pixels where attention exceeds tau."""
        if not self.masked_for_d(stage2):
            return image
        return image * (attention > self.cfg.tau).to(image.dtype)

    def fake_for_d(self, fwd: Translation, stage2: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) pair a fake contributes: s' in stage 1, F_ST(s) under [A_S(s) > tau] in stage 2."""
        image = fwd.raw if self.masked_for_d(stage2) else fwd.image
        return image, fwd.attention

    def judge_score(self, direction: str, image, attention, stage2: bool) -> torch.Tensor:
        dis = self.judge(direction)
        return dis(self.d_input(image, attention, stage2), norm=not self.masked_for_d(stage2))

    # -- losses (Eq. 2-4, 7) ------------------------------------------------------
    def adversarial_loss(self, direction: str, fwd: Translation, stage2: bool) -> torch.Tensor:
        """LSGAN generator term: F (and A) want D to score the fake as real (1)."""
        pred = self.judge_score(direction, *self.fake_for_d(fwd, stage2), stage2)
        return F.mse_loss(pred, torch.ones_like(pred))

    def cycle_loss(self, x: torch.Tensor, cyc: Cycle) -> torch.Tensor:
        """Eq. 3, L1, already weighted by lambda_cyc (0 for 'Ours-cycle')."""
        if not self.cfg.use_cycle:
            return x.new_zeros(())
        return self.cfg.lambda_cyc * F.l1_loss(cyc.back, x)

    def discriminator_loss(self, direction: str, real, real_att, fake, fake_att, stage2: bool):
        """LSGAN D term, halved as in CycleGAN: real -> 1, fake (from the pool) -> 0."""
        pred_real = self.judge_score(direction, real, real_att, stage2)
        pred_fake = self.judge_score(direction, fake, fake_att, stage2)
        return 0.5 * (F.mse_loss(pred_real, torch.ones_like(pred_real))
                      + F.mse_loss(pred_fake, torch.zeros_like(pred_fake)))
