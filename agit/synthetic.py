"""The embedded synthetic pairs: objects of two kinds on two kinds of background, with masks
and, for every test image, its true translation.

Why they exist. The paper's datasets need a download and carry no ground truth, so its
claims — the attention finds the object, the background survives translation, an image
without the object is left alone (Fig. 17) — can only be looked at. These pairs are drawn
from what scikit-image ships (the `horse()` silhouette, the `grass()`, `gravel()`,
`brick()` and `moon()` textures), so they work offline in seconds, and every image comes
with its true mask, so each claim becomes a number.

They also carry what no real dataset can: the *counterfactual*. Every scene — background
patch, object silhouettes, poses, positions, flips — is drawn once from its own random
stream, and the objects' coats from others; rendering the same scene with the other
domain's coat gives the translation a perfect method would produce (`testA_counterfactual/`,
`testB_counterfactual/`, same file names). Object-free images are their own counterfactual.

And they carry the paper's central tension. By default the backgrounds differ between the
domains (the default: green meadow vs sandy savanna), as in horse2zebra: a discriminator
can tell the domains apart by the background alone, which pushes an unguided translator to
repaint the whole image. `background="shared"` removes that cue; `overlap` sets how often
an image takes the other domain's background, between the two extremes.

Three styles, so that a recipe tuned on one pair can be checked on others (`STYLES`):
``horse2zebra`` (the default: one horse-shaped animal, chestnut ↔ striped), ``apple2orange``
(one to three round fruits, small, smooth red ↔ dimpled orange, on brick ↔ stone), and
``star2leopard`` (one or two random star shapes, plain teal ↔ spotted, on stone ↔ grass).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
import skimage.draw
from PIL import Image

from .data import CYCLEGAN_COUNTS, CYCLEGAN_SIZE, DataError, dataset_lock, staged_folder
from .progress import Progress

# The default keeps the paper's tension (70 % of each domain on its own background) but
# lets the animal be a stronger cue than the background: with fully domain-specific
# backgrounds (the "hard" pair) D separates the domains by background colour within
# a few dozen iterations. The other styles test that a recipe transfers.
SYNTHETIC_PAIRS = {
    "synthetic": dict(background="distinct", overlap=0.3),
    "synthetic_hard": dict(background="distinct", overlap=0.0),
    "synthetic_shared": dict(background="shared"),
    "synthetic_fruit": dict(style="apple2orange", background="distinct", overlap=0.3),
    "synthetic_stars": dict(style="star2leopard", background="distinct", overlap=0.3),
}
# Real datasets with a synthetic stand-in (`make_stand_in`): the pair of the same style.
STAND_INS = {"horse2zebra": "synthetic", "apple2orange": "synthetic_fruit"}
DOMAINS = ("A", "B")
VERSION = 2  # bump when the pictures change, so cached datasets are regenerated

SUPERSAMPLE = 4  # objects are drawn this much finer, then box-filtered: antialiased edges and patterns
BELLY = 0.63  # height of the belly line of skimage's horse, as a fraction of its box: legs below


@dataclass(frozen=True)
class Style:
    """What a pair is made of: per domain (A, B) a coat and a background kind; one shape."""

    shape: str  # 'horse', 'fruit' or 'star'
    coats: tuple[str, str]
    backgrounds: tuple[str, str]
    objects: tuple[int, int]  # min and max objects per image (those with any)
    width: tuple[float, float]  # object width as a share of the image side


STYLES = {
    "horse2zebra": Style("horse", ("chestnut", "zebra"), ("meadow", "savanna"), (1, 1), (0.4, 0.75)),
    "apple2orange": Style("fruit", ("apple", "orange"), ("brick", "stone"), (1, 3), (0.22, 0.38)),
    "star2leopard": Style("star", ("teal", "leopard"), ("stone", "grass"), (1, 2), (0.3, 0.55)),
}

# Background kinds: a grey texture of skimage's and a mean colour (RGB in [0, 1]); each image jitters it.
BACKGROUNDS = {
    "meadow": ("grass", (0.34, 0.56, 0.18)),
    "savanna": ("gravel", (0.85, 0.72, 0.50)),
    "brick": ("brick", (0.62, 0.42, 0.36)),
    "stone": ("moon", (0.55, 0.58, 0.66)),
    "grass": ("grass", (0.55, 0.60, 0.30)),
}
CHESTNUT = np.array([0.56, 0.30, 0.14])
ZEBRA_BLACK, ZEBRA_WHITE = 0.07, 0.93


# --------------------------------------------------------------------------- backgrounds


@functools.cache
def _texture(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()


def _background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """A random patch of the kind's texture, tinted, as float size×size×3 in [0, 1]."""
    texture_name, tint = BACKGROUNDS[kind]
    texture = _texture(texture_name)
    side = int(rng.uniform(0.3, 0.7) * len(texture))
    top, left = rng.integers(0, len(texture) - side + 1, size=2)
    patch = Image.fromarray(texture[top : top + side, left : left + side])
    patch = patch.resize((size, size), Image.BILINEAR)
    grey = np.asarray(patch, np.float64) / texture.mean()  # mean 1: the tint sets the average colour
    if rng.random() < 0.5:
        grey = grey[:, ::-1]
    tint = np.array(tint) * rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, size=3)
    return np.clip(grey[..., None] * tint, 0, 1)


# --------------------------------------------------------------------------- shapes


@functools.cache
def _horse() -> np.ndarray:
    """skimage's horse (dark on white), as a bool mask cropped to its bounding box."""
    horse = ~skimage.data.horse()
    rows, cols = np.nonzero(horse)
    return horse[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _silhouette(rng: np.random.Generator, shape: str, width: int) -> np.ndarray:
    """A bool silhouette `width` px wide (at SUPERSAMPLE× resolution), drawn from `rng` where random."""
    fine = width * SUPERSAMPLE
    if shape == "horse":
        horse = _horse()
        height = max(1, round(width * horse.shape[0] / horse.shape[1])) * SUPERSAMPLE
        return np.asarray(Image.fromarray(horse).resize((fine, height), Image.NEAREST), bool)
    if shape == "fruit":  # a slightly squashed disc with a notch on top for the stem
        height = round(fine * rng.uniform(0.85, 1.0))
        rr, cc = skimage.draw.ellipse(height / 2, fine / 2, height / 2, fine / 2, (height, fine))
        alpha = np.zeros((height, fine), bool)
        alpha[rr, cc] = True
        rr, cc = skimage.draw.disk((0, fine / 2 + rng.uniform(-0.05, 0.05) * fine), fine * 0.09, shape=alpha.shape)
        alpha[rr, cc] = False
        return alpha
    if shape == "star":  # 5 to 7 arms of random length around a random turn
        arms = rng.integers(5, 8)
        angles = np.linspace(0, 2 * np.pi, 2 * arms, endpoint=False) + rng.uniform(0, 2 * np.pi)
        radii = np.where(np.arange(2 * arms) % 2, rng.uniform(0.35, 0.55), 1.0) * rng.uniform(0.85, 1.0, 2 * arms)
        rr = fine / 2 + fine / 2 * radii * np.sin(angles)
        cc = fine / 2 + fine / 2 * radii * np.cos(angles)
        alpha = np.zeros((fine, fine), bool)
        alpha[skimage.draw.polygon(rr, cc, (fine, fine))] = True
        return alpha
    raise ValueError(f"unknown shape {shape!r}")


# --------------------------------------------------------------------------- coats


def _coat(rng: np.random.Generator, kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colour (h×w×3 in [0, 1]) of a coat over the object's box coordinates u (across), v (down) in [0, 1)."""
    if kind == "chestnut":  # chestnut to bay, lit from above: a lighter back, darker legs
        colour = CHESTNUT * rng.uniform(0.75, 1.2) * rng.uniform(0.9, 1.1, size=3)
        return np.clip((1.15 - 0.4 * v)[..., None] * colour, 0, 1)
    if kind == "zebra":  # wavy near-vertical stripes on body and neck, thinner rings on the legs
        n_stripes = rng.uniform(7, 9.5)  # across the whole box: 2-4 px wide at 64 px
        phase = rng.uniform(0, 2 * np.pi)
        body = n_stripes * u + 0.35 * np.sin(2 * np.pi * 1.2 * v + phase) + rng.uniform(-0.8, 0.8) * v
        legs = 1.6 * n_stripes * (u.shape[0] / u.shape[1]) * v
        black = ((np.where(v < BELLY, body, legs) % 1.0) < 0.45)[..., None]
        return np.where(black, ZEBRA_BLACK, ZEBRA_WHITE * rng.uniform(0.9, 1.05)) * np.ones(3)
    r = np.hypot(u - 0.4, v - 0.35)  # fruits and stars: lit from the upper left
    shade = np.clip(1.2 - 0.8 * r, 0.5, 1.2)[..., None]
    if kind == "apple":  # smooth red, a little green towards the top, a highlight
        red = np.array([0.75, 0.12, 0.10]) * rng.uniform(0.85, 1.15, size=3)
        green = np.array([0.45, 0.55, 0.15])
        colour = red + np.clip(0.35 - v, 0, None)[..., None] * (green - red) * rng.uniform(0.5, 1.5)
        highlight = np.exp(-(np.hypot(u - 0.35, v - 0.3) / 0.08) ** 2)[..., None] * 0.5
        return np.clip(shade * colour + highlight, 0, 1)
    if kind == "orange":  # orange peel: fine dimples, no highlight
        colour = np.array([0.95, 0.55, 0.10]) * rng.uniform(0.9, 1.1, size=3)
        freq = rng.uniform(18, 26)
        dimples = np.sin(freq * np.pi * u + rng.uniform(0, 6.3)) * np.sin(freq * np.pi * v + rng.uniform(0, 6.3))
        return np.clip(shade * colour * (1 + 0.18 * dimples[..., None]), 0, 1)
    if kind == "teal":  # plain, shaded
        colour = np.array([0.12, 0.45, 0.48]) * rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, size=3)
        return np.clip(shade * colour, 0, 1)
    if kind == "leopard":  # yellow with dark spots at random places
        colour = np.array([0.90, 0.72, 0.25]) * rng.uniform(0.9, 1.1, size=3)
        spots = np.zeros(u.shape, bool)
        for cu, cv, radius in zip(*rng.uniform([[0], [0], [0.035]], [[1], [1], [0.06]], size=(3, 40))):
            spots |= np.hypot(u - cu, v - cv) < radius
        return np.where(spots[..., None], np.array([0.15, 0.10, 0.05]), shade * colour).clip(0, 1)
    raise ValueError(f"unknown coat {kind!r}")


def _box_filter(x: np.ndarray) -> np.ndarray:
    """Average SUPERSAMPLE×SUPERSAMPLE blocks."""
    h, w = x.shape[0] // SUPERSAMPLE, x.shape[1] // SUPERSAMPLE
    return x[: h * SUPERSAMPLE, : w * SUPERSAMPLE].reshape(h, SUPERSAMPLE, w, SUPERSAMPLE, *x.shape[2:]).mean(axis=(1, 3))


# --------------------------------------------------------------------------- scenes


@dataclass
class Placed:
    """One object of a scene: its fine silhouette, flip and top-left corner in the image."""

    alpha: np.ndarray
    flip: bool
    top: int
    left: int


@dataclass
class Scene:
    """Everything of an image but the coats: drawn once, rendered with either domain's coat."""

    background: np.ndarray  # size×size×3 in [0, 1]
    objects: list[Placed]


def _scene(stream: list[int], style: Style, background_kind: str, size: int, with_objects: bool) -> Scene:
    """The background from one stream, the objects' shapes and places from another: so the same
    objects can be put on the other background kind (the repaint of the sanity checks)."""
    background = _background(np.random.default_rng(stream + [0]), background_kind, size)
    rng = np.random.default_rng(stream + [1])
    objects = []
    for _ in range(rng.integers(style.objects[0], style.objects[1] + 1) if with_objects else 0):
        alpha = _silhouette(rng, style.shape, width=max(2, round(rng.uniform(*style.width) * size)))
        h, w = alpha.shape[0] // SUPERSAMPLE, alpha.shape[1] // SUPERSAMPLE
        # Mostly inside: at most a tenth of the object may leave the frame on each side.
        top = int(rng.integers(-(h // 10), size - h + h // 10 + 1))
        left = int(rng.integers(-(w // 10), size - w + w // 10 + 1))
        objects.append(Placed(alpha, bool(rng.random() < 0.5), top, left))
    return Scene(background, objects)


def _render(scene: Scene, coat: str, coat_stream: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The scene with every object in `coat` (uint8 size×size×3) and its mask (0 or 255, any coverage).

    Object k's coat comes from stream `coat_stream + [k]`: another stream gives the same
    coat kind with fresh randomness (stripe phase and count, tint, spot places)."""
    size = len(scene.background)
    image = scene.background.copy()
    mask = np.zeros((size, size), np.uint8)
    for k, obj in enumerate(scene.objects):
        fine_h, fine_w = obj.alpha.shape
        v, u = np.mgrid[0:fine_h, 0:fine_w] / np.array([fine_h, fine_w])[:, None, None]
        colour = _coat(np.random.default_rng(coat_stream + [k]), coat, u, v)
        alpha = obj.alpha.astype(np.float64)
        if obj.flip:
            alpha, colour = alpha[:, ::-1], colour[:, ::-1]
        premultiplied, alpha = _box_filter(alpha[..., None] * colour), _box_filter(alpha)
        h, w = alpha.shape
        dst = np.s_[max(obj.top, 0) : obj.top + h, max(obj.left, 0) : obj.left + w]
        src = np.s_[max(-obj.top, 0) : size - obj.top, max(-obj.left, 0) : size - obj.left]
        a = alpha[src][..., None]
        image[dst] = premultiplied[src] + (1 - a) * image[dst]
        # every pixel the object touches at all: outside the mask is exactly the untouched background
        mask[dst] = np.where(alpha[src] > 0, 255, mask[dst])
    return np.round(image * 255).astype(np.uint8), mask


# Renderings of a test image besides the image itself (`render_image`'s `kind`).
RENDERINGS = ("image", "counterfactual", "counterfactual_again", "repaint")


def render_image(params: dict, split: str, domain: str, index: int, kind: str = "image"):
    """One image of a synthetic dataset made with `params` (its meta.json's), as (uint8 image, mask).

    `kind`: 'image' as saved; 'counterfactual' the same scene with the other domain's coat
    (saved for the test split); 'counterfactual_again' the counterfactual with fresh coat
    randomness; 'repaint' the image itself on the other domain's background kind. The last
    two are the references of the metrics' sanity checks.
    """
    if kind not in RENDERINGS:
        raise ValueError(f"kind must be one of {', '.join(RENDERINGS)}, got {kind!r}")
    style = STYLES[params.get("style", "horse2zebra")]
    d = DOMAINS.index(domain)
    stream, with_objects, swapped = _draws(params, split, domain, index)
    if kind == "repaint":
        swapped = not swapped
    scene = _scene(stream, style, style.backgrounds[1 - d if swapped else d], params["size"], with_objects)
    coat_domain, coat_stream = {"image": (d, 2), "counterfactual": (1 - d, 3),
                                "counterfactual_again": (1 - d, 4), "repaint": (d, 2)}[kind]
    return _render(scene, style.coats[coat_domain], stream + [coat_stream])


def _draws(params: dict, split: str, domain: str, index: int) -> tuple[list[int], bool, bool]:
    """An image's random stream, whether it has objects, whether it takes the other domain's background.

    One stream per image, so any image can be rendered alone, in any order."""
    s, d, n = ("train", "test").index(split), DOMAINS.index(domain), _count(params, split, domain)
    stream = [params["seed"], s, d, index]
    # An exact share of object-free images, so small test sets still have some.
    order = np.random.default_rng([params["seed"], s, d]).permutation(n)
    with_objects = index not in set(order[: round(n * params["empty_fraction"])].tolist())
    p_other = 0.5 if params["background"] == "shared" else params["overlap"]
    return stream, with_objects, bool(np.random.default_rng(stream + [9]).random() < p_other)


def _count(params: dict, split: str, domain: str) -> int:
    """Images in one folder: `n_train` / `n_test` is one count for both domains or [A's, B's]."""
    n = params[f"n_{split}"]
    return n[DOMAINS.index(domain)] if isinstance(n, list) else n


def make_synthetic(
    root: str | Path = "data",
    name: str = "synthetic",
    size: int = 64,
    n_train: int | tuple[int, int] = 400,
    n_test: int | tuple[int, int] = 100,
    seed: int = 0,
    background: str = "distinct",
    empty_fraction: float = 0.15,
    overlap: float = 0.0,
    style: str = "horse2zebra",
    overwrite: bool = False,
    stand_in_for: str | None = None,
) -> Path:
    """Write the dataset to `root/name` (images, masks, test counterfactuals, meta.json); return the path.

    Byte-identical for the same arguments; an existing copy made with the same arguments is
    reused as it is, one made by an older version of this module (`VERSION`) is remade, and
    one made with other arguments is refused unless `overwrite` (files of the user's in it are
    kept). Holds the dataset's lock, and builds beside it: interrupted, it leaves the old one.
    `n_train` and `n_test` are per folder, one count or (A's, B's).
    `empty_fraction` of each folder has no object (mask all zero). With
    `background="distinct"`, an image takes the other domain's background with probability
    `overlap`; `"shared"` is the same as overlap 0.5: both domains then draw from one
    background distribution. `style` picks the objects, coats and backgrounds (`STYLES`).
    `stand_in_for` names the real dataset these images stand in for (`make_stand_in`).
    """
    if background not in ("distinct", "shared"):
        raise ValueError(f"background must be 'distinct' or 'shared', got {background!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if not (0 <= overlap <= 1 and 0 <= empty_fraction <= 1):
        raise ValueError("overlap and empty_fraction must lie in [0, 1]")
    counts = {k: list(n) if isinstance(n, (tuple, list)) else n for k, n in (("n_train", n_train), ("n_test", n_test))}
    params = dict(version=VERSION, style=style, size=size, **counts, seed=seed,
                  background=background, empty_fraction=empty_fraction, overlap=overlap)
    if stand_in_for:  # only then: the cached copies of the other pairs stay valid
        params["stand_in_for"] = stand_in_for
    with dataset_lock(root, name):
        target = Path(root) / name
        meta_path = target / "meta.json"
        if meta_path.is_file():
            saved = json.loads(meta_path.read_text())["params"]
            if saved == params:
                return target
            other = {k: (saved.get(k), v) for k, v in params.items() if k != "version" and saved.get(k) != v}
            if other and not overwrite:
                shown = ", ".join(f"{k} {old!r} (asked {new!r})" for k, (old, new) in other.items())
                raise DataError(f"{target} holds a synthetic dataset made with {shown}; replace it with "
                                f"--overwrite (files of yours in it are kept), or choose another --name")
        elif target.exists() and any(target.iterdir()):
            raise DataError(f"{target} exists and is not a synthetic dataset; remove it or choose another name")
        return _write_synthetic(target, params)


def _write_synthetic(target: Path, params: dict) -> Path:
    """The dataset `params` describes into `target` (built beside it, then renamed)."""
    style = params["style"]
    meta = dict(params=params, animal_free={}, other_background={},
                coats=dict(zip(DOMAINS, STYLES[style].coats)), backgrounds=dict(zip(DOMAINS, STYLES[style].backgrounds)))
    total = sum(_count(params, split, d) * (1 + (split == "test")) for split in ("train", "test") for d in DOMAINS)
    with staged_folder(target, replace=True) as staging, Progress(total, f"rendering {target}", unit="img") as bar:
        for split in ("train", "test"):
            for domain in DOMAINS:
                folder, n = f"{split}{domain}", _count(params, split, domain)
                for sub in (folder, f"{folder}_mask") + ((f"{folder}_counterfactual",) if split == "test" else ()):
                    (staging / sub).mkdir()
                meta["animal_free"][folder], meta["other_background"][folder] = [], []
                for i in range(n):
                    file = f"{i:04d}.png"
                    image, mask = render_image(params, split, domain, i)
                    Image.fromarray(image).save(staging / folder / file)
                    Image.fromarray(mask).save(staging / f"{folder}_mask" / file)
                    if split == "test":
                        counterfactual, _ = render_image(params, split, domain, i, "counterfactual")
                        Image.fromarray(counterfactual).save(staging / f"{folder}_counterfactual" / file)
                    _, with_objects, swapped = _draws(params, split, domain, i)
                    if not with_objects:
                        meta["animal_free"][folder].append(file)
                    if swapped:
                        meta["other_background"][folder].append(file)
                    bar.update(2 if split == "test" else 1)
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    return target


def make_stand_in(root: str | Path, like: str, size: int = CYCLEGAN_SIZE, fraction: float = 1.0,
                  n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Path:
    """A synthetic stand-in for the CycleGAN dataset `like`, under its name and layout: its style,
    its image counts per folder (times `fraction`, at least 2; `n_train` / `n_test` set both
    domains' counts instead), `size` px (the real sets' 256 by default).

    Why: the paper profile can then run end to end (a preflight) where the real data cannot be
    fetched. Its meta.json says `stand_in_for`, which every table and report built on it
    repeats (`stand_in_of`), so the numbers are never taken for the paper's.
    """
    if like not in STAND_INS:
        raise DataError(f"no synthetic stand-in for {like!r}; choose from {', '.join(STAND_INS)}")
    if not 0 < fraction <= 1:
        raise DataError(f"fraction must lie in (0, 1], got {fraction}")
    scaled = [max(2, round(n * fraction)) for n in CYCLEGAN_COUNTS[like]]
    options = {**SYNTHETIC_PAIRS[STAND_INS[like]], "style": like}
    return make_synthetic(root, like, size, n_train or tuple(scaled[:2]), n_test or tuple(scaled[2:]), seed,
                          stand_in_for=like, **options)


def stand_in_of(data: str | Path) -> str | None:
    """The real dataset a dataset folder stands in for (its meta.json), None for any other."""
    meta = Path(data) / "meta.json"
    return json.loads(meta.read_text())["params"].get("stand_in_for") if meta.is_file() else None
