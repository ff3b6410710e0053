"""Checks several test modules share (imported as `helpers`: pytest puts tests/ on sys.path)."""

import multiprocessing

import torch

FORK = multiprocessing.get_context("fork")


def assert_same_training(a: dict, b: dict) -> bool:
    """Two checkpoint states hold the same weights and optimiser states, bit for bit."""
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for name, opt in a["optimizers"].items():
        for pid, st in opt["state"].items():
            for key, val in st.items():
                other = b["optimizers"][name]["state"][pid][key]
                assert torch.equal(torch.as_tensor(val), torch.as_tensor(other)), (name, key)
    return True


def stop_during(trainer, epoch: int, step: int, stop=None):
    """A stop request (`stop`, default the trainer's own, as a signal handler calls it) at the end of
    `trainer`'s iteration `step` + 1 of `epoch` (0-based epoch, `step` iterations done before it)."""
    train_step = trainer.train_step

    def step_then_stop(s, t):
        out = train_step(s, t)
        if (trainer.epoch, trainer.step) == (epoch, step):
            (stop or trainer._request_stop)()
        return out

    trainer.train_step = step_then_stop


def _hold(lock_file, held, release):
    from agit.locks import folder_lock

    with folder_lock(lock_file, "a test's folder"):
        held.set()
        release.wait(60)


def hold_lock(lock_file):
    """A live process holding `lock_file`: (process, event that releases it)."""
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold, args=(lock_file, held, release))
    child.start()
    assert held.wait(30)
    return child, release


def error_line(err: str) -> str:
    """The one line `agit: …` of a command's stderr (progress bars aside), checked to be the only one."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("agit:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def job_process_gpu(barrier) -> tuple[int, str | None]:
    """(pid, CUDA_VISIBLE_DEVICES) of the job process running this, once every job holds a process."""
    import os

    barrier.wait(timeout=120)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")
