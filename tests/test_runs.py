"""Run folders (agit/run.py) against issue 16's cases, in its order: one run per folder, one
process per folder, stop signals, resume rules, safe loading, write errors, unreadable
checkpoints, input checks; then SIGTERM at random iterations, resumed each time.

Training processes are forked from the test process (torch already imported: milliseconds,
not seconds, to start) and run the real command line, `agit.cli.main`."""

import errno
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import sys
import time

import pytest
import torch
from PIL import Image

from agit import figures, preset, reproduce
from agit.cli import EXIT_INTERRUPTED, main
from agit.data import DataError
from agit.locks import FolderLocked
from agit.run import Run, UnsafeCheckpoint
from agit.synthetic import make_synthetic
from agit.train import Interrupted, Trainer

from helpers import assert_same_training, error_line, hold_lock, stop_during

FORK = multiprocessing.get_context("fork")


def train_argv(data, run, *more):
    return ["train", "--preset", "ci", "--data", str(data), "--out", str(run), *more]


def _cli(argv, output, file_size_limit):
    os.setsid()  # a process group of its own, as a job's: os.killpg reaches it and its loader workers
    sys.stdout = sys.stderr = open(output, "w", buffering=1)
    if file_size_limit:  # writes past the limit fail with EFBIG (instead of the process being killed)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    sys.exit(main(argv))


def start_cli(argv, output, file_size_limit=None):
    """`agit ARGV` in a forked process, its output to `output`."""
    child = FORK.Process(target=_cli, args=(argv, str(output), file_size_limit))
    child.start()
    return child


def iterations(run) -> int:
    return sum(r["kind"] == "iter" for r in Run(run).log())


def wait_until(condition, child, timeout=120):
    end = time.time() + timeout
    while not condition():
        assert child.is_alive(), "the training process ended early"
        assert time.time() < end, "timed out"
        time.sleep(0.002)


def iter_rows(run):
    return [r for r in Run(run).log() if r["kind"] == "iter"]


# -- 1. one folder, one run ---------------------------------------------------------------------


def test_a_finished_run_is_never_overwritten_silently(tiny_data, tmp_path, capsys):
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run)) == 0  # 2 epochs
    before = {p.name: p.read_bytes() for p in (run.config_file, run.log_file, run.latest, run.epoch_checkpoint(2))}
    capsys.readouterr()
    assert main(train_argv(tiny_data, run, "--epochs", "1", "--set", "seed=5")) == 2
    err = error_line(capsys.readouterr().err)
    assert f"{run.path} already holds a run (epoch 2 of 2, finished)" in err
    assert "--resume" in err and "--overwrite" in err
    assert before == {p.name: p.read_bytes() for p in (run.config_file, run.log_file, run.latest,
                                                        run.epoch_checkpoint(2))}
    # --overwrite removes the old run's files first: nothing of it is left to mix with the new one
    assert main(train_argv(tiny_data, run, "--epochs", "1", "--set", "seed=5", "--overwrite")) == 0
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["epoch_0001.pt", "latest.pt"]
    assert [r["kind"] for r in run.log()].count("start") == 1 and len(iter_rows(run)) == 4
    assert run.config().seed == 5 and run.load_checkpoint()["config"]["seed"] == 5
    assert main(train_argv(tiny_data, run, "--resume", "--overwrite")) == 2


# -- 2. one process per folder ------------------------------------------------------------------


def test_a_second_training_process_is_refused_naming_the_first(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    first = start_cli(train_argv(tiny_data, run, "--set", "iters_per_epoch=400"), tmp_path / "first.txt")
    wait_until(lambda: iterations(run) >= 1, first)
    for more in ((), ("--resume",), ("--overwrite",)):
        assert main(train_argv(tiny_data, run, *more)) == 2, more
        err = error_line(capsys.readouterr().err)
        assert f"run folder {run} is in use by pid {first.pid} on {socket.gethostname()}" in err, err
    os.kill(first.pid, signal.SIGTERM)
    first.join(60)
    assert first.exitcode == EXIT_INTERRUPTED
    assert not (run / ".lock").exists()  # released on exit


def test_reproduce_locks_its_results_and_data_folders(tmp_path, capsys):
    argv = ["reproduce", "--profile", "ci", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"),
            "--stages", "01"]
    for lock_file, what in ((tmp_path / "out" / ".lock", f"results folder {tmp_path / 'out'}"),
                            (tmp_path / "data" / ".ci.lock", f"dataset {tmp_path / 'data' / 'ci'}")):
        holder, release = hold_lock(lock_file)
        assert main(argv) == 2
        err = error_line(capsys.readouterr().err)
        assert f"{what} is in use by pid {holder.pid} on {socket.gethostname()}" in err
        if what.startswith("dataset"):  # a notebook's prepare_data, outside `agit reproduce`, too
            ctx = reproduce.context("ci", tmp_path / "out", tmp_path / "data")
            with pytest.raises(FolderLocked, match=f"pid {holder.pid}"):
                ctx.prepare_data(check_kid=False)
        release.set()
        holder.join(30)
    assert not (tmp_path / "data" / "ci").exists()  # nothing was made while locked out


def test_a_stale_lock_is_taken_over(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    holder, _ = hold_lock(run / ".lock")
    os.kill(holder.pid, signal.SIGKILL)  # dies holding it: the file stays, the kernel's lock goes
    holder.join(30)
    assert (run / ".lock").exists()
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    assert f"taking over the stale lock of pid {holder.pid}" in capsys.readouterr().err
    assert not (run / ".lock").exists()


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    import fcntl

    from agit.locks import folder_lock

    def no_locks(fd, how):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match=f"cannot lock {tmp_path / '.lock'} .*make sure no other process uses it"):
        with folder_lock(tmp_path / ".lock", "it"):
            pass


# -- 3. stop signals ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signals_checkpoint_and_exit_as_resumable(tiny_data, tmp_path, sig):
    run = Run(tmp_path / "run")
    child = start_cli(train_argv(tiny_data, run, "--set", "iters_per_epoch=400"), tmp_path / "out.txt")
    wait_until(lambda: iterations(run) >= 3, child)
    os.kill(child.pid, sig)
    child.join(60)
    assert child.exitcode == EXIT_INTERRUPTED == 75
    said = (tmp_path / "out.txt").read_text()
    assert f"agit: interrupted, resumable: {sig.name} at epoch 1, iteration" in said
    assert f"continue with agit train --out {run} --resume" in said
    state = run.load_checkpoint()
    assert state["epoch"] == 0 and state["step"] >= 3 and state["step"] == iterations(run)
    assert not list(run.checkpoints_dir.glob("*.tmp")) and not list(run.checkpoints_dir.glob(".*.tmp"))


def test_sigterm_to_the_whole_process_group_with_loader_workers(tiny_data, tmp_path):
    """SLURM and docker signal every process of the job: the DataLoader workers leave it to training."""
    run = Run(tmp_path / "run")
    child = start_cli(train_argv(tiny_data, run, "--set", "iters_per_epoch=400", "--set", "workers=2"),
                      tmp_path / "out.txt")
    wait_until(lambda: iterations(run) >= 3, child)
    os.killpg(child.pid, signal.SIGTERM)
    child.join(60)
    assert child.exitcode == EXIT_INTERRUPTED, (tmp_path / "out.txt").read_text()
    assert run.progress()[1] >= 3


def test_a_second_ctrl_c_during_the_checkpoint_write_changes_nothing(ci_cfg, tmp_path, monkeypatch):
    t = Trainer(ci_cfg, tmp_path / "run")
    stop_during(t, 0, 1, stop=lambda: os.kill(os.getpid(), signal.SIGINT))
    real_fsync = os.fsync

    def ctrl_c_while_writing(fd):
        if ".latest.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            os.kill(os.getpid(), signal.SIGINT)  # lands in the middle of the checkpoint's write
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", ctrl_c_while_writing)
    with pytest.raises(Interrupted, match="SIGINT at epoch 1, iteration 2"):
        t.fit(progress=False)
    monkeypatch.undo()
    state = Run(tmp_path / "run").load_checkpoint()
    assert (state["epoch"], state["step"]) == (0, 2)
    assert_same_training(state, t.state_dict())


# -- 4. resume checks the config ---------------------------------------------------------------------


def test_resume_refuses_settings_that_change_what_is_learned(tiny_data, tmp_path, capsys):
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    files = {p: p.read_bytes() for p in (run.config_file, run.latest)}
    capsys.readouterr()
    for more, shown in ((["--set", "lr=0.5"], "lr 0.0002 -> 0.5"), (["--set", "size=64"], "size 32 -> 64"),
                        (["--preset", "quick"], "preset 'ci' -> 'quick'"),
                        (["--variant", "d", "--set", "tau=0.3"], "variant 'ours' -> 'd', tau 0.1 -> 0.3")):
        assert main(["train", "--out", str(run), "--resume", *more]) == 2, more
        err = error_line(capsys.readouterr().err)
        assert f"cannot resume {run} with {shown}:" in err, err
    assert files == {p: p.read_bytes() for p in files}
    # how it computes, and how long: allowed, and logged
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--set", "n_samples=1"]) == 0
    resumed = [r for r in run.log() if r["kind"] == "resume"]
    assert resumed[0]["changed"] == {"epochs": [1, 2], "n_samples": [2, 1]}
    assert run.config().epochs == 2 and run.load_checkpoint()["config"]["n_samples"] == 1
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1"]) == 2
    assert "it has trained 2 epochs already" in capsys.readouterr().err


def test_more_epochs_on_resume_continue_the_longer_schedule(ci_cfg, tmp_path):
    """Extending a finished run equals training the longer run from the start: the lr of the new
    epochs follows the longer schedule (it had decayed to 0 at the end of the short one)."""
    longer = preset("ci", data=ci_cfg.data, epochs=4)
    Trainer(longer, tmp_path / "straight").fit(progress=False)
    Trainer(ci_cfg, tmp_path / "extended").fit(progress=False)  # 2 epochs, finished
    Trainer.resume(tmp_path / "extended", epochs=4).fit(progress=False)
    a, b = Run(tmp_path / "straight"), Run(tmp_path / "extended")
    assert assert_same_training(a.load_checkpoint(), b.load_checkpoint())
    assert [r["lr"] for r in iter_rows(a)] == [r["lr"] for r in iter_rows(b)]


# -- 5. a checkpoint cannot run code -------------------------------------------------------------


class Payload:
    """What a crafted checkpoint holds: unpickling it calls os.system."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_crafted_checkpoint_is_refused_without_running(tiny_data, tmp_path, capsys):
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    marker = tmp_path / "code-ran"
    state = run.load_checkpoint()
    state["model"]["payload"] = Payload(f"touch {marker}")
    for path in (run.latest, run.epoch_checkpoint(1)):
        torch.save(state, path)
    capsys.readouterr()
    for argv in (["translate", "--run", str(run), "--input", str(tiny_data / "testA"), "--out", str(tmp_path / "t")],
                 ["train", "--out", str(run), "--resume", "--epochs", "2"],
                 ["evaluate", "--run", str(run), "--kid", "none"]):
        assert main(argv) == 2, argv
        err = error_line(capsys.readouterr().err)
        assert f"refusing to load {run.latest}" in err and "posix.system" in err, err
    for load in (run.progress, lambda: figures.model_of(run),
                 lambda: Run(tmp_path / "fork").fork_from(run, 1, preset("ci", data=str(tiny_data)))):
        with pytest.raises(UnsafeCheckpoint):
            load()
    assert not marker.exists()


# -- 6. write errors ------------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tiny_data, tmp_path, capsys, monkeypatch):
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    good = run.latest.read_bytes()

    def full(fd, fsync=os.fsync):  # the disk fills as a checkpoint is written
        if ".latest.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    monkeypatch.undo()
    assert error_line(capsys.readouterr().err) == (
        f"agit: error: no space left on device while writing {run.latest}; "
        f"the previous checkpoint {run.latest} (epoch 1, iteration 0) is intact")
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["epoch_0001.pt", "latest.pt"]
    assert run.latest.read_bytes() == good
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert run.progress() == (2, 0)


def test_a_write_error_from_the_os_leaves_no_temporary_file(tiny_data, tmp_path):
    """A real failing write: a file-size limit below the checkpoint's size (EFBIG)."""
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    good = run.latest.read_bytes()
    child = start_cli(["train", "--out", str(run), "--resume", "--epochs", "2"], tmp_path / "out.txt",
                      file_size_limit=len(good) // 2)
    child.join(120)
    said = (tmp_path / "out.txt").read_text()
    assert child.exitcode == 2, said
    assert error_line(said) == (f"agit: error: cannot write (File too large) while writing {run.latest}; "
                                f"the previous checkpoint {run.latest} (epoch 1, iteration 0) is intact")
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["epoch_0001.pt", "latest.pt"]
    assert run.latest.read_bytes() == good


# -- 7. unreadable checkpoints, input checks ---------------------------------------------------------


def test_an_unreadable_latest_resumes_from_the_newest_readable_epoch(ci_cfg, tiny_data, tmp_path, capsys):
    Trainer(ci_cfg, tmp_path / "straight").fit(progress=False)
    run = Run(tmp_path / "run")
    t = Trainer(ci_cfg, run.path)
    stop_during(t, 1, 1)  # a stop request in the 2nd iteration of epoch 2
    with pytest.raises(Interrupted):
        t.fit(progress=False)
    assert run.progress() == (1, 2)
    run.latest.write_bytes(run.latest.read_bytes()[:5000])  # truncated, as by a crash on a disk without fsync
    assert main(["translate", "--run", str(run), "--input", str(tiny_data / "testA"), "--out", str(tmp_path / "t")]) == 2
    assert f"cannot read checkpoint {run.latest}: truncated or corrupt (" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"cannot read checkpoint {run.latest}: truncated or corrupt (" in err
    assert f"resuming from {run.epoch_checkpoint(1)} (epoch 1, iteration 0)" in err
    assert assert_same_training(Run(tmp_path / "straight").load_checkpoint(), run.load_checkpoint())
    assert iter_rows(run) == iter_rows(tmp_path / "straight")  # epoch 2's first rows redone, not doubled


def test_epochs_and_the_switch_epoch_are_checked(tiny_data, tmp_path, capsys):
    for epochs in ("0", "-3"):
        assert main(train_argv(tiny_data, tmp_path / "run", "--epochs", epochs)) == 2
        assert f"epochs must be at least 1, got {epochs}" in capsys.readouterr().err
    assert main(train_argv(tiny_data, tmp_path / "run", "--switch-epoch", "-1")) == 2
    assert not (tmp_path / "run").exists()
    assert main(train_argv(tiny_data, tmp_path / "run", "--switch-epoch", "3")) == 2
    assert "switch_epoch 3 comes after the last epoch" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_files_that_are_not_images_are_counted(tiny_data, tmp_path, capsys):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    Image.new("RGB", (8, 8)).save(data / "trainA" / "anim.gif")
    (data / "trainA" / "extra").mkdir()
    assert main(train_argv(data, tmp_path / "run", "--epochs", "1")) == 0
    assert f"{data / 'trainA'}: 8 images; 2 entries skipped, not images (anim.gif, extra/)" in capsys.readouterr().out
    start = Run(tmp_path / "run").log()[0]
    assert start["kind"] == "start" and start["skipped_files"] == {"trainA": 2, "trainB": 0}


# -- fault injection --------------------------------------------------------------------------------------


def test_sigterm_at_random_iterations_then_resume_ends_bit_identical(tiny_data, tmp_path):
    """Three SIGTERMs at random iterations of a 24-iteration run (each a few iterations after the
    last resume), resumed each time: the same weights, optimiser state and losses as one run."""
    settings = ["--epochs", "3", "--set", "iters_per_epoch=8"]
    Trainer(preset("ci", data=str(tiny_data), epochs=3, iters_per_epoch=8), tmp_path / "straight").fit(progress=False)
    run, rng, stops = Run(tmp_path / "run"), random.Random(16), []
    for k in range(3):
        target = iterations(run) + rng.randint(1, 5)
        child = start_cli(train_argv(tiny_data, run, *settings, *(["--resume"] if k else [])),
                          tmp_path / f"out{k}.txt")
        wait_until(lambda: iterations(run) >= target, child)
        os.kill(child.pid, signal.SIGTERM)
        child.join(60)
        assert child.exitcode == EXIT_INTERRUPTED, (tmp_path / f"out{k}.txt").read_text()
        stops.append(run.progress())
    assert len(set(stops)) == 3 and stops[-1] < (3, 0)
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert assert_same_training(Run(tmp_path / "straight").load_checkpoint(), run.load_checkpoint())
    assert iter_rows(run) == iter_rows(tmp_path / "straight")


# -- issue 25: the second wave ------------------------------------------------------------------------------
# (a disk that fills at each kind of write: tests/test_full_disk.py; datasets: tests/test_data.py)


def test_a_fit_that_ends_between_checkpoints_still_writes_one(ci_cfg, tmp_path):
    """Item 1: whatever checkpoint_every says, a run never ends without its last state on disk
    (`agit info` would say "not started", translate "train the run first")."""
    run = Run(tmp_path / "run")
    Trainer(preset("ci", data=ci_cfg.data, checkpoint_every=2), run.path).fit(epochs=1, progress=False)
    assert run.progress() == (1, 0) and run.epoch_checkpoint(1).is_file()
    assert max(r["epoch"] for r in run.log()) == 0  # the log's last epoch is the checkpoint's: nothing ahead of it
    Trainer.resume(run.path).fit(progress=False)
    assert run.finished() and run.progress() == (2, 0)


def test_resume_to_fewer_epochs_than_done_is_refused_with_the_range(ci_cfg, tmp_path, capsys):
    """Item 8: --epochs below the epochs done, or equal to the epoch a run is in the middle of."""
    run = Run(tmp_path / "run")
    t = Trainer(ci_cfg, run.path)
    stop_during(t, 1, 1)  # 1 epoch and 2 iterations of epoch 2 done
    with pytest.raises(Interrupted):
        t.fit(progress=False)
    before = {p: p.read_bytes() for p in (run.config_file, run.log_file, run.latest)}
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1"]) == 2
    assert error_line(capsys.readouterr().err) == (
        f"agit: error: cannot resume {run} with epochs 1: it has trained 1 epochs and 2 iterations of epoch 2 "
        f"already; --epochs must be at least 2")
    assert before == {p: p.read_bytes() for p in before}
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0


def test_a_users_readme_config_and_samples_are_never_taken_for_agits(tiny_data, tmp_path, capsys):
    """Item 9: refuse or keep, never overwrite; --overwrite removes agit's own files only."""
    run = Run(tmp_path / "run")
    run.path.mkdir()
    (run.path / "README.md").write_text("# my notes\n")
    (run.path / "samples").mkdir()
    Image.new("RGB", (8, 8)).save(run.path / "samples" / "photo.png")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0  # not "another run's files"
    assert f"{run.readme_file} is not agit's: kept as it is" in capsys.readouterr().err
    assert (run.path / "README.md").read_text() == "# my notes\n"
    assert main(train_argv(tiny_data, run, "--epochs", "1", "--overwrite")) == 0
    assert (run.path / "samples" / "photo.png").is_file() and run.sample_file(1).is_file()

    mine = Run(tmp_path / "mine")
    mine.path.mkdir()
    (mine.config_file).write_text('{"learning_rate": 3}')
    for more in ((), ("--overwrite",)):
        assert main(train_argv(tiny_data, mine, "--epochs", "1", *more)) == 2
        assert error_line(capsys.readouterr().err) == (
            f"agit: error: {mine} holds config.json that agit did not write, and agit would write its own there; "
            f"move it or choose another --out")
    assert mine.config_file.read_text() == '{"learning_rate": 3}' and sorted(os.listdir(mine)) == ["config.json"]


def test_overwrite_then_an_interruption_leaves_no_readme_of_the_old_run(ci_cfg, tmp_path):
    """Item 9: the old run's README (seed 0) is gone as soon as the new run (seed 5) claims the folder."""
    run = Run(tmp_path / "run")
    Trainer(ci_cfg, run.path).fit(progress=False)
    assert "| seed | 0 |" in run.readme_file.read_text()
    t = Trainer(preset("ci", data=ci_cfg.data, seed=5), run.path, overwrite=True)
    stop_during(t, 0, 1)
    with pytest.raises(Interrupted):
        t.fit(progress=False)
    assert not run.readme_file.exists() and not (run.path / "provenance.json").exists()
    Trainer.resume(run.path).fit(progress=False)
    assert "| seed | 5 |" in run.readme_file.read_text()


def test_a_log_or_metrics_file_that_cannot_be_parsed_is_named(tiny_data, tmp_path, capsys):
    """Item 2: a torn last row is dropped with a warning; anything else unreadable names its file."""
    run = Run(tmp_path / "run")
    assert main(train_argv(tiny_data, run, "--epochs", "1")) == 0
    with open(run.log_file, "a") as log:
        log.write('{"kind": "iter", "epoch": 1, "st')  # what a write cut short by a full disk leaves
    with pytest.warns(UserWarning, match="dropping its last line, cut short by a write that failed"):
        assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert run.log_file.read_text().endswith("}\n") and run.progress() == (2, 0)
    run.metrics_file.write_text("")  # as main left it after a full disk during evaluate
    capsys.readouterr()
    assert main(["info", str(run)]) == 2
    assert error_line(capsys.readouterr().err).startswith(
        f"agit: error: cannot read {run.metrics_file}: not valid JSON (Expecting value: line 1 column 1")
    lines = run.log_file.read_text().splitlines()
    run.log_file.write_text("\n".join([lines[0], lines[1][:20], *lines[2:]]) + "\n")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    assert error_line(capsys.readouterr().err).startswith(
        f"agit: error: cannot read {run.log_file}: line 2 is not a JSON row")


def test_resume_on_a_changed_dataset_is_refused_and_training_notices_a_replaced_one(tiny_data, tmp_path, capsys):
    """Items 3-4: a run records its dataset's fingerprint; --resume on other data refuses in one
    line, and a dataset replaced while training stops the run before a checkpoint mixes the two."""
    data = shutil.copytree(tiny_data, tmp_path / "tiny")
    run = Run(tmp_path / "run")
    assert main(train_argv(data, run, "--epochs", "1")) == 0
    trained_on = run.load_checkpoint()["data_fingerprint"]
    assert trained_on.startswith("meta ")
    moved = shutil.copytree(data, tmp_path / "moved")  # the same data elsewhere: resumes
    make_synthetic(tmp_path, "tiny", size=32, n_train=8, n_test=6, seed=2, overwrite=True)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    now = run.load_checkpoint()["data_fingerprint"]
    assert error_line(capsys.readouterr().err).startswith(
        f"agit: error: cannot resume {run}: its dataset {data} is not the one it trained on "
        f"(fingerprint {trained_on}, now meta ")
    assert now == trained_on and run.progress() == (1, 0)

    t = Trainer.resume(run.path, epochs=2, data=str(moved))
    stop_during(t, 1, 1, stop=lambda: make_synthetic(tmp_path, "moved", size=32, n_train=8, n_test=6, seed=3,
                                                     overwrite=True))
    with pytest.raises(DataError, match=rf"the dataset {moved} changed while training \(fingerprint {trained_on}, "
                                        rf"now meta \w+\): stopped with 2 epochs done, without a checkpoint; "
                                        rf"{run.latest} \(epoch 1\) holds training on the old data only"):
        t.fit(progress=False)
    assert run.progress() == (1, 0)
