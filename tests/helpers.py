"""Checks several test modules share (imported as `helpers`: pytest puts tests/ on sys.path)."""

import torch


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


def job_process_gpu(barrier) -> tuple[int, str | None]:
    """(pid, CUDA_VISIBLE_DEVICES) of the job process running this, once every job holds a process."""
    import os

    barrier.wait(timeout=120)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")
