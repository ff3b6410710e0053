"""Image folders as the method sees them: two unpaired domains, A = source S and B = target T.

The layout is CycleGAN's, `<root>/{trainA,trainB,testA,testB}/`, with optional
ground-truth masks under the same file names in `<root>/{trainA_mask,...}/`.
Preprocessing follows the paper (and CycleGAN's `resize_and_crop`): resize to
286×286, random 256×256 crop, random horizontal flip, pixels in [-1, 1]. All the
randomness of an item comes from a seed that is part of its key, so a training run
is bit-reproducible and can resume mid-epoch without saving any RNG state.

Also here: fetching the CycleGAN zips and importing any two folders of images
(e.g. the lion and tiger classes of Animals with Attributes 2) into that layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .config import load_size_for
from .files import why, write_atomically
from .locks import folder_lock
from .progress import Progress, track

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DATASET_CACHES = (".agit_cache", ".agit")  # what agit derives from a dataset, inside it: not its content
SPLIT_FOLDERS = ("trainA", "trainB", "testA", "testB")
CYCLEGAN_DATASETS = ("horse2zebra", "apple2orange", "summer2winter_yosemite")
# Images per folder of the CycleGAN zips (trainA, trainB, testA, testB), all 256×256: what a preflight
# checks a download against, and the counts a stand-in (`agit data synth --like`) copies.
CYCLEGAN_COUNTS = {"horse2zebra": (1067, 1334, 120, 140), "apple2orange": (995, 1019, 266, 248)}
CYCLEGAN_SIZE = 256
DEFAULT_BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"


class DataError(ValueError):
    """A problem with the user's data, told in one line that names the path."""


# --------------------------------------------------------------------------- folders


def _image_files(folder: Path) -> list[Path]:
    images = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    return sorted(images, key=lambda p: p.name)


def not_images(folder: Path) -> list[str]:
    """The entries of `folder` that are not image files (sub-folders end in '/'): skipped, and counted."""
    return sorted(p.name + "/" * p.is_dir() for p in folder.iterdir()
                  if not (p.is_file() and p.suffix.lower() in IMG_EXTENSIONS))


def list_images(folder: str | Path) -> list[Path]:
    """The image files in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    images = _image_files(folder)
    if not images:
        raise DataError(f"no images in {folder} (looked for {' '.join(IMG_EXTENSIONS)})")
    return images


def domain_folders(root: str | Path, split: str) -> tuple[Path, Path]:
    """`root/{split}A` and `root/{split}B`: the source and target domain of a split."""
    folders = Path(root) / f"{split}A", Path(root) / f"{split}B"
    for folder in folders:
        if not folder.is_dir():
            raise DataError(f"no such folder: {folder}")
    return folders


def dataset_fingerprint(root: str | Path) -> str:
    """What a run records of its dataset, cheap to compute: the hash of its meta.json (agit's
    synthetic data: every image follows from it), else of the names and sizes of the image
    files in its folders (hidden ones, caches, aside). A copy elsewhere has the same; data
    made with other settings, or files added, removed or replaced, give another."""
    root = Path(root)
    if (root / "meta.json").is_file():
        return "meta " + hashlib.sha256((root / "meta.json").read_bytes()).hexdigest()[:12]
    if not root.is_dir():
        return "missing"
    listing = hashlib.sha256()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in _image_files(folder):
            listing.update(f"{folder.name}/{file.name} {file.stat().st_size}\n".encode())
    return "files " + listing.hexdigest()[:12]


def mask_folder_for(folder: str | Path) -> Path | None:
    """The ground-truth mask folder beside an image folder (`trainA` -> `trainA_mask`), if any."""
    return _beside(folder, "_mask")


def counterfactual_folder_for(folder: str | Path) -> Path | None:
    """The true translations beside a test folder (`testA` -> `testA_counterfactual`, same file
    names; agit.synthetic writes them), if any."""
    return _beside(folder, "_counterfactual")


def _beside(folder: str | Path, suffix: str) -> Path | None:
    other = Path(folder).with_name(Path(folder).name + suffix)
    return other if other.is_dir() else None


# --------------------------------------------------------------------------- decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB, upright.

    Upright: a camera stores a photo as its sensor saw it and says in EXIF how to turn
    it (phones held upright write "rotate 90°"); viewers apply that, so must we, or a
    portrait photo is read, trained on and translated lying on its side.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # PIL's own conversion clips 16-bit values at 255 (a white image); rescale instead.
        values = np.asarray(image, dtype=np.float64)
        # I;16 is 16-bit by definition; for I and F, guess from the values.
        scale = 257.0 if image.mode.startswith("I;16") or values.max() > 255 else 1.0
        return Image.fromarray(np.clip(values / scale, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # the direct route makes PIL warn
    return image.convert("RGB")


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


@contextlib.contextmanager
def _reading(path):
    """A bad image file as one DataError naming it (a symlink loop, a decompression bomb included)."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # PIL raises all of these
        raise DataError(f"cannot read image {path} ({err})") from None


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 tensor 3×H×W."""
    with _reading(path):
        return TF.pil_to_tensor(_open_rgb(Path(path)))


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as `read_rgb` gives it (upright), from its header: nothing decoded."""
    with _reading(path), Image.open(path) as image:
        width, height = image.size
        turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations with a quarter turn
        return (width, height) if turned else (height, width)


def read_mask(path: Path) -> torch.Tensor:
    """A mask file as a uint8 tensor 1×H×W in {0, 1}; anything brighter than mid-grey is object."""
    return (read_rgb(path)[:1] > 127).to(torch.uint8)


# --------------------------------------------------------------------------- dataset


class DomainFolder(Dataset):
    """The images of one domain, as dicts {'image', 'mask' (if known), 'path', 'index'}.

    Key an item by `i` or by `(i, seed)`. With `augment`, the crop and flip are drawn
    from a generator seeded by `seed` (`i` for a plain key), never from global RNG:
    the same key gives the same tensor in any process, in any order.
    """

    def __init__(
        self,
        folder: str | Path,
        size: int,
        load_size: int | None = None,
        augment: bool = False,
        mask_folder: str | Path | None = None,
        cache: bool = False,
        resize_filter: str = "bicubic",
    ):
        self.folder = Path(folder)
        # bicubic as CycleGAN's PyTorch code; the released AGGAN code resizes bilinearly (tf1_bilinear)
        self.interpolation = resize_filter
        self.paths = list_images(self.folder)
        self.not_images = not_images(self.folder)
        self.size = size
        self.load_size = load_size or load_size_for(size)
        if augment and self.load_size < size:
            raise ValueError(f"load_size {self.load_size} is smaller than the crop size {size}")
        self.augment = augment
        masks = Path(mask_folder) if mask_folder is not None else None
        # Keyed by stem so that photo.jpg may have its mask saved losslessly as photo.png.
        self.mask_paths = {p.stem: p for p in _image_files(masks)} if masks and masks.is_dir() else {}
        self.skipped: set[int] = set()  # per process: each DataLoader worker keeps its own
        self.resized = self._resized_copy() if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, key)
        # A corrupt file should cost one warning, not a crashed run: serve the next readable one.
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            if i in self.skipped:
                continue
            try:
                return self._item(i, seed)
            except DataError as err:
                warnings.warn(f"skipping corrupt image {self.paths[i]} ({err})", stacklevel=2)
                self.skipped.add(i)
        raise DataError(f"no readable images in {self.folder}")

    def _item(self, i: int, seed: int) -> dict:
        path = self.paths[i]
        transform = self._geometry(seed)
        # the cached copy is already at the first resize's size, which then leaves it as it is
        pixels = self.resized[i] if self.resized is not None else read_rgb(path)
        item = {
            "image": transform(pixels, self.interpolation) / 127.5 - 1,
            "path": str(path),
            "index": i,
        }
        if path.stem in self.mask_paths:
            mask = read_mask(self.mask_paths[path.stem])
            item["mask"] = transform(mask, "nearest")
        return item

    def _resized_copy(self) -> torch.Tensor:
        """Every image decoded and resized once (uint8, N×3×L×L, L the first resize's side).

        Decoding a JPEG and resizing it costs more than a small training step; this copy
        is kept beside the folder (`.agit_cache/`) and memory-mapped, so later runs and
        DataLoader workers share it. Any change of the folder's files rebuilds it.
        """
        side = self.load_size if self.augment else self.size
        key = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in self.paths]
        file = self.folder.parent / ".agit_cache" / f"{self.folder.name}_{side}px_{self.interpolation}.pt"
        # TF1's resize keeps floats: rounding them to uint8 would change what the network sees
        dtype = torch.float32 if self.interpolation == "tf1_bilinear" else torch.uint8
        saved = _load_cache(file, len(self.paths), side, dtype)
        if saved is not None and saved["key"] == [list(k) for k in key]:
            self._skip(saved["unreadable"], "cached as unreadable")
            return saved["images"]
        images = torch.zeros(len(self.paths), 3, side, side, dtype=dtype)
        unreadable = []
        for i, path in enumerate(track(self.paths, f"caching {self.folder.name} at {side} px", unit="img")):
            try:
                images[i] = resize_square(read_rgb(path), side, self.interpolation)
            except DataError:
                unreadable.append(i)
        self._skip(unreadable, "unreadable")
        try:
            buffer = io.BytesIO()
            torch.save({"key": [list(k) for k in key], "images": images, "unreadable": unreadable}, buffer)
            write_atomically(file, buffer.getbuffer())
        except OSError as err:  # a read-only dataset still trains, from this process's copy
            warnings.warn(f"cannot write the image cache {file} ({err}); keeping it in memory", stacklevel=3)
        return images

    def _skip(self, indices, why: str):
        for i in indices:
            warnings.warn(f"skipping corrupt image {self.paths[i]} ({why})", stacklevel=4)
            self.skipped.add(i)

    def _geometry(self, seed: int):
        """The resize (with augment: resize, crop, flip) of one item, applied alike to image and mask."""
        if not self.augment:
            return lambda x, interpolation: resize_square(x, self.size, interpolation)
        generator = torch.Generator().manual_seed(seed)
        top, left = torch.randint(0, self.load_size - self.size + 1, (2,), generator=generator).tolist()
        flip = torch.rand((), generator=generator).item() < 0.5

        def transform(x: torch.Tensor, interpolation: str) -> torch.Tensor:
            x = resize_square(x, self.load_size, interpolation)
            x = TF.crop(x, top, left, self.size, self.size)
            return TF.horizontal_flip(x) if flip else x

        return transform


def _load_cache(file: Path, n: int, side: int, dtype: torch.dtype) -> dict | None:
    """The image cache `file` if it is one agit wrote for `n` images of `side` px in `dtype`; else None (rebuilt).

    A truncated, crafted or foreign file is said and replaced: the cache is only derived data.
    """
    if not file.is_file():
        return None
    try:
        saved = torch.load(file, mmap=True, weights_only=True)
        images = saved["images"]
        if not (isinstance(saved["key"], list) and isinstance(images, torch.Tensor)
                and images.dtype == dtype and tuple(images.shape) == (n, 3, side, side)
                and all(isinstance(i, int) and 0 <= i < n for i in saved["unreadable"])):
            raise ValueError("not the layout agit writes")
    except Exception as err:  # noqa: BLE001 - whatever the file holds, it is rebuilt, never trusted
        warnings.warn(f"ignoring the image cache {file}: truncated, crafted or not agit's "
                      f"({type(err).__name__}); rebuilding it", stacklevel=4)
        return None
    return saved


def test_filter(train_filter: str) -> str:
    """The resize of test images for a run trained with `train_filter`: TF1's where training used
    it (the released code's test path is its training loader), else bicubic as before."""
    return "tf1_bilinear" if train_filter == "tf1_bilinear" else "bicubic"


def resize_square(x: torch.Tensor, side: int, resize_filter: str) -> torch.Tensor:
    """x (..., C, H, W) resized to side x side, as a float tensor on the 0-255 scale of its input.

    torchvision's filters ('bilinear', 'bicubic', 'nearest') antialias and keep uint8 input
    uint8; 'tf1_bilinear' is `tf1_resize_bilinear`.
    """
    if resize_filter == "tf1_bilinear":
        return tf1_resize_bilinear(x, side, side)
    antialias = resize_filter != "nearest"
    return TF.resize(x, [side, side], InterpolationMode(resize_filter), antialias=antialias).float()


def tf1_resize_bilinear(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """TF1's `tf.image.resize_images` (bilinear, align_corners=False): the released loader's resize.

    Output pixel j samples the input at j * (in / out) (no half-pixel centres, so the
    image shifts by up to half an input pixel towards the top left), interpolates its
    two neighbours, never averages more of them (no antialiasing: a large photo is
    subsampled), and returns float32 unrounded. float32 arithmetic in TF's order, so the
    result matches TF's kernel to rounding.
    """
    x = x.float()

    def taps(n_in: int, n_out: int):
        where = torch.arange(n_out, dtype=torch.float32) * torch.tensor(n_in / n_out, dtype=torch.float32)
        low = where.floor()
        return low.long(), (low.long() + 1).clamp(max=n_in - 1), where - low

    (y0, y1, wy), (x0, x1, wx) = taps(x.shape[-2], height), taps(x.shape[-1], width)
    top, bottom = x[..., y0, :], x[..., y1, :]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * wx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * wx
    return top + (bottom - top) * wy[:, None]


def pair_indices(n_a: int, n_b: int, epoch: int, seed: int, shuffle: bool) -> list[tuple[int, int]]:
    """The (a, b) index pairs of one epoch: max(n_a, n_b) of them, so every image of both domains is used.

    Without shuffle, the released code's order (`create_cyclegan_dataset.py`): the same
    pairs (i mod n_a, i mod n_b) every epoch. With shuffle, each domain's indices are a
    fresh permutation of the epoch's positions (taken mod its size), drawn from (seed,
    epoch) only, so a resumed run sees the same order.
    """
    n = max(n_a, n_b)
    if not shuffle:
        return [(i % n_a, i % n_b) for i in range(n)]
    generator = torch.Generator().manual_seed(_mix(seed, epoch))
    a = torch.randperm(n, generator=generator) % n_a
    b = torch.randperm(n, generator=generator) % n_b
    return list(zip(a.tolist(), b.tolist()))


def _mix(*keys: int) -> int:
    """One well-spread seed from several integers (nearby keys give unrelated streams)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0])


# --------------------------------------------------------------------------- writing datasets


def dataset_lock(root: str | Path, name: str):
    """The lock of `root/name` while it is made, imported or fetched: two processes would collide
    on its staging folder, and one could take the other's half-made dataset for complete."""
    return folder_lock(Path(root) / f".{name}.lock", f"dataset {Path(root) / name}")


@contextlib.contextmanager
def staged_folder(target: str | Path, replace: bool = False):
    """Yield an empty sibling folder to fill; it becomes `target` only if the block succeeds.

    So an interrupted download, import or generation never leaves a half-written
    dataset that a later run would take for complete (the caller holds `dataset_lock`).
    `replace` allows an existing target to be replaced, once the new one is whole; of its
    entries, those the new one has and agit's caches go, and the rest, the user's own
    (notes, a folder of extras), are moved into the new one: never deleted.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    replaced = target.with_name(f".{target.name}.replaced")
    if replaced.exists():  # a replacement interrupted between its renames: the user's files may be there
        raise DataError(f"{replaced} holds the dataset {target} had before an interrupted replacement; "
                        f"move out any files of yours, then remove it")
    if staging.exists():  # left by an interrupted run: ours by its name
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        yield staging
    except OSError as err:  # a full disk: say so in one line, naming the dataset
        shutil.rmtree(staging, ignore_errors=True)
        left = "it is as it was" if target.exists() else "nothing was left"
        raise DataError(f"{why(err)} while making {target}; {left}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists() and replace:
        target.rename(replaced)
        staging.rename(target)
        for entry in replaced.iterdir():
            if not (target / entry.name).exists() and entry.name not in DATASET_CACHES:
                entry.rename(target / entry.name)
        shutil.rmtree(replaced)
        return
    if target.exists():
        target.rmdir()  # refuses unless empty: callers replace only empty targets
    staging.rename(target)


def import_folders(
    a: str | Path,
    b: str | Path,
    name: str,
    root: str | Path = "data",
    test_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Copy two folders of images into `root/name/{trainA,trainB,testA,testB}`.

    The split is a seeded shuffle, so the same call gives the same split anywhere,
    with at least one test and one train image per domain. The sources are only read.
    An existing dataset is refused, or with `overwrite` replaced (files of the user's in it are kept).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    target = Path(root) / name
    with dataset_lock(root, name):
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise DataError(f"{target} already exists and is not empty; remove it, choose another name, "
                            f"or replace it with --overwrite (files of yours in it are kept)")
        return _import(a, b, target, test_fraction, seed)


def _import(a, b, target: Path, test_fraction: float, seed: int) -> Path:
    sources = {"A": list_images(a), "B": list_images(b)}
    for domain, folder in zip("AB", (a, b)):
        if len(sources[domain]) < 2:
            raise DataError(f"need at least 2 images in {folder} to split into train and test")
    with staged_folder(target, replace=True) as staging:
        for d, (domain, paths) in enumerate(sources.items()):
            order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(_mix(seed, d)))
            n_test = min(len(paths) - 1, max(1, round(len(paths) * test_fraction)))
            for rank, k in enumerate(order.tolist()):
                split = "test" if rank < n_test else "train"
                (staging / f"{split}{domain}").mkdir(exist_ok=True)
                shutil.copy2(paths[k], staging / f"{split}{domain}" / paths[k].name)
    return target


# --------------------------------------------------------------------------- downloads


def download(name: str, root: str | Path = "data", base_url: str | None = None, timeout: float = 30) -> Path:
    """Fetch and unpack a CycleGAN dataset into `root/name/{trainA,trainB,testA,testB}`.

    Resumable: the bytes received so far are kept in `root/name.zip.part` and an
    interrupted download continues from there (HTTP Range). The archive is checked
    (length and zip CRCs) before it is unpacked, and removed only after success.
    The server is `base_url`, else `$AGIT_DATASET_URL`, else DEFAULT_BASE_URL.
    """
    if name not in CYCLEGAN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(CYCLEGAN_DATASETS)}")
    with dataset_lock(root, name):
        return _download(name, Path(root), base_url, timeout)


def _download(name: str, root: Path, base_url: str | None, timeout: float) -> Path:
    target = root / name
    missing = [f for f in SPLIT_FOLDERS if not (target / f).is_dir()]
    if not missing:
        return target
    if target.exists() and any(target.iterdir()):
        raise DataError(f"{target} exists but lacks {', '.join(missing)}; remove it and run again")
    base_url = base_url or os.environ.get("AGIT_DATASET_URL") or DEFAULT_BASE_URL
    url = f"{base_url.rstrip('/')}/{name}.zip"
    part = Path(root) / f"{name}.zip.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(url, part, timeout)
    except (urllib.error.URLError, OSError) as err:  # offline, refused, timed out, HTTP error
        reason = getattr(err, "reason", None) or err
        raise DataError(
            f"could not download {url} ({reason}). "
            f"Fetch it by hand and unzip it so that {target}/trainA … exist"
        ) from None
    _unpack(part, target)
    part.unlink()
    return target


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the rest of `url` to `part`; check the total against Content-Length."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416:  # nothing left to send: the part is already whole
            return
        raise
    with response:
        if response.status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as file, Progress(
            total, part.name, initial=have, unit="B", every=16 << 20, unit_scale=True
        ) as bar:
            while chunk := response.read(1 << 16):
                file.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise OSError(f"got {size} of {total} bytes; run again to resume")


def _unpack(archive: Path, target: Path) -> None:
    """Check the zip's CRCs and unpack it; the CycleGAN zips hold one top folder `name/`."""
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"bad CRC for {bad}")
            with staged_folder(target) as staging:
                zf.extractall(staging)
                top = staging / target.name
                inner = top if (top / "trainA").is_dir() else staging
                missing = [f for f in SPLIT_FOLDERS if not (inner / f).is_dir()]
                if missing:
                    raise DataError(f"{archive} lacks {', '.join(missing)}")
                if inner is top:  # lift name/* up one level
                    for child in top.iterdir():
                        child.rename(staging / child.name)
                    top.rmdir()
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive} is not a valid zip ({err}); delete it and run again") from None
