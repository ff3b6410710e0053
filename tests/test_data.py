import http.server
import io
import multiprocessing
import re
import socket
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agit.data import (
    DataError,
    DomainFolder,
    download,
    import_folders,
    list_images,
    load_size_for,
    pair_indices,
    read_rgb,
)
from agit.cli import main

from helpers import hold_lock

FORK = multiprocessing.get_context("fork")


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- folders


def test_list_images_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"no such folder: {tmp_path / 'nope'}")):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=re.escape(f"no images in {tmp_path / 'empty'} (looked for .png .jpg")):
        list_images(tmp_path / "empty")


def test_list_images_sorted_case_insensitive(tmp_path):
    for name in ["b.PNG", "a.jpg"]:
        save(tmp_path / name, noise(4, 4))
    (tmp_path / "c.txt").write_text("")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]


def test_load_size_for():
    assert load_size_for(256) == 286 and load_size_for(64) == 72


# --------------------------------------------------------------------------- dataset


@pytest.mark.parametrize(
    "shape, mode",
    [((20, 30), None), ((5, 7), None), ((16, 16), "L"), ((16, 16), "P"), ((16, 16), "RGBA"), ((16, 16), "CMYK")],
)
@pytest.mark.parametrize("augment", [False, True])
def test_any_image_becomes_rgb_in_range(tmp_path, shape, mode, augment):
    save(tmp_path / ("x.jpg" if mode == "CMYK" else "x.png"), noise(*shape), mode)
    item = DomainFolder(tmp_path, size=8, augment=augment)[0]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert "mask" not in item and item["index"] == 0


def test_16_bit_grey_is_rescaled_not_clipped(tmp_path):
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "x.png")
    assert read_rgb(tmp_path / "x.png").float().mean().item() == pytest.approx(127.5, abs=1)


def save_with_orientation(path: Path, array: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag
    Image.fromarray(array).save(path, exif=exif)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    """A phone's portrait photo: stored 16 wide, 8 tall (left half red, right half blue), tagged
    "rotate 90° clockwise to view" (6). Read upright, it is 8 wide, 16 tall, red on top."""
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8, 0] = stored[:, 8:, 2] = 255
    x = read_rgb(save_with_orientation(tmp_path / f"p{suffix}", stored, 6)).float()
    assert x.shape == (3, 16, 8)
    top, bottom = x[:, :6].mean((1, 2)), x[:, 10:].mean((1, 2))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
    # training data goes through the same decoding
    assert DomainFolder(tmp_path, size=8)[0]["image"].shape == (3, 8, 8)
    plain = read_rgb(save_with_orientation(tmp_path / f"q{suffix}", stored, 1))
    assert plain.shape == (3, 8, 16)


def test_augmented_mask_stays_on_its_object(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    image[5:20, 22:37] = (255, 0, 0)  # a red square off-centre, so flips and crops move it
    mask[5:20, 22:37] = 255
    save(tmp_path / "A" / "x.png", image)
    save(tmp_path / "A_mask" / "x.png", mask)
    ds = DomainFolder(tmp_path / "A", size=32, load_size=48, augment=True, mask_folder=tmp_path / "A_mask")
    for seed in range(8):
        item = ds[(0, seed)]
        inside = item["mask"][0] > 0.5
        red = item["image"][0] > 0.5
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert inside.sum() > 20
        # Agreement everywhere but the one-pixel rim that interpolation blurs.
        assert (inside == red).float().mean() > 0.9


def test_mask_only_where_one_exists(tmp_path):
    save(tmp_path / "A" / "a.jpg", noise(8, 8))
    save(tmp_path / "A" / "b.jpg", noise(8, 8))
    save(tmp_path / "A_mask" / "a.png", np.full((8, 8), 255, np.uint8))  # lossless mask of a jpg
    ds = DomainFolder(tmp_path / "A", size=4, mask_folder=tmp_path / "A_mask")
    assert ds[0]["mask"].shape == (1, 4, 4) and ds[0]["mask"].min() == 1
    assert "mask" not in ds[1]
    assert "mask" not in DomainFolder(tmp_path / "A", size=4, mask_folder=tmp_path / "none")[0]


def test_same_key_same_item_other_seed_differs(tmp_path):
    save(tmp_path / "x.png", noise(30, 30))
    ds = DomainFolder(tmp_path, size=16, augment=True)
    assert torch.equal(ds[(0, 3)]["image"], ds[(0, 3)]["image"])
    assert torch.equal(ds[0]["image"], ds[(0, 0)]["image"])  # a plain key seeds with the index
    assert any(not torch.equal(ds[(0, 3)]["image"], ds[(0, s)]["image"]) for s in range(4, 8))
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    ds[(0, 5)]
    assert torch.equal(torch.rand(1), before)  # global RNG untouched


def test_corrupt_image_is_skipped_with_one_warning(tmp_path):
    save(tmp_path / "a.png", noise(8, 8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    save(tmp_path / "c.png", noise(8, 8, seed=1))
    ds = DomainFolder(tmp_path, size=8)
    with pytest.warns(UserWarning, match=re.escape(f"skipping corrupt image {tmp_path / 'b.png'}")):
        item = ds[1]
    assert item["index"] == 2 and ds.skipped == {1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds[1]["index"] == 2  # no second warning


def test_all_corrupt_raises(tmp_path):
    (tmp_path / "b.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no readable images"):
        DomainFolder(tmp_path, size=8)[0]


@pytest.mark.parametrize("n_a, n_b", [(5, 3), (3, 5), (4, 4)])
def test_pair_indices_use_every_image_of_both_domains(n_a, n_b):
    n = max(n_a, n_b)
    # the released code's rows (a_{i mod |A|}, b_{i mod |B|}), max(|A|, |B|) of them, every epoch alike
    fixed = pair_indices(n_a, n_b, epoch=0, seed=0, shuffle=False)
    assert fixed == [(i % n_a, i % n_b) for i in range(n)]
    assert fixed == pair_indices(n_a, n_b, epoch=7, seed=1, shuffle=False)
    pairs = pair_indices(n_a, n_b, epoch=2, seed=1, shuffle=True)
    assert len(pairs) == n and pairs == pair_indices(n_a, n_b, epoch=2, seed=1, shuffle=True)
    for side, size in ((0, n_a), (1, n_b)):
        seen = sorted(p[side] for p in pairs)
        assert set(seen) == set(range(size))  # nobody left out
        assert max(map(seen.count, set(seen))) - min(map(seen.count, set(seen))) <= 1  # evenly
    assert pairs != pair_indices(n_a, n_b, epoch=3, seed=1, shuffle=True)
    assert pairs != pair_indices(n_a, n_b, epoch=2, seed=2, shuffle=True)


def test_horse2zebra_epoch_is_the_larger_domain():
    from agit import preset

    assert preset("official").iterations_per_epoch(1067, 1334) == 1334  # horse2zebra's counts
    assert preset("official").iterations_per_epoch(995, 1019) == 1019  # apple2orange's


# --------------------------------------------------------------------------- import


def make_class(folder: Path, n: int) -> Path:
    for i in range(n):
        save(folder / f"{i:02d}.jpg", noise(6, 6, seed=i))
    return folder


def test_import_folders_reproducible_split(tmp_path):
    a, b = make_class(tmp_path / "lion", 10), make_class(tmp_path / "tiger", 3)
    out = import_folders(a, b, "lion2tiger", root=tmp_path / "data", test_fraction=0.2, seed=4)
    again = import_folders(a, b, "copy", root=tmp_path / "data", test_fraction=0.2, seed=4)
    names = {f: sorted(p.name for p in (out / f).iterdir()) for f in ["trainA", "trainB", "testA", "testB"]}
    assert names == {f: sorted(p.name for p in (again / f).iterdir()) for f in names}
    assert len(names["testA"]) == 2 and len(names["trainA"]) == 8
    assert len(names["testB"]) == 1 and len(names["trainB"]) == 2  # at least one test image
    assert len(list(a.iterdir())) == 10  # sources untouched


def test_import_folders_refuses_overwrite(tmp_path):
    a, b = make_class(tmp_path / "lion", 3), make_class(tmp_path / "tiger", 3)
    (tmp_path / "data" / "l2t").mkdir(parents=True)
    (tmp_path / "data" / "l2t" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        import_folders(a, b, "l2t", root=tmp_path / "data")
    assert (tmp_path / "data" / "l2t" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["l2t"]  # no leftovers


# --------------------------------------------------------------------------- download


def dataset_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for folder in ["trainA", "trainB", "testA", "testB"]:
            png = io.BytesIO()
            Image.fromarray(noise(4, 4)).save(png, format="PNG")
            zf.writestr(f"{name}/{folder}/0.png", png.getvalue())
    return buffer.getvalue()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes) with single-range support, logging each Range header."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        self.ranges.append(header)
        start = int(header.removeprefix("bytes=").split("-")[0]) if header else 0
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.ranges = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield RangeHandler, f"http://127.0.0.1:{httpd.server_address[1]}/sets"
    httpd.shutdown()
    httpd.server_close()


def test_download_unpacks_and_cleans_up(tmp_path, server):
    handler, url = server
    handler.files["/sets/horse2zebra.zip"] = dataset_zip("horse2zebra")
    out = download("horse2zebra", root=tmp_path, base_url=url)
    assert out == tmp_path / "horse2zebra"
    assert sorted(p.name for p in out.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert read_rgb(out / "trainA" / "0.png").shape == (3, 4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["horse2zebra"]
    assert download("horse2zebra", root=tmp_path, base_url=url) == out  # present: no request
    assert handler.ranges == [None]


def test_download_resumes_partial_file(tmp_path, server):
    handler, url = server
    body = dataset_zip("apple2orange")
    handler.files["/sets/apple2orange.zip"] = body
    (tmp_path / "apple2orange.zip.part").write_bytes(body[:100])
    download("apple2orange", root=tmp_path, base_url=url)
    assert handler.ranges == ["bytes=100-"]
    assert (tmp_path / "apple2orange" / "testB" / "0.png").is_file()
    assert not (tmp_path / "apple2orange.zip.part").exists()


def test_download_corrupt_zip_keeps_part(tmp_path, server):
    handler, url = server
    handler.files["/sets/horse2zebra.zip"] = b"not a zip at all"
    with pytest.raises(DataError, match="not a valid zip"):
        download("horse2zebra", root=tmp_path, base_url=url)
    assert (tmp_path / "horse2zebra.zip.part").exists() and not (tmp_path / "horse2zebra").exists()


def test_download_offline_says_what_to_do(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AGIT_DATASET_URL", f"http://127.0.0.1:{port}/x")
    with pytest.raises(DataError) as err:
        download("horse2zebra", root=tmp_path, timeout=2)
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/x/horse2zebra.zip" in message
    assert str(tmp_path / "horse2zebra" / "trainA") in message and "\n" not in message


def test_download_unknown_name_lists_known():
    with pytest.raises(DataError, match="horse2zebra, apple2orange, summer2winter_yosemite"):
        download("cats2dogs")


@pytest.mark.parametrize("augment", [False, True])
def test_cached_copy_serves_identical_items_and_follows_the_files(tmp_path, augment):
    for i in range(3):
        save(tmp_path / "A" / f"{i}.png", noise(40 + 8 * i, 50, seed=i))
    plain = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=augment)
    cached = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=augment, cache=True)
    side = 20 if augment else 16
    assert (tmp_path / ".agit_cache" / f"A_{side}px_bicubic.pt").is_file()
    again = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=augment, cache=True)  # from the file
    for key in (0, 2, (1, 7), (2, 11)):
        assert torch.equal(plain[key]["image"], cached[key]["image"])
        assert torch.equal(plain[key]["image"], again[key]["image"])
    save(tmp_path / "A" / "1.png", noise(40, 50, seed=99))  # an edited file rebuilds the copy
    edited = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=augment, cache=True)
    assert torch.equal(edited[1]["image"], DomainFolder(tmp_path / "A", 16, 20, augment)[1]["image"])
    assert not torch.equal(edited[1]["image"], cached[1]["image"])


def test_cached_copy_skips_corrupt_files_and_survives_an_unwritable_cache(tmp_path):
    save(tmp_path / "A" / "0.png", noise(16, 16))
    (tmp_path / "A" / "1.png").write_bytes(b"not a png")
    (tmp_path / ".agit_cache").write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning) as caught:
        ds = DomainFolder(tmp_path / "A", size=8, cache=True)
    messages = [str(w.message) for w in caught]
    assert any("1.png" in m and "corrupt" in m for m in messages)
    assert any("cannot write the image cache" in m and "keeping it in memory" in m for m in messages)
    assert torch.equal(ds[1]["image"], ds[0]["image"])  # the corrupt one serves the next readable


# --------------------------------------------------------------------------- the dataset lock (issue 25)


def _cli(argv, output):
    sys.stdout = sys.stderr = open(output, "w", buffering=1)
    sys.exit(main(argv))


def test_making_importing_or_fetching_a_dataset_takes_its_lock(tmp_path, capsys):
    a, b = make_class(tmp_path / "lion", 3), make_class(tmp_path / "tiger", 3)
    root = tmp_path / "data"
    for name, argv in (("d", ["data", "synth", "--root", str(root), "--name", "d", "--size", "32", "--n-train", "4"]),
                       ("d", ["data", "import", "--a", str(a), "--b", str(b), "--root", str(root), "--name", "d"]),
                       ("horse2zebra", ["data", "download", "horse2zebra", "--root", str(root)])):
        holder, release = hold_lock(root / f".{name}.lock")
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"agit: error: dataset {root / name} is in use by pid {holder.pid} on {socket.gethostname()}" in err
        release.set()
        holder.join(30)
        assert sorted(p.name for p in root.iterdir()) == []  # nothing made, no partial folder


def test_two_synths_at_once_the_second_is_refused_and_the_first_is_whole(tmp_path, capsys):
    """Item 3: the second was 'done' with 249 of 300 masks; now it is refused while the first works."""
    argv = ["data", "synth", "--root", str(tmp_path), "--name", "s", "--size", "32", "--n-train", "150",
            "--n-test", "4"]
    first = FORK.Process(target=_cli, args=(argv, str(tmp_path / "first.txt")))
    first.start()
    end = time.time() + 60
    while not (tmp_path / ".s.partial").exists():
        assert first.is_alive() and time.time() < end
        time.sleep(0.002)
    assert main(argv) == 2
    assert f"dataset {tmp_path / 's'} is in use by pid {first.pid}" in capsys.readouterr().err
    first.join(60)
    assert first.exitcode == 0, (tmp_path / "first.txt").read_text()
    assert {f: len(list((tmp_path / "s" / f).iterdir())) for f in ("trainA", "trainB_mask", "testB")} == {
        "trainA": 150, "trainB_mask": 150, "testB": 4}
    assert main(argv) == 0  # the same settings: reused


def test_a_dataset_is_replaced_only_with_overwrite_and_the_users_files_stay(tmp_path, capsys):
    """Item 4: other settings under the same name are refused; --overwrite replaces agit's files only."""
    a, b = make_class(tmp_path / "lion", 4), make_class(tmp_path / "tiger", 4)
    argv = ["data", "import", "--a", str(a), "--b", str(b), "--root", str(tmp_path / "data"), "--name", "l2t"]
    assert main(argv) == 0
    target = tmp_path / "data" / "l2t"
    (target / "NOTES.txt").write_text("mine")
    (target / ".agit_cache").mkdir()  # agit's cache of the old images: goes with them
    assert main([*argv, "--seed", "3"]) == 2
    assert "already exists and is not empty; remove it, choose another name, or replace it with --overwrite" in \
        capsys.readouterr().err
    assert main([*argv, "--seed", "3", "--overwrite"]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["NOTES.txt", "testA", "testB", "trainA", "trainB"]
    assert (target / "NOTES.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["l2t"]
    # a replacement interrupted between its two renames leaves the old dataset aside, never deleted
    (tmp_path / "data" / ".l2t.replaced").mkdir()
    assert main([*argv, "--overwrite"]) == 2
    assert f"{tmp_path / 'data' / '.l2t.replaced'} holds the dataset {target} had before an interrupted " \
           f"replacement" in capsys.readouterr().err


def test_tf1_resize_bilinear_against_hand_computed_values():
    from agit.data import tf1_resize_bilinear

    row = torch.tensor([[[0.0, 10.0, 20.0, 30.0]]])
    # samples at j * 4/3 = 0, 1.333, 2.667: floats, not rounded; no half-pixel shift, no averaging
    assert tf1_resize_bilinear(row, 1, 3).flatten().tolist() == pytest.approx([0, 40 / 3, 80 / 3], abs=1e-5)
    # up: j * 1/2 = 0, 0.5, 1, 1.5 -> 0, 5, 10, 10 (the last clamps); half-pixel centres give 0, 2.5, 7.5, 10
    assert tf1_resize_bilinear(torch.tensor([[[0.0, 10.0]]]), 1, 4).flatten().tolist() == [0, 5, 10, 10]
    square = torch.tensor([[[0.0, 10.0], [20.0, 30.0]]])
    assert tf1_resize_bilinear(square, 4, 4)[0, 1, 1].item() == 15  # (0.5, 0.5): the mean of the four
    img = torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8)
    assert torch.equal(tf1_resize_bilinear(img, 9, 7), img.float())  # same size: unchanged


def test_tf1_bilinear_in_training_and_test_items(tmp_path):
    from agit.data import resize_square, test_filter

    save(tmp_path / "A" / "0.png", noise(40, 50, seed=3))
    pixels = read_rgb(tmp_path / "A" / "0.png")
    test = DomainFolder(tmp_path / "A", size=16, resize_filter=test_filter("tf1_bilinear"))
    assert torch.equal(test[0]["image"], resize_square(pixels, 16, "tf1_bilinear") / 127.5 - 1)
    assert test_filter("bilinear") == "bicubic"  # other presets' test images as before
    train = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=True, resize_filter="tf1_bilinear")
    cached = DomainFolder(tmp_path / "A", size=16, load_size=20, augment=True, resize_filter="tf1_bilinear",
                          cache=True)
    assert torch.equal(train[(0, 5)]["image"], cached[(0, 5)]["image"])
    levels = (train[(0, 5)]["image"] + 1) * 127.5
    assert (levels - levels.round()).abs().max() > 0.1  # the cache keeps TF's floats, not uint8 levels
