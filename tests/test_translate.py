"""Translating your own images: native size, names, counts, EXIF, memory, the Python API, `agit info`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import agit
from agit import build_model, preset
from agit.cli import main
from agit.config import METHODS, PRESETS
from agit.data import DataError
from agit.run import README_MARK
from agit.translate import (
    ImageTooLarge,
    check_fits,
    size_multiple,
    translate_folder,
    translate_image,
)


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(preset("ci")).eval()


@pytest.fixture
def blind(model):
    """The ci model with A ≡ 0 (its last conv gives sigmoid(-1e4) = 0): Eq. 1 must return the input."""
    blind = build_model(preset("ci")).eval()
    blind.load_state_dict(model.state_dict())
    for att in blind.attention_nets():
        torch.nn.init.zeros_(att.last_conv.weight)
        torch.nn.init.constant_(att.last_conv.bias, -1e4)
    return blind


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("runs") / "ci-run"
    assert main(["train", "--preset", "ci", "--data", str(tiny_data), "--out", str(run),
                 "--epochs", "1", "--set", "iters_per_epoch=2"]) == 0
    return run


# --------------------------------------------------------------------------- one image


@torch.no_grad()
def returned_sizes(m, height: int, width: int) -> set:
    """The output sizes of the networks that translate (F and A; UNIT as a whole) for a height×width input."""
    x = torch.zeros(1, 3, height, width)
    nets = [m.generator("s2t"), *m.attention_nets()] if hasattr(m, "generator") else [lambda x: m.translate(x).image]
    return {tuple(net(x).shape[-2:]) for net in nets}


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_multiple_of_4_is_what_every_preset_and_method_needs(name):
    for method in METHODS:
        m = build_model(preset(name, method=method)).eval()
        assert size_multiple(m) == 4, method
        assert returned_sizes(m, 12, 20) == {(12, 20)}, method
        assert returned_sizes(m, 14, 22) == {(16, 24)}, method  # a multiple of 2 is not enough


@pytest.mark.parametrize("height, width", [(37, 100), (17, 33), (8, 8), (64, 9), (250, 250), (31, 30)])
def test_outputs_come_back_at_the_input_size(model, height, width):
    x = torch.rand(2, 3, height, width) * 2 - 1
    for size in (None, 16):
        tr = translate_image(model, x, "t2s", size)
        assert tr.image.shape == tr.raw.shape == (2, 3, height, width)
        assert tr.attention.shape == (2, 1, height, width)
        assert -1 <= tr.image.min() and tr.image.max() <= 1 and 0 <= tr.attention.min() and tr.attention.max() <= 1


def test_native_size_is_pixel_aligned(blind):
    x = torch.rand(1, 3, 37, 100) * 2 - 1
    assert torch.equal(translate_image(blind, x).image, x)
    # with --size the networks see a smaller copy, yet where A = 0 the input's own pixels come back
    assert torch.equal(translate_image(blind, x, size=16).image, x)


def test_too_small_and_bad_arguments_say_so(model):
    with pytest.raises(DataError, match=r"7×5 px is too small: the networks need at least 8 px a side"):
        translate_image(model, torch.zeros(1, 3, 5, 7))
    assert translate_image(model, torch.zeros(1, 3, 5, 7), size=8).image.shape[-2:] == (5, 7)
    with pytest.raises(ValueError, match="direction must be one of"):
        translate_image(model, torch.zeros(1, 3, 8, 8), "a2b")


def test_an_image_too_large_for_memory_fails_with_a_size_that_fits(model, monkeypatch):
    monkeypatch.setattr("agit.translate.free_memory", lambda device: 50_000_000)
    with pytest.raises(ImageTooLarge, match=r"4000×3000 px needs about [\d.]+ GiB to translate, 0.0 GiB is free "
                                            r"on cpu; size (\d+) \(shorter side; agit translate --size \1\) fits") as err:
        check_fits(model, 3000, 4000, "s2t", torch.device("cpu"))
    fits = int(str(err.value).split("--size ")[1].split(")")[0])
    assert fits % 4 == 0 and fits > 100
    check_fits(model, fits, fits * 4 // 3, "s2t", torch.device("cpu"))  # the advice holds
    with pytest.raises(ImageTooLarge):
        check_fits(model, fits + 8, (fits + 8) * 4 // 3, "s2t", torch.device("cpu"))


# --------------------------------------------------------------------------- folders


def test_folder_names_never_collide_and_every_entry_is_counted(blind, tmp_path):
    src = tmp_path / "photos"
    inputs = {"photo.jpg": noise(37, 100, 1), "photo.png": noise(17, 33, 2), "sub/deep.png": noise(20, 12, 3)}
    for name, array in inputs.items():
        save(src / name, array)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    (src / "notes.txt").write_text("not an image")

    tally = translate_folder(blind, src, "s2t", tmp_path / "out", grid=True, with_overlay=True)
    assert sorted(p.name for p in tally.translated) == ["photo.jpg", "photo.png"]
    assert tally.skipped == {src / "notes.txt": "not an image",
                             src / "sub": "a folder (--recursive translates the folders inside too)"}
    assert list(tally.failed) == [src / "broken.jpg"] and "cannot read image" in tally.failed[src / "broken.jpg"]
    assert tally.found == 5 == len(list(src.iterdir()))

    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["photo.jpg.png", "photo.png.png"]
    # A ≡ 0: the output is the input (as decoded), pixel for pixel, at its own size
    for name in ("photo.jpg", "photo.png"):
        assert np.array_equal(pixels(out / "images" / f"{name}.png"), pixels(src / name))
        assert np.array_equal(pixels(out / "overlay" / f"{name}.png"), pixels(src / name))
        h, w = pixels(src / name).shape[:2]
        assert pixels(out / "attention" / f"{name}.png").shape == (h, w)
        assert not pixels(out / "attention" / f"{name}.png").any()
        assert pixels(out / "grid" / f"{name}.png").shape == (h + 4, 3 * w + 8, 3)

    tally = translate_folder(blind, src, "s2t", tmp_path / "rec", recursive=True)
    assert len(tally.translated) == 3 and tally.found == 5 and not any("folder" in w for w in tally.skipped.values())
    assert np.array_equal(pixels(tmp_path / "rec" / "images" / "sub" / "deep.png.png"), inputs["sub/deep.png"])
    for inside in (src, src / "sub", src / "new"):  # outputs among the inputs: refused before anything is written
        with pytest.raises(DataError, match=f"--out {inside} is within --input {src}: .* choose an --out outside it"):
            translate_folder(blind, src, "s2t", inside, recursive=True)
    assert not (src / "new").exists() and not (src / "images").exists()


def test_exif_orientation_is_applied_before_translating(blind, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 24 tall; viewed rotated 90° clockwise: 24 wide, 40 tall
    save(tmp_path / "in" / "phone.jpg", noise(24, 40), exif=exif)
    translate_folder(blind, tmp_path / "in", "s2t", tmp_path / "out")
    assert pixels(tmp_path / "out" / "images" / "phone.jpg.png").shape == (40, 24, 3)
    assert agit.Translator(blind).translate(tmp_path / "in" / "phone.jpg").image.size == (24, 40)


def test_cli_translate_counts_and_exit_status(ci_run, tmp_path, capsys):
    save(tmp_path / "in" / "a.png", noise(30, 45))
    save(tmp_path / "in" / "a.jpg", noise(30, 45))
    assert main(["translate", "--run", str(ci_run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                 "--size", "16", "--grid"]) == 0
    out = capsys.readouterr().out
    assert "translated 2 of 2 entries" in out and "shorter side 16 px" in out
    assert pixels(tmp_path / "o" / "images" / "a.jpg.png").shape == (30, 45, 3)
    assert main(["translate", "--run", str(ci_run), "--input", str(tmp_path / "in" / "a.png"),
                 "--out", str(tmp_path / "again"), "--size", "16"]) == 0  # one file; the same bytes again
    assert (tmp_path / "again" / "images" / "a.png.png").read_bytes() == (tmp_path / "o" / "images" / "a.png.png").read_bytes()
    (tmp_path / "in" / "b.png").write_bytes(b"")
    assert main(["translate", "--run", str(ci_run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 1
    out = capsys.readouterr().out
    assert "translated 2 of 3 entries" in out and "failed 1:" in out and "b.png: cannot read image" in out
    assert main(["translate", "--run", str(ci_run), "--input", str(tmp_path / "nope"), "--out", "o"]) == 2
    assert f"no such file or folder: {tmp_path / 'nope'}" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Python API


def test_api_takes_a_path_pil_or_tensor_and_returns_the_same_kind(ci_run, tmp_path):
    m = agit.load(ci_run, device="cpu")
    assert isinstance(m, agit.Translator) and not m.training and not m.model.training
    assert m.device == torch.device("cpu") and m.cfg.preset == "ci"
    path = save(tmp_path / "x.png", noise(33, 17))
    image = Image.open(path)

    by_path, by_pil = m.translate(path), m.translate(image, direction="s2t")
    assert by_pil.image.size == by_pil.attention.size == (17, 33)
    assert by_pil.image.mode == "RGB" and by_pil.attention.mode == "L"
    assert np.array_equal(np.asarray(by_path.image), np.asarray(by_pil.image))
    assert np.array_equal(np.asarray(m.translate(str(path)).attention), np.asarray(by_pil.attention))

    u8 = torch.from_numpy(pixels(path)).permute(2, 0, 1)
    out, att = m.translate(u8)
    assert out.dtype == att.dtype == torch.uint8 and out.shape == (3, 33, 17) and att.shape == (1, 33, 17)
    assert np.array_equal(out.permute(1, 2, 0).numpy(), np.asarray(by_pil.image))  # PIL and tensor agree
    out, att = m.translate(torch.stack([u8, u8.flip(-1)]) / 255.0, "t2s")
    assert out.dtype == att.dtype == torch.float32 and out.shape == (2, 3, 33, 17) and att.shape == (2, 1, 33, 17)
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(m(u8.float() / 255).image, m.translate(u8.float() / 255).image)  # forward = translate

    with pytest.raises(ValueError, match=r"expected in \[0, 1\].*got values in \[-1"):
        m.translate(u8.float() / 127.5 - 1)
    with pytest.raises(ValueError, match=r"3×H×W or N×3×H×W, got shape \(1, 33, 17\)"):
        m.translate(u8[:1])
    with pytest.raises(TypeError, match="a path, a PIL image or a tensor, not ndarray"):
        m.translate(pixels(path))


def test_api_round_trips_the_input_where_attention_is_zero(blind, tmp_path):
    m = agit.Translator(blind)
    path = save(tmp_path / "x.png", noise(37, 100))
    assert np.array_equal(np.asarray(m.translate(path).image), pixels(path))
    u8 = torch.from_numpy(pixels(path)).permute(2, 0, 1)
    assert torch.equal(m.translate(u8).image, u8)
    torch.testing.assert_close(m.translate(u8 / 255.0).image, u8 / 255.0)


# --------------------------------------------------------------------------- agit info


def test_info_and_readme_of_a_ci_run(ci_run, tiny_data, capsys):
    readme = (ci_run / "README.md").read_text()
    assert main(["info", str(ci_run)]) == 0
    info = capsys.readouterr().out
    assert readme.startswith(README_MARK) and info.strip() == readme.removeprefix(README_MARK).strip()
    for text in ("# Run `ci-run`", "AGGAN (attention-guided, Mejjati et al. 2018), variant `ours`",
                 "`ci`; changed: `epochs=1`, `iters_per_epoch=2`",
                 f"`{tiny_data}`: trainA 8, trainB 8, testA 6, testB 6 images",
                 "finished (1 of 1 epochs done); planned 1 epochs × 2 iterations, batch 1",
                 "stage 2 from epoch 2 (after the last: resume with more --epochs)",
                 "| seed | 0 |", f"agit {agit.__version__}, commit", "Not evaluated yet",
                 "Files: `config.json` (every setting), `log.jsonl` (losses per iteration, attention per epoch), "
                 "`samples/` (input | attention | output per epoch), `checkpoints/latest.pt`."):
        assert text in info, text
    assert json.loads((ci_run / "provenance.json").read_text())["agit"] == agit.__version__

    assert main(["evaluate", "--run", str(ci_run), "--kid", "none"]) == 0
    capsys.readouterr()
    assert main(["info", str(ci_run)]) == 0
    info = capsys.readouterr().out
    assert "| `bg_psnr` |" in info and "Not evaluated yet" not in info
    assert main(["info", str(tiny_data)]) == 2
    assert "is not a run folder: it has no config.json" in capsys.readouterr().err
