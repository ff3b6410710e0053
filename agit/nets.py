"""The three networks of Appendix A: generator F, attention net A, discriminator D.

Layer names follow CycleGAN's notation used by the paper: ``c7s1-k`` is a 7x7
stride-1 convolution with k filters, ``rk`` a residual block, ``tcks2`` a
stride-2 transposed convolution, ``up2`` nearest-neighbour upsampling. Where
the released code differs from the text, a config field chooses (see config.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import Config


def tf_same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's 'SAME' on a side of n pixels.

    TF pads pad_total = max((ceil(n / s) - 1) * s + k - n, 0) and puts the odd pixel
    after (bottom / right): (0, 1) for a 3x3 stride-2 conv on an even side, where
    PyTorch's symmetric padding=1 gives (1, 1) and shifts every output by one pixel.
    """
    total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """A convolution padded as TF's 'SAME' (`tf_same_padding`); same parameters as nn.Conv2d."""

    def forward(self, x):
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = tf_same_padding(x.shape[-2], kh, sh)
        left, right = tf_same_padding(x.shape[-1], kw, sw)
        return self._conv_forward(F.pad(x, (left, right, top, bottom)), self.weight, self.bias)


class TFSameConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution placed as TF's `conv2d_transpose(..., padding='SAME')`: s times the size.

    TF's op is the gradient of a 'SAME' conv from s*n pixels to n, which pads (0, 1) for
    k=3, s=2: input pixel i lands at 2i + k' (k' the tap), not 2i + k' - 1 as PyTorch's
    padding=1, output_padding=1 places it. So: the full transposed output, from `before` on.
    """

    def forward(self, x):
        full = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        h, w = x.shape[-2] * sh, x.shape[-1] * sw
        top, left = tf_same_padding(h, kh, sh)[0], tf_same_padding(w, kw, sw)[0]
        return full[..., top:top + h, left:left + w]


def conv_in_relu(cin, cout, kernel, stride=1, padding=0, padding_mode="zeros", norm=True, tf_same=False):
    """A `cksj-k-R` layer: convolution, instance norm, ReLU; `tf_same`: padded as TF's 'SAME'."""
    conv = TFSameConv2d(cin, cout, kernel, stride) if tf_same else \
        nn.Conv2d(cin, cout, kernel, stride, padding, padding_mode=padding_mode)
    layers = [conv]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def maybe_recompute(net: nn.Module, x: torch.Tensor, recompute: bool) -> torch.Tensor:
    """`net(x)`; with `recompute`, keep only `x` for backward and recompute the layers then.

    A training step at 256 px holds four generator and four attention passes in
    one graph (translation and cycle, both directions): recomputing them trades
    one extra forward pass per network for most of the activation memory.
    """
    if recompute and torch.is_grad_enabled():
        return checkpoint(net, x, use_reentrant=False)
    return net(x)


class ResidualBlock(nn.Module):
    """`rk`: two 3x3 convolutions; the released code applies ReLU after the sum."""

    def __init__(self, dim, padding_mode="zeros"):
        super().__init__()
        self.body = nn.Sequential(
            conv_in_relu(dim, dim, 3, padding=1, padding_mode=padding_mode),
            nn.Conv2d(dim, dim, 3, padding=1, padding_mode=padding_mode),
            nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x):
        return torch.relu(x + self.body(x))


class Generator(nn.Module):
    """F: c7s1-32-R, c3s2-64-R, c3s2-128-R, r128 x n_res, tc64s2, tc32s2, last conv + tanh."""

    def __init__(self, cfg: Config):
        super().__init__()
        k, pad, tf_same = cfg.ngf, cfg.gen_padding, cfg.tf_same_padding
        layers = [
            conv_in_relu(3, k, 7, padding=3, padding_mode=pad),
            conv_in_relu(k, 2 * k, 3, 2, 1, tf_same=tf_same),
            conv_in_relu(2 * k, 4 * k, 3, 2, 1, tf_same=tf_same),
            *[ResidualBlock(4 * k, pad) for _ in range(cfg.n_res)],
            *[self.up(m * k, m * k // 2, tf_same) for m in (4, 2)],
            nn.Conv2d(k, 3, cfg.gen_last_kernel, padding=cfg.gen_last_kernel // 2),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)
        self.recompute = cfg.recompute_activations

    @staticmethod
    def up(cin, cout, tf_same=False):
        conv = TFSameConvTranspose2d(cin, cout, 3, 2) if tf_same else \
            nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1)
        return nn.Sequential(
            conv,
            nn.InstanceNorm2d(cout, affine=True),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return maybe_recompute(self.net, x, self.recompute)


class AttentionNet(nn.Module):
    """A: c7s2-32-R, c3s2-64-R, r64, up2, c-64-R, up2, c-32-R, c-1-S: a one-channel map in [0,1].

    The first conv has stride 2 as in the released code: with the paper's stride
    1, two up2 layers after a single stride-2 conv would return twice the input size.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        k, ku, kl = cfg.att_ngf, cfg.att_up_kernel, cfg.att_last_kernel
        self.net = nn.Sequential(
            conv_in_relu(3, k, 7, 2, 3, padding_mode="reflect"),
            conv_in_relu(k, 2 * k, 3, 2, 1, tf_same=cfg.tf_same_padding),
            ResidualBlock(2 * k, "reflect"),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_in_relu(2 * k, 2 * k, ku, padding=ku // 2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_in_relu(2 * k, k, ku, padding=ku // 2),
            nn.Conv2d(k, 1, kl, padding=kl // 2),
            nn.Sigmoid(),
        )
        self.last_conv = self.net[-2]
        self.recompute = cfg.recompute_activations

    def forward(self, x):
        return maybe_recompute(self.net, x, self.recompute)


class Discriminator(nn.Module):
    """D (PatchGAN): c4s2-64-LR, c4s2-128-LR, c4s2-256-LR, c4s1-512-LR, c4s1-1.

    `forward(x, norm=False)` bypasses every instance norm with the same weights:
    stage 2 (Eq. 7) shows D masked images, whose zeros should not shift its statistics.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        widths = [cfg.ndf * min(2**i, 8) for i in range(cfg.d_layers + 1)]
        strides = [2] * cfg.d_layers + [1]
        self.pad = nn.ZeroPad2d(cfg.d_pad)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin = 3
        for i, (cout, stride) in enumerate(zip(widths, strides)):
            self.convs.append(nn.Conv2d(cin, cout, 4, stride))
            has_norm = i > 0 or cfg.d_norm_first
            self.norms.append(nn.InstanceNorm2d(cout, affine=True) if has_norm else nn.Identity())
            cin = cout
        self.last = nn.Conv2d(cin, 1, 4, 1)

    def forward(self, x, norm=True):
        for conv, inorm in zip(self.convs, self.norms):
            x = conv(self.pad(x))
            if norm:
                x = inorm(x)
            x = nn.functional.leaky_relu(x, 0.2)
        return self.last(self.pad(x))


# F and A halve an image twice; 2 px must be left there (reflect padding, instance norm over more than one pixel).
MIN_SIDE = 8


def smallest_side(cfg: Config) -> int:
    """The least training image side (a multiple of 4) that every network of `cfg` takes.

    F and A need MIN_SIDE. D's 4x4 convolutions, each after `d_pad` px of zeros, shrink the
    image: going back from its last layer (one output pixel) through each conv, whose
    instance norm needs 2 px a side, gives the least input (70 px without padding: the
    PatchGAN's receptive field).
    """
    need = 4 - 2 * cfg.d_pad  # input side of D's last conv for one output pixel
    for i, stride in reversed(list(enumerate([2] * cfg.d_layers + [1]))):
        has_norm = i > 0 or cfg.d_norm_first
        need = (max(need, 2 if has_norm else 1) - 1) * stride + 4 - 2 * cfg.d_pad
    return max(MIN_SIDE, -(-need // 4) * 4)


def init_weights(module: nn.Module):
    """The released code's init: truncated normal (std 0.02) convs, zero bias, IN scale ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.trunc_normal_(m.weight, 1.0, 0.02, 0.96, 1.04)
            nn.init.zeros_(m.bias)


def conv_weight_count(module: nn.Module) -> int:
    """Number of convolution weights (no biases, no norms): the figure the issue quotes."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
