import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from agit.data import DataError, DomainFolder
from agit.synthetic import STYLES, make_synthetic, render_image

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
    expected = (set(FOLDERS) | {f"{f}_mask" for f in FOLDERS} | {"meta.json"}
                | {"testA_counterfactual", "testB_counterfactual"})
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


def interior(masks):
    """The masks without their antialiased rim (the mask keeps every pixel the animal touches)."""
    return np.stack([ndimage.binary_erosion(m) for m in masks])


def test_masks_cover_the_animal(distinct):
    images, masks = load(distinct, "trainA")
    horse, meadow = images[interior(masks)].mean(0), images[~masks].mean(0)
    assert horse[0] > horse[1] + 30 and meadow[1] > meadow[0] + 30  # chestnut on green
    images, masks = load(distinct, "trainB")
    zebra, savanna = images[interior(masks)], images[~masks]
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
    (root / "NOTES.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds a synthetic dataset made with n_test 8 \(asked 4\); replace it with "
                                        r"--overwrite \(files of yours in it are kept\)"):
        make_synthetic(tmp_path, **{**SMALL, "n_test": 4})  # other arguments: refused, the dataset as it was
    assert (root / "trainA" / "0000.png").stat().st_mtime_ns == stamp and len(list((root / "testA").iterdir())) == 8
    make_synthetic(tmp_path, **{**SMALL, "n_test": 4}, overwrite=True)
    assert len(list((root / "testA").iterdir())) == 4  # replaced, the user's file kept
    assert (root / "NOTES.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]  # no lock, staging or old copy left
    meta = json.loads((root / "meta.json").read_text())
    meta["params"]["version"] -= 1
    (root / "meta.json").write_text(json.dumps(meta))
    make_synthetic(tmp_path, **{**SMALL, "n_test": 4})  # made by an older agit: remade without asking
    assert json.loads((root / "meta.json").read_text())["params"]["version"] == meta["params"]["version"] + 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a synthetic dataset"):
        make_synthetic(tmp_path, "mine", **SMALL)


def test_loads_as_domain_folder_with_masks(distinct):
    ds = DomainFolder(distinct / "trainB", size=32, mask_folder=distinct / "trainB_mask")
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)


@pytest.mark.parametrize("style", list(STYLES))
def test_counterfactual_is_the_same_scene_with_the_other_coat(tmp_path, style):
    root = make_synthetic(tmp_path, style=style, **SMALL)
    params = json.loads((root / "meta.json").read_text())["params"]
    free = json.loads((root / "meta.json").read_text())["animal_free"]
    for folder, domain in (("testA", "A"), ("testB", "B")):
        images, masks = load(root, folder)
        counterfactuals = np.stack([np.asarray(Image.open(p), np.float64)
                                    for p in sorted((root / f"{folder}_counterfactual").iterdir())])
        for k, (image, mask, cf) in enumerate(zip(images, masks, counterfactuals)):
            _, cf_mask = render_image(params, "test", domain, k, "counterfactual")
            assert np.array_equal(cf_mask > 127, mask)  # same silhouettes, poses, places
            assert np.array_equal(image[~mask], cf[~mask])  # the very same background
            if f"{k:04d}.png" in free[folder]:
                assert np.array_equal(image, cf)  # object-free: its own counterfactual
            else:
                assert np.abs(image[mask] - cf[mask]).mean() > 20  # the object did change


def test_sanity_renderings_keep_what_they_should(tmp_path):
    root = make_synthetic(tmp_path, **SMALL)
    params = json.loads((root / "meta.json").read_text())["params"]
    k = next(i for i in range(8) if f"{i:04d}.png" not in json.loads((root / "meta.json").read_text())["animal_free"]["testA"])
    image, mask = (x.astype(float) for x in render_image(params, "test", "A", k))
    cf, _ = (x.astype(float) for x in render_image(params, "test", "A", k, "counterfactual"))
    again, again_mask = (x.astype(float) for x in render_image(params, "test", "A", k, "counterfactual_again"))
    repaint, repaint_mask = (x.astype(float) for x in render_image(params, "test", "A", k, "repaint"))
    inside, outside = mask > 127, mask < 1
    assert np.array_equal(again_mask, mask) and np.array_equal(repaint_mask, mask)
    assert np.array_equal(again[outside], cf[outside]) and not np.array_equal(again[inside], cf[inside])
    # the object's own pixels are kept (but where thin parts blend with the other background)
    core = ndimage.binary_erosion(inside)
    assert np.abs(repaint[core] - image[core]).mean() < 8 < 20 < np.abs(repaint[outside] - image[outside]).mean()


@pytest.mark.parametrize("style", ["apple2orange", "star2leopard"])
def test_other_styles_have_objects_of_their_own(tmp_path, style):
    root = make_synthetic(tmp_path, style=style, **SMALL)
    assert files(make_synthetic(tmp_path / "again", style=style, **SMALL)) == files(root)
    _, masks = load(root, "trainA")
    has = masks.reshape(len(masks), -1).any(1)
    assert has.mean() == pytest.approx(1 - 0.15, abs=0.03)
    assert 0.01 < masks[has].mean() < 0.3  # smaller than the horses, several per image in places
