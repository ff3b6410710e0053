"""`agit reproduce --jobs N` on a machine with G GPUs: one GPU per job process, round-robin.

No GPU here: the tests fake the device count and check what each job process was given.
"""

import multiprocessing
import re

import pytest
import torch
from helpers import job_process_gpu

from agit import jobs, reproduce
from agit.profiles import resolve_profile


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_each_job_process_sees_its_own_gpu_round_robin(four_gpus):
    """6 jobs on 4 GPUs: processes 0-3 get GPUs 0-3, processes 4-5 share GPUs 0-1."""
    gpus = jobs.job_gpus(None)
    assert gpus == ["0", "1", "2", "3"]
    with multiprocessing.get_context("spawn").Manager() as manager:
        everyone = manager.Barrier(6)  # all six tasks at once: six distinct processes
        with jobs.local_pool(6, gpus) as pool:
            seen = [f.result() for f in [pool.submit(job_process_gpu, everyone) for _ in range(6)]]
    assert len({pid for pid, _ in seen}) == 6
    assert sorted(gpu for _, gpu in seen) == ["0", "0", "1", "1", "2", "3"]


def test_which_gpus_and_how_many_jobs(four_gpus, monkeypatch):
    paper = resolve_profile("paper")
    assert jobs.default_jobs(paper, None, None) == 4 == jobs.default_jobs(paper, "cuda", None)
    assert jobs.job_gpus("cpu") == [] and jobs.default_jobs(paper, "cpu", None) == paper["jobs"]
    assert jobs.job_gpus("cuda:1") == []  # an explicit GPU: every job on it
    assert jobs.default_jobs(paper, None, "submitit:cluster=local") == paper["jobs"]  # the scheduler places jobs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,6,7")  # a share of a bigger machine
    assert jobs.job_gpus(None) == ["2", "5", "6", "7"]


def test_reproduce_spreads_runs_over_the_gpus(four_gpus, tmp_path, capsys):
    """The default --jobs on CUDA is the GPU count; each run says where it was placed, on CPU here."""
    n = torch.get_num_threads()
    ctx = reproduce.context("ci", tmp_path / "out", tmp_path / "data")
    assert ctx.jobs == 4
    ctx.ensure_runs(["ours", "cyclegan"], evaluate=False)
    torch.set_num_threads(n)
    placed = re.findall(r"ci/(\w+): trained, CUDA_VISIBLE_DEVICES=(\d)", capsys.readouterr().out)
    assert sorted(name for name, _ in placed) == ["cyclegan", "ours"]
    assert {gpu for _, gpu in placed} <= {"0", "1"}  # two runs: two job processes, GPUs 0 and 1

