"""Data-parallel training under `torchrun --nproc_per_node=N -m agit train …`.

Every rank holds the whole AGGAN and sees a disjoint shard of each epoch's pairs;
after each backward pass the gradients are averaged across ranks before the
optimiser steps, so all replicas take identical steps (DistributedDataParallel's
semantics). The averaging is explicit, as in StyleGAN2-ADA, rather than through
the `DistributedDataParallel` wrapper: a GAN alternates G and D updates and runs
each generator several times per backward pass (translation, cycle), which the
wrapper's hook bookkeeping does not expect. NCCL on GPUs, gloo on CPU. Only rank 0
writes logs, samples and checkpoints.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), before the process group exists."""
    return int(os.environ.get("RANK", "0"))


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit name is honoured (and checked)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for, but CUDA is not available here")
    return device


def local_device(device: torch.device) -> torch.device:
    """Each rank on its own GPU (torchrun's LOCAL_RANK); CPU ranks share the CPU."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(params) -> None:
    """Mean of every gradient across ranks, flattened into one all-reduce per call."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(chunk.view_as(g))


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Start every replica from rank 0's weights (seeding alone would do on one machine, not across)."""
    if active():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)


def reduce_step(losses: dict[str, float], stop: bool, device) -> tuple[dict[str, float], bool]:
    """One all-reduce per iteration: losses averaged over ranks (what the log reports) and the Ctrl-C
    flag or-ed, so every rank sees the same NaN check and stops at the same iteration."""
    if not active():
        return losses, stop
    t = torch.tensor([*losses.values(), float(stop)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    world = dist.get_world_size()
    return dict(zip(losses, (t[:-1] / world).tolist())), bool(t[-1].item())
