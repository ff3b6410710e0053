import json

import numpy as np
import pytest
from PIL import Image

from agit.data import DataError, DomainFolder
from agit.synthetic import make_synthetic

FOLDERS = ["trainA", "trainB", "testA", "testB"]
SMALL = dict(size=32, n_train=40, n_test=8)


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def load(root, folder):
    """Images (n×H×W×3 float) and masks (n×H×W bool) of one folder."""
    names = sorted(p.name for p in (root / folder).iterdir())
    images = np.stack([np.asarray(Image.open(root / folder / n), np.float64) for n in names])
    masks = np.stack([np.asarray(Image.open(root / f"{folder}_mask" / n)) > 127 for n in names])
    return images, masks


def green_backgrounds(root, folder):
    """Per image: is the background (outside the mask) green rather than sandy?"""
    images, masks = load(root, folder)
    return np.array([im[~m][:, 1].mean() > im[~m][:, 0].mean() for im, m in zip(images, masks)])


@pytest.fixture(scope="module")
def distinct(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("d"), **SMALL)


def test_deterministic(tmp_path, distinct):
    reference = files(distinct)
    assert files(make_synthetic(tmp_path / "again", **SMALL)) == reference
    other = files(make_synthetic(tmp_path / "other", **SMALL, seed=1))
    images = [k for k in reference if k.suffix == ".png" and "mask" not in str(k)]
    assert all(other[k] != reference[k] for k in images)


def test_layout_and_binary_masks(distinct):
    expected = set(FOLDERS) | {f"{f}_mask" for f in FOLDERS} | {"meta.json"}
    assert {p.name for p in distinct.iterdir()} == expected
    for folder in FOLDERS:
        names = sorted(p.name for p in (distinct / folder).iterdir())
        assert names == sorted(p.name for p in (distinct / f"{folder}_mask").iterdir())
        assert len(names) == (40 if folder.startswith("train") else 8)
        image = Image.open(distinct / folder / names[0])
        mask = Image.open(distinct / f"{folder}_mask" / names[0])
        assert image.mode == "RGB" and image.size == (32, 32) and mask.mode == "L"
        assert set(np.unique(load(distinct, folder)[1] * 255)) <= {0, 255}
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_empty_fraction_and_meta(distinct):
    meta = json.loads((distinct / "meta.json").read_text())
    assert meta["params"]["empty_fraction"] == 0.15 and meta["params"]["background"] == "distinct"
    for folder, n in [("trainA", 40), ("testB", 8)]:
        names = sorted(p.name for p in (distinct / folder).iterdir())
        empty = [name for name, m in zip(names, load(distinct, folder)[1]) if not m.any()]
        assert empty == meta["animal_free"][folder]
        assert len(empty) == round(0.15 * n)


def test_masks_cover_the_animal(distinct):
    images, masks = load(distinct, "trainA")
    horse, meadow = images[masks].mean(0), images[~masks].mean(0)
    assert horse[0] > horse[1] + 30 and meadow[1] > meadow[0] + 30  # chestnut on green
    images, masks = load(distinct, "trainB")
    zebra, savanna = images[masks], images[~masks]
    # Stripes: neutral, and dark and bright in good measure (even blurred at 32 px); sand: warm.
    assert abs(zebra[:, 0] - zebra[:, 2]).mean() < 15 < (savanna[:, 0] - savanna[:, 2]).mean()
    assert (zebra.mean(1) < 80).mean() > 0.15 and (zebra.mean(1) > 170).mean() > 0.15
    assert zebra.mean(1).std() > 1.5 * savanna.mean(1).std()


def test_backgrounds_distinct_shared_and_overlap(tmp_path, distinct):
    assert green_backgrounds(distinct, "trainA").all() and not green_backgrounds(distinct, "trainB").any()
    shared = make_synthetic(tmp_path, "shared", background="shared", **SMALL)
    for folder in ["trainA", "trainB"]:
        assert 0.25 < green_backgrounds(shared, folder).mean() < 0.75
    mixed = make_synthetic(tmp_path, "mixed", overlap=0.2, **SMALL)
    swapped = json.loads((mixed / "meta.json").read_text())["other_background"]["trainA"]
    assert 0.05 < len(swapped) / 40 < 0.4
    names = sorted(p.name for p in (mixed / "trainA").iterdir())
    assert [n for n, g in zip(names, green_backgrounds(mixed, "trainA")) if not g] == swapped


def test_reuse_and_refusal(tmp_path):
    root = make_synthetic(tmp_path, **SMALL)
    stamp = (root / "trainA" / "0000.png").stat().st_mtime_ns
    assert make_synthetic(tmp_path, **SMALL) == root
    assert (root / "trainA" / "0000.png").stat().st_mtime_ns == stamp  # same arguments: reused
    make_synthetic(tmp_path, **{**SMALL, "n_test": 4})
    assert len(list((root / "testA").iterdir())) == 4  # other arguments: regenerated
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a synthetic dataset"):
        make_synthetic(tmp_path, "mine", **SMALL)


def test_loads_as_domain_folder_with_masks(distinct):
    ds = DomainFolder(distinct / "trainB", size=32, mask_folder=distinct / "trainB_mask")
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
