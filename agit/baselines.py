"""The Table 1 baselines, trained, checkpointed, translated and evaluated exactly like AGGAN.

The method is the config field ``method`` (``agit train --method …``), orthogonal to
the preset; ``config.METHOD_DEFAULTS`` holds each method's own settings. Four of the
five baselines are AGGAN's model with attention identically 1 (CycleGAN, the special
case of Eq. 1) and something else swapped in:

* ``cyclegan``  nothing: LSGAN, L1 cycle, lambda_cyc 10, history pool (= variant 'cyclegan');
* ``discogan``  the loss: standard GAN, reconstruction weighted like the adversarial term;
* ``dualgan``   the loss and optimiser: WGAN, clipped critic, n_critic steps, RMSProp;
* ``ra``        the generator: a residual attention module after its first layer.

``unit`` is a different model with the same outward face (translate, generator and
discriminator losses, param groups, a discriminator per direction), so the Trainer
runs it unchanged. Every network is built from nets.py's blocks.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config, Stage
from .model import AGGAN, DIRECTIONS, Translation, discriminator_gan_loss, distance, gan_loss
from .nets import Discriminator, Generator, ResidualBlock, conv_in_relu, init_weights


class CycleGAN(AGGAN):
    """CycleGAN (Zhu et al., ICCV 2017): AGGAN with A_S = A_T = 1, Eq. 1's special case.

    LSGAN, L1 cycle loss with lambda_cyc 10, a history pool of 50, D on whole images,
    and AGGAN's generators, discriminators and schedule, so that the comparison isolates
    the attention. CycleGAN's identity loss is off, as in the AGGAN paper's description;
    ``lambda_identity`` (0.5 in CycleGAN's code) turns it on. ``--method cyclegan`` and
    ``--variant cyclegan`` are one and the same run.
    """


class DiscoGAN(CycleGAN):
    """DiscoGAN (Kim et al., ICML 2017): the standard GAN loss, reconstruction weighted equal to it.

    As the AGGAN paper describes it: sigmoid cross-entropy on D's logits (the generator's
    term non-saturating), and per direction L_G = L_GAN + L_CONST with equal weights
    (``lambda_cyc`` 1). Choices where the paper is silent: the reconstruction distance
    is the mean squared error of DiscoGAN's code (``cycle_norm`` 'l2'); no history pool;
    DiscoGAN's feature-matching term and its reconstruction-weight ramp are left out;
    AGGAN's ResNet generators and PatchGAN discriminators replace DiscoGAN's plain
    encoder-decoders; Adam and the preset's learning rate.
    """


class DualGAN(CycleGAN):
    """DualGAN (Yi et al., ICCV 2017): the Wasserstein GAN loss with a clipped critic.

    D is a critic: it raises its mean score on real images and lowers it on fakes, the
    generator raises it on its fakes. Following DualGAN's training procedure (that of
    WGAN): after every critic step all critic parameters are clipped to [-0.01, 0.01]
    (``clip``); the critics take ``n_critic`` = 2 steps per generator step (G steps on
    every second iteration, D on every one, each on a fresh pair); RMSProp with lr 5e-5
    (``optimizer``, ``lr``). Choices: L1 reconstruction weighted 20 on the mean (its
    released code; the paper quotes 100-1000 for its own normalisation); no history
    pool; AGGAN's generators (DualGAN used a U-Net); the critic is AGGAN's PatchGAN D
    with the scale of its instance norms fixed to 1, as DualGAN's batch norm has none
    (TensorFlow's default). Clipping a learned scale to 0.01 in every layer would
    shrink the scores below the norms' epsilon, leaving a critic with almost no signal.
    """

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        for dis in (self.dis_s, self.dis_t):
            for norm in dis.norms:
                if isinstance(norm, nn.InstanceNorm2d):
                    nn.init.ones_(norm.weight)
                    norm.weight.requires_grad_(False)


class ResidualAttention(nn.Module):
    """Wang et al. (CVPR 2017) attention module: H(x) = (1 + M(x)) * T(x).

    Trunk branch T: t = 2 residual units. Soft mask branch M: an hourglass, ``depth``
    times max-pool (3x3, stride 2) and a residual unit down, then bilinear up-sampling
    back with a residual-unit skip at each intermediate scale, then two 1x1 convolutions
    and a sigmoid, so M is in [0, 1] with x's shape and 1 + M can only amplify T.
    Choices: residual units are nets.ResidualBlock (instance norm; Wang et al. use
    pre-activation bottlenecks with batch norm), r = 1, no pre/post-processing units
    (p = 0: the generator's own layers sit on either side).
    """

    def __init__(self, dim: int, padding_mode: str = "zeros", depth: int = 2):
        super().__init__()
        unit = lambda: ResidualBlock(dim, padding_mode)  # noqa: E731
        self.trunk = nn.Sequential(unit(), unit())
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(3, 2, 1), unit()) for _ in range(depth))
        self.skips = nn.ModuleList(unit() for _ in range(depth - 1))
        self.up = nn.ModuleList(unit() for _ in range(depth - 1))
        self.mask_head = nn.Sequential(conv_in_relu(dim, dim, 1), nn.Conv2d(dim, dim, 1), nn.Sigmoid())

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """M(x): bottom-up to 1/2^depth of the size, top-down back with skips."""
        sizes, skips, h = [], [], x
        for i, down in enumerate(self.down):
            sizes.append(h.shape[-2:])
            h = down(h)
            if i < len(self.skips):
                skips.append(self.skips[i](h))
        for up, skip, size in zip(self.up, reversed(skips), reversed(sizes[1:])):
            h = up(F.interpolate(h, size=size, mode="bilinear", align_corners=False) + skip)
        return self.mask_head(F.interpolate(h, size=sizes[0], mode="bilinear", align_corners=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.mask(x)) * self.trunk(x)


class RAGenerator(Generator):
    """F with a residual attention module after its first layer (c7s1-k), as the AGGAN paper's "RA"."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        first, *rest = self.net
        self.net = nn.Sequential(first, ResidualAttention(cfg.ngf, cfg.gen_padding), *rest)

    @property
    def attention_module(self) -> ResidualAttention:
        return self.net[1]


class RA(CycleGAN):
    """RA: CycleGAN whose generators carry Wang et al.'s residual attention module (CVPR 2017).

    The AGGAN paper inserts the module "after the first layer of our generators"; it
    attends on features, not on the image, so the translation has no attention map
    (``Translation.attention`` is 1) and every loss is CycleGAN's. Module details:
    see ResidualAttention.
    """

    generator_class = RAGenerator


def _split_generator(gen: Generator, n_enc_blocks: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut F after its first `n_enc_blocks` residual blocks: an encoder and a decoder."""
    layers = list(gen.net)
    first = next(i for i, m in enumerate(layers) if isinstance(m, ResidualBlock))
    cut = first + n_enc_blocks
    return nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:])


class UNIT(nn.Module):
    """UNIT (Liu, Breuel and Kautz, NIPS 2017): coupled VAE-GANs with a shared latent space.

    Each domain has an encoder E and a generator G. E_S and E_T share their last
    (high-level) layer and G_S and G_T their first, so both domains map to one latent
    space; the code is z = E(x) + n, n ~ N(0, I) in training. s -> t is G_T(E_S(s)).
    Per domain the generator loss sums a GAN term (weight 1), the VAE reconstruction
    |G_S(z_s) - s| (``lambda_recon`` 10), the KL of the code (``lambda_kl`` 0.01), the
    cycle reconstruction |G_S(E_T(G_T(z_s)) + n) - s| (``lambda_cyc`` 10) and the KL of
    the cycle's code (``lambda_kl``): the paper's weights 10 / 0.1 / 100 / 0.1 / 100
    divided by 10, as in UNIT's public configs. D_S and D_T judge each direction as in AGGAN.

    Choices: E and G are AGGAN's generator F cut in the middle of its residual blocks
    (at least one each side; the shared layers are the residual blocks at the cut, as
    UNIT's code shares one residual block on each side); KL = mean(E(x)^2), the KL to
    N(0, I) up to a factor and a constant, as UNIT's code; LSGAN (UNIT's PyTorch
    release; its NIPS code used the standard GAN loss, ``gan_loss='gan'``); AGGAN's
    single-scale PatchGAN D instead of UNIT's multi-scale one; no history pool; Adam
    with weight decay 1e-4; both directions in one generator step. Translation uses
    the mean code, so it is deterministic; it has no attention (1 everywhere).
    """

    DOMAINS = {"s2t": ("s", "t"), "t2s": ("t", "s")}  # (source, target) of each direction

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        coder_cfg = dataclasses.replace(cfg, n_res=max(2, cfg.n_res))
        halves = {d: _split_generator(Generator(coder_cfg), coder_cfg.n_res // 2) for d in "st"}
        self.enc = nn.ModuleDict({d: h[0] for d, h in halves.items()})
        self.dec = nn.ModuleDict({d: h[1] for d, h in halves.items()})
        self.enc["t"][-1] = self.enc["s"][-1]  # the shared latent space: high-level layers in common
        self.dec["t"][0] = self.dec["s"][0]
        self.dis_s, self.dis_t = Discriminator(cfg), Discriminator(cfg)
        init_weights(self)

    # -- the interface the Trainer, translate and evaluate use (as AGGAN's) ------------
    def judge(self, direction: str) -> Discriminator:
        return self.dis_t if direction == "s2t" else self.dis_s

    def attention_net(self, direction: str) -> None:
        return None

    def attention_nets(self) -> list:
        return []

    def attention(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        return x.new_ones(x.shape[0], 1, *x.shape[2:])

    def param_groups(self) -> dict[str, list[nn.Module]]:
        """One optimiser for all encoders and generators (they share layers), one per D."""
        return {"g": [self.enc, self.dec], "d_t": [self.dis_t], "d_s": [self.dis_s]}

    def generator_group(self, direction: str) -> str:
        return "g"

    def translate(self, x: torch.Tensor, direction: str = "s2t") -> Translation:
        """G_T(E_S(s)) from the mean code."""
        src, dst = self.DOMAINS[direction]
        image = self.dec[dst](self.enc[src](x))
        return Translation(image, self.attention(x, direction), image)

    def fake_for_d(self, fwd: Translation, stage: Stage) -> tuple[torch.Tensor, torch.Tensor]:
        return fwd.image, fwd.attention

    def discriminator_loss(self, direction: str, real, real_att, fake, fake_att, stage: Stage):
        dis = self.judge(direction)
        return discriminator_gan_loss(dis(real), dis(fake), self.cfg.gan_loss)

    # -- UNIT's objective ----------------------------------------------------------------
    def kl(self, mu: torch.Tensor) -> torch.Tensor:
        return self.cfg.lambda_kl * mu.pow(2).mean()

    def generator_loss(self, s, t, directions, stage: Stage):
        """GAN + VAE reconstruction + KL + cycle reconstruction + cycle KL, both domains at once.
        Returns (total, named terms, the translations D judges)."""
        if tuple(directions) != DIRECTIONS:
            raise ValueError("UNIT updates both directions in one step (update_order='joint')")
        cfg, x = self.cfg, {"s": s, "t": t}
        mu = {d: self.enc[d](x[d]) for d in "st"}
        z = {d: m + torch.randn_like(m) for d, m in mu.items()}
        terms, fakes = {}, {}
        for d in "st":
            terms[f"recon_{d}"] = cfg.lambda_recon * distance(self.dec[d](z[d]), x[d], cfg.cycle_norm)
            terms[f"kl_{d}"] = self.kl(mu[d])
        for direction, (src, dst) in self.DOMAINS.items():
            fake = self.dec[dst](z[src])
            fakes[direction] = Translation(fake, self.attention(fake, direction), fake)
            terms[f"adv_{direction}"] = gan_loss(self.judge(direction)(fake), True, cfg.gan_loss)
            mu_back = self.enc[dst](fake)
            back = self.dec[src](mu_back + torch.randn_like(mu_back))
            terms[f"cyc_{direction}"] = cfg.lambda_cyc * distance(back, x[src], cfg.cycle_norm)
            terms[f"kl_cyc_{direction}"] = self.kl(mu_back)
        return sum(terms.values()), terms, fakes


MODELS: dict[str, type[nn.Module]] = {
    "aggan": AGGAN, "cyclegan": CycleGAN, "discogan": DiscoGAN, "dualgan": DualGAN, "ra": RA, "unit": UNIT,
}


def build_model(cfg: Config) -> nn.Module:
    """The model of `cfg.method`: AGGAN or a baseline, all with AGGAN's outward interface."""
    return MODELS[cfg.method](cfg)
