"""Feature extractors and the offline classifiers the metrics run on.

KID compares sets of image features; every KID carries the name of the extractor
that made them (``EXTRACTORS``):

* ``'inception'``: 2048-d pool features of the TF-compatible Inception-v3 used for
  FID/KID (``inception-v3-compat`` in torch-fidelity), the paper's. Its weights must be on disk.
* ``'domain-cnn'``: penultimate features of a small A-vs-B classifier trained on the
  dataset's own train split. Needs no download; numbers are *not* comparable with
  Inception KID.
* ``'scene-cnn'``: the same network trained to name the object and the background kind
  (agit's synthetic data), so KID is not a domain detector.

The ``object`` classifier, shown only the object region, says whether a translated
object is the target domain's (``metrics.target_rate``). Images are uint8 here.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .data import domain_folders, list_images, mask_folder_for, read_mask, read_rgb
from .files import write_atomically
from .progress import track


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats to uint8 0..255, rounded (an input read as uint8 comes back exactly): what
    feature extractors expect, and what translations are saved as."""
    return ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class Extractor:
    """A feature function with its name; the name is written next to every KID it produces."""

    name: str
    fn: Callable[[Tensor], Tensor]
    batch_size: int = 50
    cache_key: str | None = None  # set where the features are a pure function of the images (`fixed_set`)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return torch.cat([self.fn(batch).float().cpu() for batch in images.split(self.batch_size)])

    def fixed_set(self, images: Tensor) -> Tensor:
        """Features of a set every evaluation of a dataset shares (its test split, the counterfactuals):
        computed once per process where `cache_key` allows — a profile evaluates dozens of runs on it."""
        if self.cache_key is None:
            return self(images)
        key = (self.cache_key, tuple(images.shape), hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest())
        if key not in _FIXED_SETS:
            _FIXED_SETS[key] = self(images)
        return _FIXED_SETS[key]


_FIXED_SETS: dict[tuple, Tensor] = {}


INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


class MissingWeightsError(RuntimeError):
    """The Inception weights are not on disk (and would otherwise be downloaded)."""


def inception_weights_path() -> Path:
    """Where the Inception weights are: $AGIT_INCEPTION_WEIGHTS, else torch hub's cache.

    Raises MissingWeightsError before torch-fidelity would try to download them, so an
    offline machine gets instructions instead of a network traceback.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    env = os.environ.get("AGIT_INCEPTION_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    if not env and hub_file.is_file():  # a wrong explicit path is an error, not a fallback
        return hub_file
    unset_or_wrong = (f"AGIT_INCEPTION_WEIGHTS={env} is not a file. " if env else "")
    raise MissingWeightsError(
        f"KID needs the Inception-v3 weights file {INCEPTION_WEIGHTS}, which is not on this "
        f"machine. {unset_or_wrong}Download it from {URL_INCEPTION_V3} and either put it at "
        f"{hub_file} or set AGIT_INCEPTION_WEIGHTS=/path/to/{INCEPTION_WEIGHTS}. "
        f"Offline, use the 'domain-cnn' extractor instead (its KID is not comparable with the paper's)."
    )


def inception_extractor(data_dir: str | Path | None = None, device: str = "cpu") -> Extractor:
    """torch-fidelity's TF-compatible Inception-v3, 2048-d pool features.

    It resizes to 299 the way TensorFlow 1 did and normalises internally, so it is
    fed raw uint8. `data_dir` is unused: these features do not depend on the dataset.
    Built once per process and weights file (`_inception`): a profile evaluates dozens of runs.
    """
    path = inception_weights_path()
    net = _inception(str(path), path.stat().st_mtime_ns, str(device))
    return Extractor("inception", lambda x: net(x.to(device))[0], cache_key=f"{path}:{path.stat().st_mtime_ns}")


@functools.lru_cache(maxsize=2)
def _inception(path: str, mtime_ns: int, device: str):
    """The network, loaded by torch-fidelity's own loader (`mtime_ns`: a replaced file is reloaded)."""
    # Imported here: torch-fidelity is slow to import and only this extractor needs it.
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    return tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                    feature_extractor_weights_path=path).to(device)


class LabelCNN(nn.Module):
    """A small image classifier with one or more heads, the offline stand-in for Inception.

    Trained for seconds on a dataset's train split (`label_cnn`) and cached in
    `<data>/.agit/`. Its 128-d penultimate features feed KID; its heads' probabilities
    say what a translated image shows.

    The features are divided by their root mean square over the train split. KID's
    kernel (xᵀy/d + 1)³ assumes features of order 1, as Inception's pool features
    are; unscaled, this network's features reach tens, and the cube lets a few
    images dominate every subset's estimate.
    """

    def __init__(self, size: int, heads: dict[str, int]):
        super().__init__()
        self.size = size
        layers, width = [], 3
        for out in (16, 32, 64, 128):
            layers += [nn.Conv2d(width, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({name: nn.Linear(128, n) for name, n in heads.items()})
        self.register_buffer("feature_scale", torch.ones(()))

    def _prepare(self, x_uint8: Tensor) -> Tensor:
        x = x_uint8.to(next(self.parameters()).device).float() / 127.5 - 1
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x

    def forward(self, x_uint8: Tensor) -> dict[str, Tensor]:
        h = self.body(self._prepare(x_uint8))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def features(self, x_uint8: Tensor) -> Tensor:
        return torch.cat([self.body(self._prepare(b)).cpu() for b in x_uint8.split(100)]) / self.feature_scale.cpu()

    @torch.no_grad()
    def probs(self, x_uint8: Tensor, head: str) -> Tensor:
        """Class probabilities (N×classes) of one head."""
        return torch.cat([self(b)[head].softmax(1).cpu() for b in x_uint8.split(100)])


# What each kind of LabelCNN learns, from the train split (`_labelled_train_set`):
#   domain: A or B (any dataset)                  -> the `domain-cnn` KID features
#   scene:  object none/A/B and background kind   -> the `scene-cnn` KID features (synthetic data)
#   object: A's or B's object, shown only the object (background grey) -> "object translated"
LABEL_HEADS = {"domain": {"domain": 2}, "scene": {"object": 3, "background": 2}, "object": {"object": 2}}
CACHE_FORMAT = 3  # bump when a cached network's meaning changes


def label_cnn(data_dir: str | Path, kind: str, device: str = "cpu", seed: int = 0) -> LabelCNN:
    """The dataset's classifier of `kind` (LABEL_HEADS): loaded from its cache, or trained and cached."""
    data_dir = Path(data_dir)
    files = dict(zip(("trainA", "trainB"), map(list_images, domain_folders(data_dir, "train"))))
    fingerprint = f"{CACHE_FORMAT}:{kind}:{_fingerprint(files['trainA'] + files['trainB'])}"
    cache = data_dir / ".agit" / f"{kind}_cnn.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location=device, weights_only=True)
        if saved["fingerprint"] == fingerprint:
            net = LabelCNN(saved["size"], LABEL_HEADS[kind]).to(device)
            net.load_state_dict(saved["state_dict"])
            return net.eval()
    size = min(read_rgb(files["trainA"][0]).shape[-1], 64)  # bigger images are shrunk to stay CPU-fast
    images, labels = _labelled_train_set(data_dir, files, kind, size)
    net = _train_label_cnn(images, labels, LABEL_HEADS[kind], size, seed).to(device).eval()
    net.feature_scale.fill_(net.features(images).pow(2).mean().sqrt().item())
    buffer = io.BytesIO()  # parallel evaluations may train it at once: each writes whole (agit.files)
    torch.save({"state_dict": net.state_dict(), "size": size, "fingerprint": fingerprint}, buffer)
    write_atomically(cache, buffer.getbuffer())
    return net


def object_only(images_uint8: Tensor, masks: Tensor) -> Tensor:
    """The object region alone: every pixel outside the mask mid-grey (0 in [-1, 1])."""
    return torch.where(masks.bool().expand_as(images_uint8), images_uint8, torch.full_like(images_uint8, 128))


def _labelled_train_set(data_dir: Path, files: dict, kind: str, size: int) -> tuple[Tensor, dict[str, Tensor]]:
    """uint8 train images and their labels per head for a LabelCNN of `kind`."""
    images = {k: _load_images(v, size) for k, v in files.items()}
    n = {k: len(v) for k, v in files.items()}
    if kind == "domain":
        return torch.cat(list(images.values())), {"domain": torch.tensor([0] * n["trainA"] + [1] * n["trainB"])}
    meta_file = data_dir / "meta.json"
    if kind == "scene":
        if not meta_file.is_file():
            raise ValueError(f"the 'scene-cnn' features need object and background labels, which only agit's "
                             f"synthetic data carry ({meta_file} is missing); use --kid inception or domain-cnn")
        meta = json.loads(meta_file.read_text())
        objects, backgrounds = [], []
        for d, folder in enumerate(("trainA", "trainB")):
            free, swapped = set(meta["animal_free"][folder]), set(meta["other_background"][folder])
            objects += [0 if p.name in free else 1 + d for p in files[folder]]
            backgrounds += [d ^ (p.name in swapped) for p in files[folder]]
        return torch.cat(list(images.values())), {"object": torch.tensor(objects), "background": torch.tensor(backgrounds)}
    # kind == "object": only images with an object, shown only the object
    shown, labels = [], []
    for d, folder in enumerate(("trainA", "trainB")):
        mask_dir = mask_folder_for(data_dir / folder)
        if mask_dir is None:
            raise ValueError(f"the object classifier needs ground-truth masks of the train split ({folder}_mask/)")
        masks = torch.stack([TF.resize(read_mask(mask_dir / p.name), [size, size], InterpolationMode.NEAREST)
                             for p in files[folder]])
        has = masks.flatten(1).any(1).bool()
        shown.append(object_only(images[folder][has], masks[has]))
        labels += [d] * int(has.sum())
    return torch.cat(shown), {"object": torch.tensor(labels)}


def _train_label_cnn(images: Tensor, labels: dict[str, Tensor], heads: dict[str, int], size: int, seed: int,
                     steps: int = 300, batch: int = 32) -> LabelCNN:
    """Cross-entropy on every head, batches balanced over the first head's classes (so unequal
    domain sizes or a 15 % share of object-free images do not bias it), random flips."""
    first = labels[next(iter(heads))]
    groups = [torch.nonzero(first == c).flatten() for c in range(heads[next(iter(heads))])]
    groups = [g for g in groups if len(g)]
    with torch.random.fork_rng():  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        net = LabelCNN(size, heads)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in track(range(steps), f"learning the {'/'.join(heads)} classifier (once, then cached)", unit="step"):
            idx = torch.cat([g[torch.randint(len(g), (batch // len(groups),))] for g in groups])
            x = images[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(-1), x)
            out = net(x)
            loss = sum(F.cross_entropy(out[h], labels[h][idx]) for h in heads)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def _fingerprint(files: list[Path]) -> str:
    """Names and sizes of the train images: cheap, and changes when the data are regenerated."""
    text = "\n".join(f"{p.parent.name}/{p.name}:{p.stat().st_size}" for p in files)
    return hashlib.sha1(text.encode()).hexdigest()


def _load_images(files: list[Path], size: int) -> Tensor:
    """uint8 N×3×size×size, resized as the translations are (agit.data's reader)."""
    return torch.stack([TF.resize(read_rgb(p), [size, size], antialias=True) for p in files])


def domain_cnn_extractor(data_dir: str | Path, device: str = "cpu") -> Extractor:
    return Extractor("domain-cnn", label_cnn(data_dir, "domain", device).features)


def scene_cnn_extractor(data_dir: str | Path, device: str = "cpu") -> Extractor:
    """Features that describe the object *and* the scene, so KID is not a domain detector.

    `domain-cnn` features are trained to tell A from B and mostly encode *which domain*:
    the paper's mean of KID vs target and vs source is then about the same for any
    image that is half one domain and half the other. These are trained to name the
    object (none, A's, B's) and, separately, the background kind, so a translation that
    keeps the background and changes the object lands near the counterfactual set, and
    one that repaints the background does not.
    """
    return Extractor("scene-cnn", label_cnn(data_dir, "scene", device).features)


# name -> factory(data_dir, device) -> Extractor
EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "inception": inception_extractor,
    "scene-cnn": scene_cnn_extractor,
    "domain-cnn": domain_cnn_extractor,
}
