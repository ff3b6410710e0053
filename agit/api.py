"""`agit.load(run)`: a trained run as an object that translates your images, whatever their size.

    import agit
    model = agit.load("results/runs/h2z")                    # eval mode; CUDA if available, else CPU
    output, attention = model.translate("horse.jpg")          # a path or a PIL image -> PIL images
    output, attention = model.translate(batch, "t2s")         # a tensor -> tensors of the same kind

Every image is translated at its own size (agit.translate says how); `size=` resizes
the shorter side first, as `agit translate --size`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .data import read_rgb, to_rgb
from .features import to_uint8
from .translate import attention_uint8, translate_image


class Translated(NamedTuple):
    image: Any  # the translation s' (Eq. 1), the same kind as the input
    attention: Any  # where it was applied, A(s) in [0, 1]: one channel, same kind


class Translator(nn.Module):
    """A trained model (`.model`: AGGAN or a baseline) with a `translate` for images of any kind.

    Kinds, and what comes back for each:

    * a path (str or os.PathLike) or a PIL image: PIL images, RGB and greyscale ('L');
      EXIF orientation is applied, as when files are read for training;
    * a tensor 3×H×W or N×3×H×W, uint8 (0..255) or float in [0, 1] (torchvision's
      convention): tensors of the same dtype, layout and device; the attention has
      one channel (uint8 0..255 for uint8 input).
    """

    def __init__(self, model: nn.Module, run: str | Path | None = None):
        super().__init__()
        self.model = model
        self.run = Path(run) if run is not None else None

    @property
    def cfg(self):
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, image, direction: str = "s2t", size: int | None = None) -> Translated:
        return self.translate(image, direction, size)

    def translate(self, image, direction: str = "s2t", size: int | None = None) -> Translated:
        """`image` through the run in `direction` ('s2t' or 't2s'), at its own size (or shorter side `size`)."""
        if isinstance(image, (str, os.PathLike)):
            return self._translate_pil(TF.to_pil_image(read_rgb(image)), direction, size)
        if isinstance(image, Image.Image):
            return self._translate_pil(to_rgb(image), direction, size)
        if isinstance(image, torch.Tensor):
            return self._translate_tensor(image, direction, size)
        raise TypeError(f"translate takes a path, a PIL image or a tensor, not {type(image).__name__}")

    def _translate_pil(self, image: Image.Image, direction, size) -> Translated:
        pixels = TF.pil_to_tensor(image).to(self.device)
        tr = translate_image(self.model, pixels[None].float() / 127.5 - 1, direction, size)
        return Translated(TF.to_pil_image(to_uint8(tr.image[0]).cpu()),
                          TF.to_pil_image(attention_uint8(tr.attention[0]).cpu(), mode="L"))

    def _translate_tensor(self, image: torch.Tensor, direction, size) -> Translated:
        batched = image.dim() == 4
        if image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"expected a tensor 3×H×W or N×3×H×W, got shape {tuple(image.shape)}")
        x = (image if batched else image[None]).to(self.device)
        if image.dtype == torch.uint8:
            tr = translate_image(self.model, x.float() / 127.5 - 1, direction, size)
            out, att = to_uint8(tr.image), attention_uint8(tr.attention)
        elif image.is_floating_point():
            low, high = image.min().item(), image.max().item()
            if low < 0 or high > 1:
                raise ValueError(f"float tensors are expected in [0, 1] (torchvision's convention), "
                                 f"got values in [{low:.3g}, {high:.3g}]")
            tr = translate_image(self.model, x.float() * 2 - 1, direction, size)
            out, att = ((tr.image + 1) / 2).to(image.dtype), tr.attention.to(image.dtype)
        else:
            raise ValueError(f"expected a uint8 or float tensor, got {image.dtype}")
        if not batched:
            out, att = out[0], att[0]
        return Translated(out.to(image.device), att.to(image.device))


def load(run, device: str | None = None, checkpoint: str | Path | None = None) -> Translator:
    """The trained model of `run` (its latest checkpoint, or `checkpoint`), in eval mode, on
    `device` (default: CUDA if available, else CPU), ready to translate images."""
    from .run import Run

    return Translator(Run(run).load_model(checkpoint, device), run).eval()
