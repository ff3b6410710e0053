"""Translate a folder with a trained run: deterministic, full image, file order kept, batched."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.utils import save_image

from .data import DomainFolder
from .model import DIRECTIONS, AGGAN


@torch.no_grad()
def translate_dataset(model: AGGAN, folder, direction: str, batch_size: int = 8, mask_folder=None):
    """Yield (items, Translation) batches over `folder`, resized to the model's training size."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    device = next(model.parameters()).device
    ds = DomainFolder(folder, model.cfg.size, mask_folder=mask_folder)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    for batch in loader:
        yield batch, model.translate(batch["image"].to(device), direction)


def translate_folder(model: AGGAN, input_dir, direction: str, out_dir, batch_size: int = 8) -> int:
    """Write OUT/images/<name>.png (Eq. 1 output) and OUT/attention/<name>.png per input; returns the count."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "attention").mkdir(parents=True, exist_ok=True)
    n = 0
    for batch, tr in translate_dataset(model, input_dir, direction, batch_size):
        for path, image, att in zip(batch["path"], tr.image.cpu(), tr.attention.cpu()):
            name = Path(path).stem + ".png"
            save_image(image * 0.5 + 0.5, out / "images" / name)
            save_image(att, out / "attention" / name)
            n += 1
    return n
