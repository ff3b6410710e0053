"""Data-parallel training: two CPU processes over gloo, as torchrun would start them."""

import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agit import preset
from agit.run import Run
from agit.train import Trainer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, data, run, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(preset("ci", data=data, epochs=2, iters_per_epoch=4), run, "cpu")
    trainer.fit(progress=False)
    torch.save({"model": trainer.model.state_dict(), "steps_seen": trainer.epoch}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_end_with_identical_weights(tiny_data, tmp_path):
    run = tmp_path / "run"
    mp.spawn(_rank, args=(2, free_port(), str(tiny_data), str(run), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False)["model"] for r in (0, 1)]
    saved = Run(run).load_checkpoint()["model"]
    initial = Trainer(preset("ci", data=str(tiny_data)), tmp_path / "unused").model.state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in saved.items())  # it trained
    for k in saved:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
        assert torch.equal(ranks[0][k], saved[k]), k
    # rank 0 alone logs: 4 pairs an epoch shared by 2 ranks -> 2 logged iterations an epoch
    log = (run / "log.jsonl").read_text().splitlines()
    assert sum('"kind": "iter"' in line for line in log) == 4


def test_torchrun_cli(tiny_data, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         "-m", "agit", "train", "--preset", "ci", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
         "--epochs", "1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "epoch_0001.pt").exists()
    assert out.stdout.count("done:") == 1 and "2 ranks" in out.stdout  # one voice for both ranks
