"""Issue 25's second hostile pass, the items of this branch: settings checked before a run folder
is touched (7), `--out` within `--input` (5), one bad entry among many (6), unreadable and corrupt
checkpoints (10), and exit status 75 for a stop signal wherever it lands (7)."""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch

from agit import preset
from agit.cli import EXIT_INTERRUPTED, main
from agit.config import Config, validate
from agit.data import DomainFolder
from agit.nets import Discriminator, smallest_side
from agit.run import Run
from agit.translate import ImageTooLarge, cgroup_memory_left, translate_folder, translate_image

pytestmark = pytest.mark.filterwarnings("ignore:switch_epoch 1 is not before the last epoch")


def error_line(err: str) -> str:
    """The one `agit: …` line of a command's stderr, checked to be the only one and no traceback."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("agit:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def train_argv(data, run, *more):
    return ["train", "--preset", "ci", "--data", str(data), "--out", str(run), *more]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A 2-epoch ci run: latest.pt, epoch_0001.pt, epoch_0002.pt. Tests change copies of it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(train_argv(tiny_data, run)) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    return Run(shutil.copytree(trained, tmp_path / "run"))


def bomb_png(path: Path, side: int = 20000) -> int:
    """A PNG of a few bytes whose header claims side×side pixels (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return len(png)


# -- 7. every setting checked before anything is written -------------------------------------------


@pytest.mark.parametrize("setting, says", [
    ("batch_size=0", "batch_size must be >= 1, got 0"),
    ("workers=-1", "workers must be >= 0, got -1"),
    ("seed=-1", "seed must be in [0, 16777215], got -1"),
    ("pool_size=-1", "pool_size must be >= 0, got -1"),
    ("ngf=0", "ngf must be >= 1, got 0"),
    ("size=4", "size must be >= 8 for these networks (F and A halve it twice; D has d_layers 2, d_pad 2), got 4"),
    ("d_pad=0", "size must be >= 36 for these networks (F and A halve it twice; D has d_layers 2, d_pad 0), got 32"),
    ("load_size=20", "load_size must be none or >= size 32 (the crop is taken from it), got 20"),
    ("lr=1e30", "lr must be in (0, 1], got 1e+30"),
    ("iters_per_epoch=-5", "iters_per_epoch must be none (one pass over the data) or >= 1, got -5"),
    ("tau=2", "tau must be in (0, 1), got 2.0"),
    ("lambda_cyc=-1", "lambda_cyc must be >= 0, got -1.0"),
    ("checkpoint_every=0", "checkpoint_every must be >= 1, got 0"),
    ("extra=foo", "extra must be a dict, got 'foo'"),
])
def test_a_bad_setting_is_one_line_and_the_run_folder_is_not_touched(tiny_data, tmp_path, capsys, setting, says):
    assert main(train_argv(tiny_data, tmp_path / "run", "--set", setting)) == 2
    assert error_line(capsys.readouterr().err) == f"agit: error: {says}"
    assert not (tmp_path / "run").exists()  # so the corrected command needs no --overwrite


def test_a_bad_setting_on_resume_leaves_the_run_as_it_was(run, capsys):
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--set", "workers=-1"]) == 2
    assert error_line(capsys.readouterr().err) == "agit: error: workers must be >= 0, got -1"
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


def test_validate_checks_types_ranges_and_relations_in_one_line():
    with pytest.raises(ValueError, match=r"^size must be an integer, got '64'; shuffle must be true or false, got 1; "
                                         r"lr must be a number, got nan; extra must be a dict, got None$"):
        Config(size="64", lr=float("nan"), shuffle=1, extra=None)
    with pytest.raises(ValueError, match=r"^tau must be in \(0, 1\), got 1.0; batch_size must be >= 1, got 0$"):
        preset("ci", batch_size=0, tau=1.0)
    with pytest.raises(ValueError, match=r"^ngf must be an integer, got True$"):  # a bool is not a number
        preset("ci", ngf=True)
    with pytest.raises(ValueError, match=r"extra must be a dict with keys among agit_run, profile, forked_from"):
        preset("ci", extra={"notes": "mine"})
    with pytest.raises(ValueError, match="method 'unit' needs update_order='joint'"):
        Config(method="unit")
    cfg = preset("ci", extra={"agit_run": "ours", "profile": "ci", "forked_from": None})
    validate(cfg)  # what agit writes itself passes; so does every preset with every method
    assert [preset(name, method=m) for name in ("official", "paper", "quick", "ci")
            for m in ("aggan", "cyclegan", "discogan", "dualgan", "ra", "unit")]


@pytest.mark.parametrize("d_pad, d_layers, norm_first", [(0, 3, True), (0, 2, False), (1, 3, True), (2, 3, True),
                                                         (0, 0, True), (2, 4, False)])
def test_the_smallest_size_is_the_least_the_discriminator_takes(d_pad, d_layers, norm_first):
    cfg = preset("ci", d_pad=d_pad, d_layers=d_layers, d_norm_first=norm_first, size=512)
    least, d = smallest_side(cfg), Discriminator(cfg)
    d(torch.zeros(1, 3, least, least))  # runs (with instance norm, as in stage 1)
    if least > 8:
        with pytest.raises((RuntimeError, ValueError)):
            d(torch.zeros(1, 3, least - 4, least - 4))
    assert (d_pad, d_layers) != (0, 3) or least == 72  # the PatchGAN's 70 px, to a multiple of 4


def test_kid_subsets_are_checked_before_evaluating(run, capsys):
    for flags, says in ((["--kid-subsets", "0"], "got 0 and 50"), (["--kid-subset-size", "1"], "got 10 and 1")):
        assert main(["evaluate", "--run", str(run), "--kid", "none", *flags]) == 2
        assert error_line(capsys.readouterr().err) == \
            f"agit: error: KID needs --kid-subsets >= 1 and --kid-subset-size >= 2, {says}"
    assert not run.metrics_file.exists()


# -- 7. stop signals at start-up ---------------------------------------------------------------------


def _handler_installed(pid: int, sig: signal.Signals) -> bool:
    """Whether process `pid` catches `sig` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
    return bool(caught >> (sig - 1) & 1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_a_stop_signal_at_start_up_exits_75_with_one_line(tiny_data, tmp_path, sig):
    """Sent as soon as agit catches it: while it imports torch and builds the model. (Python catches
    SIGINT from its own start; agit installs its handlers together, SIGUSR1 last.)"""
    child = subprocess.Popen([sys.executable, "-m", "agit", *train_argv(tiny_data, tmp_path / "run")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 60
    while not _handler_installed(child.pid, signal.SIGUSR1):
        assert child.poll() is None and time.time() < end
        time.sleep(0.001)
    child.send_signal(sig)
    out, err = child.communicate(timeout=120)
    assert child.returncode == EXIT_INTERRUPTED, (out, err)
    assert error_line(err) == f"agit: interrupted by {sig.name}; run the same command again"
    assert not (tmp_path / "run").exists()


# -- 5, 6. translate: one bad entry among many, --out within --input, memory -----------------------


def test_a_looping_link_and_a_decompression_bomb_cost_one_entry_each(run, tiny_data, tmp_path, capsys):
    src = shutil.copytree(tiny_data / "testA", tmp_path / "in")
    good = len(list(src.iterdir()))
    assert bomb_png(src / "bomb.png") < 80
    os.symlink("loop.png", src / "loop.png")
    assert main(["translate", "--run", str(run), "--input", str(src), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert f"translated {good} of {good + 2} entries" in out
    assert f"{src / 'loop.png'}: a symbolic link that loops" in out
    assert f"{src / 'bomb.png'}: cannot read image {src / 'bomb.png'} (Image size (400000000 pixels) exceeds" in out
    assert len(list((tmp_path / "out" / "images").iterdir())) == good
    assert main(["translate", "--run", str(run), "--input", str(src), "--out", str(src)]) == 2
    assert error_line(capsys.readouterr().err) == (f"agit: error: --out {src} is within --input {src}: the "
                                                   f"translations would land among the images to translate; "
                                                   f"choose an --out outside it")


def test_training_skips_a_bomb_and_a_loop_and_trains_on_the_rest(tiny_data, tmp_path, capsys):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    bomb_png(data / "trainA" / "bomb.png")
    os.symlink("loop.png", data / "trainA" / "loop.png")
    with pytest.warns(UserWarning, match=r"skipping corrupt image .*bomb.png .*decompression bomb"):
        assert main(train_argv(data, tmp_path / "run", "--epochs", "1", "--set", "iters_per_epoch=9")) == 0
    assert "trainA: 9 images; 1 entries skipped, not images (loop.png)" in capsys.readouterr().out
    assert Run(tmp_path / "run").progress() == (1, 0)


def test_ctrl_c_during_translate_prints_the_tally_and_exits_75(run, tiny_data, tmp_path, capsys, monkeypatch):
    import agit.translate

    written = agit.translate._write

    def write_then_ctrl_c(image, path):  # Ctrl-C while the first image is being written
        written(image, path)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(agit.translate, "_write", write_then_ctrl_c)
    n = len(list((tiny_data / "testA").iterdir()))
    assert main(["translate", "--run", str(run), "--input", str(tiny_data / "testA"), "--out", str(tmp_path / "o")]) \
        == EXIT_INTERRUPTED
    said = capsys.readouterr()
    assert f"translated 1 of {n} entries\nnot reached (SIGINT) {n - 1}:" in said.out
    assert error_line(said.err) == f"agit: interrupted by SIGINT after 1 images, {n - 1} not reached; " \
                                   f"run the same command again"
    assert sorted(p.name for p in (tmp_path / "o" / "attention").iterdir()) == ["0000.png.png"]  # the image finished


def test_the_memory_guard_reads_the_cgroup_limit(tmp_path):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    for folder, text in ((v2 / "job", {"memory.max": "3221225472", "memory.current": "1073741824",
                                       "memory.stat": "anon 1\ninactive_file 536870912\n"}),
                         (v2, {"memory.max": "max", "memory.current": "1"}),
                         (v1 / "memory" / "job", {"memory.limit_in_bytes": "9223372036854771712",
                                                  "memory.usage_in_bytes": "1"}),
                         (v1 / "memory", {"memory.limit_in_bytes": "2147483648",
                                          "memory.usage_in_bytes": "1073741824"})):
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in text.items():
            (folder / name).write_text(content)
    (tmp_path / "cgroup2").write_text("0::/job\n")
    (tmp_path / "cgroup1").write_text("4:memory:/job\n0::/\n")
    # 3 GiB limit, 1 GiB used of which 0.5 GiB is reclaimable file cache: 2.5 GiB left
    assert cgroup_memory_left(v2, tmp_path / "cgroup2") == 2.5 * 2**30
    assert cgroup_memory_left(v1, tmp_path / "cgroup1") == 2**30  # the parent's limit binds
    (v2 / "job" / "memory.max").write_text("max\n")
    assert cgroup_memory_left(v2, tmp_path / "cgroup2") is None
    assert cgroup_memory_left(v2, tmp_path / "absent") is None


def test_a_size_too_large_is_refused_before_resizing_or_decoding(run, tmp_path, monkeypatch):
    import agit.translate

    model = run.load_model(device="cpu")
    monkeypatch.setattr(agit.translate, "cgroup_memory_left", lambda: 2**30)  # a 1 GiB cgroup
    resized = []
    monkeypatch.setattr(agit.translate.TF, "resize", lambda *a, **k: resized.append(a) or a[0])
    with pytest.raises(ImageTooLarge, match=r"30000×30000 px needs about [\d.]+ GiB to translate, [01]\.\d GiB"):
        translate_image(model, torch.zeros(1, 3, 32, 32), size=30000)
    assert not resized
    decoded = []
    monkeypatch.setattr(agit.translate, "read_rgb", lambda path: decoded.append(path))
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(run.path.parent / "run" / "samples" / "epoch_0001.png", src / "a.png")
    tally = translate_folder(model, src, "s2t", tmp_path / "out", size=30000)
    assert "30000×" in tally.failed[src / "a.png"] and not decoded and not resized


# -- 7, 10. checkpoints and the image cache ----------------------------------------------------------------


def _flip_tensor_bytes(path: Path):
    """Invert 8 bytes inside the first tensor of a checkpoint (its zip stores tensors uncompressed)."""
    import io
    import zipfile

    data = bytearray(path.read_bytes())
    info = next(i for i in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()
                if "/data/" in i.filename and i.file_size > 1000)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + 16
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_bytes(os.urandom(4000)), "cannot read checkpoint {latest}: truncated or corrupt (Unsupported"),
    (_flip_tensor_bytes, "cannot read checkpoint {latest}: corrupt (its tensors do not match the checksum "
                         "written with them)"),
    (lambda p: p.unlink(), "{latest} is missing"),
], ids=["random bytes", "corrupt tensor", "deleted"])
def test_a_damaged_latest_falls_back_to_the_newest_readable_checkpoint_with_a_line(run, capsys, damage, says):
    damage(run.latest)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert f"{says.format(latest=run.latest)}" in err
    assert f"; resuming from {run.epoch_checkpoint(2)} (epoch 2, iteration 0)" in err
    assert run.progress() == (3, 0)


def test_a_malformed_checkpoint_is_one_line(run, capsys):
    state = run.load_checkpoint()
    state["epoch"] = "2"
    torch.save(state, run.latest)
    argv = ["translate", "--run", str(run), "--input", str(run.path / "samples"), "--out", str(run.path / "t")]
    assert main(argv) == 2
    assert error_line(capsys.readouterr().err) == \
        f"agit: error: {run.latest} is not an agit checkpoint (its epoch is '2')"


def test_a_truncated_or_crafted_image_cache_is_rebuilt_not_loaded(tiny_data, tmp_path):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    built = DomainFolder(data / "trainA", 32, augment=True, cache=True).resized.clone()
    cache = next((data / ".agit_cache").iterdir())
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    for damage in (lambda: cache.write_bytes(cache.read_bytes()[:3000]),
                   lambda: torch.save({"key": Payload()}, cache),
                   lambda: torch.save({"key": [], "images": torch.zeros(2), "unreadable": []}, cache)):
        damage()
        with pytest.warns(UserWarning, match=f"ignoring the image cache {cache}: truncated, crafted or not agit's"):
            again = DomainFolder(data / "trainA", 32, augment=True, cache=True)
        assert torch.equal(again.resized, built)
    assert not marker.exists()
