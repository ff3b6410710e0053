"""Translate images with a trained run, each at its own size and aspect ratio.

F and A are fully convolutional. Both go down by two stride-2 convolutions and back
up by two ×2 steps (transposed convolutions in F, nearest up2 in A), so an H×W input
comes back as 4⌈H/4⌉ × 4⌈W/4⌉: only multiples of 4 keep their size (`size_multiple`
reads the 4 off the networks; the discriminators take no part in translating). An
image is therefore reflect-padded on its bottom and right up to the multiple and the
outputs are cropped back, so output pixel (i, j) belongs to input pixel (i, j).

`size` resizes the shorter side first, for inputs far from the training scale; the
outputs then go back to the input's size (`translate_image` says how). Memory grows
with the pixel count: before each image the working memory is estimated and an image
that would not fit fails with the size that does, rather than the system killing the
process mid-folder.

Evaluation (KID, Table 1's protocol) translates at the training size instead:
`agit.evaluate.translate_test_set`.
"""

from __future__ import annotations

import errno
import math
import signal
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from .data import IMG_EXTENSIONS, DataError, image_size, read_rgb
from .features import to_uint8
from .files import save_image_atomically
from .model import DIRECTIONS, AGGAN, Translation
from .nets import MIN_SIDE, Discriminator
from .signals import stop_signals
from .progress import track


class ImageTooLarge(DataError):
    """An image whose translation would not fit in the free memory; the message says what size does."""


# --------------------------------------------------------------------------- one image


def size_multiple(model: nn.Module) -> int:
    """What H and W must be multiples of for the translation networks to return H×W.

    The product of the strides on the way down of each network that translates (F and
    A; UNIT's encoders), their least common multiple over the networks: 4 for every
    preset and method (tests/test_translate.py checks that it is enough and needed).
    """
    multiple = 1
    for net in _translation_nets(model):
        down = math.prod(m.stride[0] for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride[0] > 1)
        multiple = math.lcm(multiple, down)
    return multiple


def _translation_nets(model: nn.Module):
    for child in model.children():
        if isinstance(child, Discriminator):
            continue
        yield from child.values() if isinstance(child, nn.ModuleDict) else [child]


_BYTES_PER_PIXEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def bytes_per_pixel(model: nn.Module, direction: str = "s2t") -> float:
    """Estimated peak working memory of one translation, per (padded) input pixel.

    From a small probe: three times the largest input + output of any one layer (the
    layer's own tensors, and as much again for oneDNN's blocked-layout copies and the
    operations between layers, such as RA's attention module), plus the images the
    translation keeps. Measured with the official networks at 1024×768 on a CPU
    (benchmarks/own_images.py): the peak memory grew by 0.57 of this estimate for
    AGGAN, 0.70 for CycleGAN, 0.76 for UNIT and 1.14 for RA, whose excess the fifth
    of the free memory that `check_fits` leaves unused covers.
    """
    key = (direction, next(model.parameters()).dtype)
    cached = _BYTES_PER_PIXEL.setdefault(model, {})
    if key not in cached:
        largest = 0

        def hook(module, inputs, output):
            nonlocal largest
            if isinstance(output, torch.Tensor) and inputs and isinstance(inputs[0], torch.Tensor):
                largest = max(largest, inputs[0].numel() + output.numel())

        side = 8 * size_multiple(model)
        leaves = [m for m in model.modules() if not any(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            model.translate(torch.zeros(1, 3, side, side, device=next(model.parameters()).device), direction)
        finally:
            for h in handles:
                h.remove()
        kept = 3 + 3 + 3 + 1 + 3  # input, padded input, F(s), output (Eq. 1), attention: channels
        element = torch.finfo(key[1]).bits // 8
        cached[key] = (3 * largest / side**2 + kept) * element
    return cached[key]


def free_memory(device: torch.device) -> int:
    """Bytes that a translation may still take on `device`: on a CPU, the host's available
    memory or what the process's memory cgroup still allows, whichever is less."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    left = cgroup_memory_left()
    available = psutil.virtual_memory().available
    return available if left is None else min(available, left)


def cgroup_memory_left(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes the memory cgroups of this process still allow (the tightest of its cgroup and
    their parents); None where none sets a limit.

    A container, a SLURM job or systemd-run limits memory this way, and the host's available
    memory (psutil) does not show it: an image that seemed to fit was OOM-killed (exit 137).
    cgroup v2: memory.max; v1: memory.limit_in_bytes. Used is the usage less the inactive
    file cache, which the kernel reclaims before it kills (the working set, as docker counts).
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    left = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            bases, files = (root, root / "unified"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            bases, files = (root / "memory",), ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for base in bases:
            folder = base / path.lstrip("/")
            for level in (folder, *folder.parents):
                if not level.is_relative_to(base):
                    break
                limit, used = _read_bytes(level / files[0]), _read_bytes(level / files[1])
                if limit is not None and used is not None and limit < 2**62:  # v1 writes "no limit" as ~2**63
                    left.append(limit - used + _memory_stat(level / "memory.stat", files[2]))
    return max(0, min(left)) if left else None


def _read_bytes(file: Path) -> int | None:
    try:
        return int(file.read_text())
    except (OSError, ValueError):  # absent, or "max" (no limit)
        return None


def _memory_stat(file: Path, key: str) -> int:
    try:
        return next((int(line.split()[1]) for line in file.read_text().splitlines() if line.split()[0] == key), 0)
    except (OSError, ValueError, IndexError):
        return 0


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(height, width) with the shorter side `shorter`, the aspect ratio kept."""
    scale = shorter / min(height, width)
    return max(shorter, round(height * scale)), max(shorter, round(width * scale))


def working_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The (height, width) the networks see: the image's own, or with its shorter side `size`."""
    if size is not None and size < MIN_SIDE:
        raise ValueError(f"size must be at least {MIN_SIDE}, got {size}")
    if size is None and min(height, width) < MIN_SIDE:
        raise DataError(f"{width}×{height} px is too small: the networks need at least {MIN_SIDE} px a side "
                        "(--size N, or size=N, enlarges it)")
    return (height, width) if size is None else resized_shape(height, width, size)


def check_fits(model: nn.Module, height: int, width: int, direction: str, device: torch.device):
    """Raise ImageTooLarge, naming a size that fits, if a height×width image would not."""
    m = size_multiple(model)
    per_pixel = bytes_per_pixel(model, direction)
    need = per_pixel * math.ceil(height / m) * m * math.ceil(width / m) * m
    free = free_memory(device)
    if need > 0.8 * free:  # a fifth kept for what the estimate misses and for the rest of the system
        pixels = 0.8 * free / per_pixel
        shorter = math.isqrt(int(pixels * min(height, width) / max(height, width))) // m * m
        fits = f"size {shorter} (shorter side; agit translate --size {shorter}) fits" if shorter >= MIN_SIDE \
            else "no size fits"
        raise ImageTooLarge(f"{width}×{height} px needs about {need / 2**30:.1f} GiB to translate, "
                            f"{free / 2**30:.1f} GiB is free on {device}; {fits}")


@torch.no_grad()
def translate_image(model: AGGAN, x: torch.Tensor, direction: str = "s2t", size: int | None = None) -> Translation:
    """Eq. 1 on N×3×H×W images in [-1, 1] (on the model's device), at their own size.

    Returns the output, the attention and F's output, all at H×W. With `size`, the
    networks see the images with the shorter side resized to `size`; A and F(s) are
    then resized back to H×W and Eq. 1 is composed there, so wherever the attention
    is 0 the output keeps the input's own pixels at full resolution.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    height, width = x.shape[-2:]
    shape = working_shape(height, width, size)
    check_fits(model, *shape, direction, x.device)  # before the resize: that alone may not fit
    work = x if shape == (height, width) else \
        TF.resize(x, list(shape), InterpolationMode.BICUBIC, antialias=True).clamp(-1, 1)
    tr = _translate_padded(model, work, direction)
    if work is x:
        return tr
    attention = TF.resize(tr.attention, [height, width], InterpolationMode.BILINEAR, antialias=True).clamp(0, 1)
    raw = TF.resize(tr.raw, [height, width], InterpolationMode.BICUBIC, antialias=True).clamp(-1, 1)
    return Translation(attention * raw + (1 - attention) * x, attention, raw)


def _translate_padded(model: AGGAN, x: torch.Tensor, direction: str) -> Translation:
    """Reflect-pad bottom and right to the networks' multiple, translate, crop back."""
    height, width = x.shape[-2:]
    m = size_multiple(model)
    padded = F.pad(x, (0, -width % m, 0, -height % m), mode="reflect")
    tr = model.translate(padded, direction)
    return Translation(*(t[..., :height, :width] for t in tr))


# --------------------------------------------------------------------------- folders


@dataclass
class Tally:
    """What became of every entry found: translated, skipped (and why), failed (and why)."""

    translated: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    not_reached: dict[Path, str] = field(default_factory=dict)  # after a stop signal: its name
    stopped: str | None = None

    @property
    def found(self) -> int:
        return len(self.translated) + len(self.skipped) + len(self.failed) + len(self.not_reached)

    def summary(self, shown: int = 20) -> str:
        lines = [f"translated {len(self.translated)} of {self.found} entries"]
        for what, reasons in (("skipped", self.skipped), ("failed", self.failed),
                              (f"not reached ({self.stopped})", self.not_reached)):
            if reasons:
                lines.append(f"{what} {len(reasons)}:")
                items = list(reasons.items())
                lines += [f"  {path}: {why}" for path, why in items[:shown]]
                if len(items) > shown:
                    lines.append(f"  … and {len(items) - shown} more")
        return "\n".join(lines)


def output_name(relative: Path) -> Path:
    """Where the outputs of input `relative` go: its whole name plus .png, so photo.jpg and
    photo.png in one folder give photo.jpg.png and photo.png.png, never one file."""
    return relative.with_name(relative.name + ".png")


def find_inputs(source: Path, recursive: bool, out_dir: Path) -> tuple[dict[Path, Path], dict[Path, str]]:
    """({image: path relative to source}, {skipped entry: why}), both in name order. An `out_dir`
    equal to or inside `source` is refused: its outputs would be taken for inputs, or replace them."""
    if source.is_file():
        if source.suffix.lower() in IMG_EXTENSIONS:
            return {source: Path(source.name)}, {}
        return {}, {source: "not an image"}
    if not source.is_dir():
        raise DataError(f"no such file or folder: {source}")
    if out_dir.resolve() == source.resolve() or source.resolve() in out_dir.resolve().parents:
        raise DataError(f"--out {out_dir} is within --input {source}: the translations would land among the "
                        f"images to translate; choose an --out outside it")
    images, skipped = {}, {}
    for path in sorted(source.rglob("*") if recursive else source.iterdir()):
        if recursive and path.is_dir():
            continue  # a folder whose files are listed themselves
        elif _loops(path):
            skipped[path] = "a symbolic link that loops"
        elif path.is_dir():
            skipped[path] = "a folder (--recursive translates the folders inside too)"
        elif path.suffix.lower() not in IMG_EXTENSIONS:
            skipped[path] = "not an image"
        else:
            images[path] = path.relative_to(source)
    return images, skipped


def _loops(path: Path) -> bool:
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13: "Symlink loop"
        return True
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def attention_uint8(a: torch.Tensor) -> torch.Tensor:
    return (a * 255).round().clamp(0, 255).to(torch.uint8)


# Saturated colours an overlay may take: red, green, blue, magenta, cyan, yellow.
OVERLAY_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255), (0, 255, 255), (255, 255, 0))


def overlay(image: torch.Tensor, attention: torch.Tensor, strength: float = 0.6) -> torch.Tensor:
    """The attention over the input (both uint8), the input as it is where A is 0. The colour is
    the one of OVERLAY_COLOURS farthest from the attended pixels' mean, so that it shows on any
    object (a fixed red vanished on red apples and orange fruit)."""
    a = strength * attention.float() / 255
    colours = torch.tensor(OVERLAY_COLOURS, dtype=torch.float, device=image.device)
    attended = (image.float() * a).flatten(1).sum(1) / a.sum().clamp(min=1e-6)
    colour = colours[(colours - attended).norm(dim=1).argmax()].view(3, 1, 1)
    return ((1 - a) * image.float() + a * colour).round().to(torch.uint8)


def side_by_side(*images: torch.Tensor) -> torch.Tensor:
    """uint8 images of one size in a row, 2-px white gaps (attention: one channel, shown grey)."""
    rows = [im.expand(3, -1, -1).float() / 255 for im in images]
    return (make_grid(rows, nrow=len(rows), padding=2, pad_value=1) * 255).round().to(torch.uint8)


def _write(image: torch.Tensor, path: Path):
    """Whole or not at all (agit.files): a translation into a folder of earlier outputs never
    leaves one of them cut short, even on a full disk."""
    save_image_atomically(TF.to_pil_image(image.cpu()), path)


def translate_folder(model: AGGAN, source, direction: str, out_dir, size: int | None = None,
                     recursive: bool = False, grid: bool = False, with_overlay: bool = False,
                     progress: bool = False) -> Tally:
    """Translate every image in `source` (a folder, or one file), each at its own size.

    Per input `sub/photo.jpg`: OUT/images/sub/photo.jpg.png (Eq. 1's output) and
    OUT/attention/sub/photo.jpg.png, both at the input's size; with `grid`
    OUT/grid/… (input | attention | output), with `with_overlay` OUT/overlay/….
    Sub-folders are entered only with `recursive`. An unreadable or too-large image
    (checked from its header, before it is decoded) is a failure with its reason, and the
    others go on. A stop signal (Ctrl-C, SIGTERM) ends the folder after the current image:
    the rest is `not_reached` and `stopped` names the signal. The Tally accounts for every
    entry found.
    """
    source, out = Path(source), Path(out_dir)
    images, skipped = find_inputs(source, recursive, out)
    tally = Tally(skipped=skipped)
    stops = []
    with stop_signals(lambda signum, frame: stops.append(signal.Signals(signum).name)):
        for path, relative in track(images.items(), f"translating ({direction})", unit="img", enabled=progress):
            if stops:
                tally.stopped = stops[0]
                tally.not_reached[path] = stops[0]
                continue
            _translate_file(model, path, out, output_name(relative), direction, size, grid, with_overlay, tally)
    return tally


def _translate_file(model: AGGAN, path: Path, out: Path, name: Path, direction: str, size: int | None,
                    grid: bool, with_overlay: bool, tally: Tally):
    """One image of `translate_folder`, its outcome entered in `tally`."""
    device = next(model.parameters()).device
    try:
        check_fits(model, *working_shape(*image_size(path), size), direction, device)
        pixels = read_rgb(path)
        tr = translate_image(model, pixels[None].to(device).float() / 127.5 - 1, direction, size)
        output, attention = to_uint8(tr.image[0]), attention_uint8(tr.attention[0])
        _write(output, out / "images" / name)
        _write(attention, out / "attention" / name)
        if grid:
            _write(side_by_side(pixels.to(device), attention, output), out / "grid" / name)
        if with_overlay:
            _write(overlay(pixels.to(device), attention), out / "overlay" / name)
    except (DataError, OSError, torch.OutOfMemoryError) as err:
        tally.failed[path] = str(err)
        return
    tally.translated.append(path)
