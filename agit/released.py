"""The authors' released TensorFlow variables, by name, as agit's layers: `agit import-tf` and the cross-check.

The released graph (`model.py` of the authors' repository) names each variable after the
scopes it was built in, e.g. ``Model/g_A/r3/c1/Conv/weights``: `g_A`/`g_B` are the
generators F_ST/F_TS, `g_A_ae`/`g_B_ae` the attention nets A_S/A_T, `d_A`/`d_B` the
discriminators D_S/D_T (domain A is the source S; with `swap`, domain B: `SWAPPED`); under
each, the layer scopes of `model.py` (`c1`…, `r1`…), then `tf.contrib.layers`' own `Conv`
(`Conv2d_transpose` for transposed convs) holding `weights`/`biases`, or `instance_norm`
holding `scale`/`offset`.

TF stores a conv kernel as (height, width, in, out), a transposed one as (height, width,
out, in); PyTorch as (out, in, h, w) and (in, out, h, w): one transpose serves both.

Checkpoints hold more than the networks: Adam's slots (``…/Adam``, ``…/Adam_1``), its
``beta1_power``/``beta2_power``, ``global_step``, and an instance norm on each network's last
conv that the released code builds inside ``tf.cond(False, …)`` and never applies. Those are
read past; every variable the networks use must be there with the shape the config implies.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .config import Config

# released network scope -> agit module name
ROLES = {"g_A": "gen_s2t", "g_B": "gen_t2s", "g_A_ae": "att_s", "g_B_ae": "att_t", "d_A": "dis_s", "d_B": "dis_t"}
# the same with the checkpoint's domain B as agit's source S: the authors' horse2zebra model was
# trained with input_a = zebra (their Trained_models/README.md), so its B->A generator is horse->zebra
SWAPPED = {"g_A": "gen_t2s", "g_B": "gen_s2t", "g_A_ae": "att_t", "g_B_ae": "att_s", "d_A": "dis_t", "d_B": "dis_s"}
NOT_NETWORK = ("/Adam", "beta1_power", "beta2_power", "global_step")


def source_domain(swap: bool) -> str:
    """Which of the checkpoint's domains is agit's source S, in words (provenance, info, messages)."""
    return "B (input_b)" if swap else "A (input_a)"


class ReleasedCheckpointError(ValueError):
    """The arrays are not the released architecture at this config's widths; one line says what differs."""


def _conv_in(scope: str, block: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """A `general_conv2d`/`general_deconv2d` layer: conv (and its instance norm) under `scope`."""
    conv = block[0]
    kind = "Conv2d_transpose" if isinstance(conv, nn.ConvTranspose2d) else "Conv"
    pairs = [(f"{scope}/{kind}", conv)]
    if isinstance(block[1], nn.InstanceNorm2d):
        pairs.append((f"{scope}/instance_norm", block[1]))
    return pairs


def _residual(scope: str, block) -> list[tuple[str, nn.Module]]:
    body = block.body
    return _conv_in(f"{scope}/c1", body[0]) + [(f"{scope}/c2/Conv", body[1]), (f"{scope}/c2/instance_norm", body[2])]


def _generator(net: nn.Sequential, n_res: int) -> list[tuple[str, nn.Module]]:
    """build_generator_resnet_9blocks: c1, c2, c3, r1..r9, c4, c5 (transposed), c6 (last conv)."""
    pairs = _conv_in("c1", net[0]) + _conv_in("c2", net[1]) + _conv_in("c3", net[2])
    for i in range(n_res):
        pairs += _residual(f"r{i + 1}", net[3 + i])
    return pairs + _conv_in("c4", net[3 + n_res]) + _conv_in("c5", net[4 + n_res]) + [("c6/Conv", net[5 + n_res])]


def _attention(net: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """autoenc_upsample: c1, c2, r1, (up1) c4, (up2) c5, c6 (last conv)."""
    return (_conv_in("c1", net[0]) + _conv_in("c2", net[1]) + _residual("r1", net[2])
            + _conv_in("c4", net[4]) + _conv_in("c5", net[6]) + [("c6/Conv", net[7])])


def _discriminator(dis) -> list[tuple[str, nn.Module]]:
    """discriminator: c1..c4 (conv + instance norm), c5 (last conv)."""
    pairs = []
    for i, (conv, norm) in enumerate(zip(dis.convs, dis.norms)):
        pairs.append((f"c{i + 1}/Conv", conv))
        if isinstance(norm, nn.InstanceNorm2d):
            pairs.append((f"c{i + 1}/instance_norm", norm))
    return pairs + [(f"c{len(dis.convs) + 1}/Conv", dis.last)]


def released_layers(model, swap: bool = False) -> dict[str, nn.Module]:
    """{released scope: agit layer} for every layer of an AGGAN built from an `official`-shaped config."""
    layers = {}
    for scope, name in (SWAPPED if swap else ROLES).items():
        module = getattr(model, name)
        if name.startswith("gen"):
            pairs = _generator(module.net, model.cfg.n_res)
        elif name.startswith("att"):
            pairs = _attention(module.net)
        else:
            pairs = _discriminator(module)
        layers.update({f"Model/{scope}/{s}": m for s, m in pairs})
    return layers


def released_variables(model, swap: bool = False) -> dict[str, tuple[torch.Tensor, bool]]:
    """{TF variable name: (agit parameter, is a kernel)}: the variables the released networks use."""
    out = {}
    for scope, layer in released_layers(model, swap).items():
        if isinstance(layer, nn.InstanceNorm2d):
            out[f"{scope}/scale"], out[f"{scope}/offset"] = (layer.weight, False), (layer.bias, False)
        else:
            out[f"{scope}/weights"], out[f"{scope}/biases"] = (layer.weight, True), (layer.bias, False)
    return out


def check_released_config(cfg: Config) -> None:
    """The released graph has one width for F and A, 3 stride-2 layers in D, and no other knobs."""
    if cfg.att_ngf != cfg.ngf or cfg.d_layers != 3 or cfg.d_pad != 2 or not cfg.d_norm_first:
        raise ReleasedCheckpointError("the released architecture has att_ngf = ngf, d_layers 3, d_pad 2, "
                                      "IN on D's first layer; this config differs")
    if cfg.gen_last_kernel != 7 or cfg.att_up_kernel != 1 or cfg.att_last_kernel != 1 or cfg.gen_padding != "zeros":
        raise ReleasedCheckpointError("the released layers are gen_last_kernel 7, att_up_kernel 1, att_last_kernel 1, "
                                      "gen_padding zeros; this config differs")


def is_network_variable(name: str) -> bool:
    return name.startswith("Model/") and not any(part in name for part in NOT_NETWORK)


def load_released(model, arrays: Mapping[str, np.ndarray], swap: bool = False) -> None:
    """Copy the released variables `arrays` ({TF name: array}) into `model`'s parameters
    (`swap`: the checkpoint's domain B as the source S).

    Raises ReleasedCheckpointError naming what is missing, unexpected or of another shape,
    before anything is copied.
    """
    check_released_config(model.cfg)
    wanted = released_variables(model, swap)
    unused_norms = {f"Model/{s}/{last}/instance_norm/{v}" for s in ROLES for v in ("scale", "offset")
                    for last in ("c5", "c6")}
    present = {k for k in arrays if is_network_variable(k)}
    missing = sorted(set(wanted) - present)
    if missing:
        raise ReleasedCheckpointError(f"{len(missing)} of the released networks' {len(wanted)} variables are missing, "
                                      f"e.g. {', '.join(missing[:3])}")
    unexpected = sorted(present - set(wanted) - unused_norms)
    if unexpected:
        raise ReleasedCheckpointError(f"{len(unexpected)} variables the released architecture (n_res {model.cfg.n_res}) "
                                      f"does not have, e.g. {', '.join(unexpected[:3])}")
    for name, (param, kernel) in wanted.items():
        value = np.asarray(arrays[name])
        value = value.transpose(3, 2, 0, 1) if kernel and value.ndim == 4 else value
        if tuple(value.shape) != tuple(param.shape):
            raise ReleasedCheckpointError(f"{name} has shape {tuple(np.asarray(arrays[name]).shape)}, this config's "
                                          f"layer needs {tuple(param.shape)} (other widths: ngf {model.cfg.ngf}, "
                                          f"ndf {model.cfg.ndf} here)")
    with torch.no_grad():
        for name, (param, kernel) in wanted.items():
            value = np.asarray(arrays[name], dtype=np.float32)
            param.copy_(torch.from_numpy(value.transpose(3, 2, 0, 1).copy() if kernel else value))
