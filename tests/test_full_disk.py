"""A disk that fills up (issue 25, item 2), on a real one: a small tmpfs, filled just as agit
starts each kind of write. Each time the command stops with one line naming the file, what
was there before is intact, no temporary file is left, and the same command succeeds once
space is freed (a resumed run ending bit-identical to one never interrupted).

Mounting needs root: elsewhere the tests are skipped, saying so; CI runs as root and sets
AGIT_TMPFS_REQUIRED=1 (.ci/run), which makes a failed mount a failure."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agit import files, preset, run as run_module, train
from agit.cli import main
from agit.run import Run
from agit.synthetic import make_synthetic
from agit.train import Trainer

from helpers import assert_same_training, error_line

pytestmark = pytest.mark.filterwarnings("ignore:switch_epoch 1 is not before the last epoch")


@pytest.fixture
def disk(tmp_path):
    """A 16 MiB tmpfs, unmounted after the test."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode:
        why = f"cannot mount a tmpfs here ({(mounted.stderr or 'not root').strip()})"
        if os.environ.get("AGIT_TMPFS_REQUIRED") == "1":
            pytest.fail(f"{why}, and AGIT_TMPFS_REQUIRED=1 says this machine must")
        pytest.skip(f"{why}; CI runs these tests as root")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def fill(disk):
    """Take every free byte of `disk`; returns the file holding them (delete it to free them)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free == 0
    return filler


def fill_at(monkeypatch, module, disk, name):
    """Fill `disk` just before `module` writes a file called `name` (through agit.files, the one path)."""
    write = files.write_atomically

    def filling(target, data):
        if os.path.basename(target) == name and not (disk / "filler").exists():
            fill(disk)
        return write(target, data)

    monkeypatch.setattr(module, "write_atomically", filling)


def snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data):
    """A ci run of 1 epoch (copied onto each disk) and one of 2 epochs, never interrupted."""
    folder = tmp_path_factory.mktemp("runs")
    for epochs in (1, 2):
        Trainer(preset("ci", data=str(tiny_data), epochs=epochs), folder / f"epochs{epochs}").fit(progress=False)
    return folder


def iter_rows(run):
    return [r for r in Run(run).log() if r["kind"] == "iter"]


@pytest.mark.parametrize("module, name", [(run_module, "config.json"), (train, "epoch_0002.png"),
                                          (run_module, "latest.pt"), (run_module, "README.md")],
                         ids=["config", "samples", "checkpoint", "readme"])
def test_a_full_disk_at_each_write_of_a_run_then_resume(disk, runs, capsys, monkeypatch, module, name):
    run = Run(shutil.copytree(runs / "epochs1", disk / "run"))
    before = snapshot(run.path)
    fill_at(monkeypatch, module, disk, name)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    said = error_line(capsys.readouterr().err)
    assert said.startswith("agit: error: no space left on device while writing ") and f"{name}" in said, said
    after = snapshot(run.path)
    log = after.pop(run.log_file.relative_to(run.path))  # the rows of epoch 2 done before the failure are kept
    assert log.startswith(before.pop(run.log_file.relative_to(run.path)))
    if name == "README.md":  # the last write: the run has finished (latest.pt) by then, its README is the old one
        assert after[Path(name)] == before[Path(name)]
    else:  # every file that was there is as it was (new ones may have come), but the config of the resume
        if name != "config.json":
            assert after.pop(Path("config.json")) != before.pop(Path("config.json"))  # epochs 1 -> 2
        assert {k: after.get(k) for k in before} == before, "a file written before the disk filled has changed"
    assert not list(run.path.rglob("*.tmp"))
    monkeypatch.undo()
    (disk / "filler").unlink()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert assert_same_training(Run(runs / "epochs2").load_checkpoint(), run.load_checkpoint())
    assert iter_rows(run) == iter_rows(runs / "epochs2")
    assert "finished (2 of 2 epochs done)" in run.readme_file.read_text()


def test_a_log_row_cut_short_by_a_full_disk_is_dropped_on_resume(disk, runs, capsys):
    run = Run(shutil.copytree(runs / "epochs1", disk / "run"))
    fill(disk)
    row = {"kind": "iter", "epoch": 1, "step": 1, "note": "x" * 300}  # an iteration no checkpoint holds
    with pytest.raises(run_module.RunError) as failed:
        for _ in range(20):  # a page of slack at most: the rows fill it, then one is cut short
            run.append_log(row)
    assert str(failed.value) == (f"no space left on device while writing {run.log_file}; the previous checkpoint "
                                 f"{run.latest} (epoch 1, iteration 0) is intact, and --resume goes on from there "
                                 f"once the disk has room")
    assert not run.log_file.read_bytes().endswith(b"\n")  # a torn last row, as a full disk leaves it
    (disk / "filler").unlink()
    with pytest.warns(UserWarning, match=f"{run.log_file}: dropping its last line, cut short by a write that failed"):
        assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert assert_same_training(Run(runs / "epochs2").load_checkpoint(), run.load_checkpoint())
    assert iter_rows(run) == iter_rows(runs / "epochs2")  # the torn row and those past the checkpoint are gone
    assert run.log_file.read_bytes().endswith(b"\n")


def test_a_full_disk_during_evaluate_keeps_the_metrics(disk, runs, capsys, monkeypatch):
    run = Run(shutil.copytree(runs / "epochs1", disk / "run"))
    assert main(["evaluate", "--run", str(run), "--kid", "none"]) == 0
    before = run.metrics_file.read_bytes()
    fill_at(monkeypatch, run_module, disk, "metrics.json")
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--kid", "none"]) == 2
    assert error_line(capsys.readouterr().err) == (
        f"agit: error: no space left on device while writing {run.metrics_file}")
    assert run.metrics_file.read_bytes() == before and not list(run.path.glob(".*.tmp"))
    monkeypatch.undo()
    (disk / "filler").unlink()
    assert main(["evaluate", "--run", str(run), "--kid", "none"]) == 0
    assert main(["info", str(run)]) == 0
    assert json.loads(run.metrics_file.read_text())["kid_extractor"] == "none"


def test_a_full_disk_during_translate_keeps_the_earlier_outputs(disk, runs, tiny_data, capsys, monkeypatch):
    out = disk / "out"
    argv = ["translate", "--run", str(runs / "epochs1"), "--input", str(tiny_data / "testA"), "--out", str(out)]
    assert main(argv) == 0
    before = snapshot(out)
    fill_at(monkeypatch, files, disk, "0000.png.png")
    capsys.readouterr()
    assert main([*argv, "--direction", "t2s"]) == 1  # other outputs, into the same files
    said = capsys.readouterr().out
    assert "translated 0 of 6 entries" in said and "no space left on device while writing" in said
    assert snapshot(out) == before and not list(out.rglob("*.tmp"))
    monkeypatch.undo()
    (disk / "filler").unlink()
    assert main([*argv, "--direction", "t2s"]) == 0
    after = snapshot(out)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after if k.parts[0] == "images")


def test_a_full_disk_while_replacing_a_dataset_keeps_the_old_one(disk, capsys):
    argv = ["data", "synth", "--root", str(disk), "--name", "d", "--size", "32", "--n-train", "8", "--n-test", "4"]
    assert main(argv) == 0
    (disk / "d" / "NOTES.txt").write_text("mine")
    before = snapshot(disk / "d")
    fill(disk)
    capsys.readouterr()
    assert main([*argv, "--seed", "2", "--overwrite"]) == 2
    assert error_line(capsys.readouterr().err) == (
        f"agit: error: no space left on device while making {disk / 'd'}; it is as it was")
    assert snapshot(disk / "d") == before
    (disk / "filler").unlink()
    assert sorted(p.name for p in disk.iterdir()) == ["d"]  # no staging folder, no lock left
    assert main([*argv, "--seed", "2", "--overwrite"]) == 0
    assert json.loads((disk / "d" / "meta.json").read_text())["params"]["seed"] == 2
    assert (disk / "d" / "NOTES.txt").read_text() == "mine"
    make_synthetic(disk, "d", size=32, n_train=8, n_test=4, seed=2, overlap=0.3)  # the same settings: reused
