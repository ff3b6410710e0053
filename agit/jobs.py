"""Training a profile's runs: the job scheduler behind `Context.ensure_runs`.

Missing runs are trained, unfinished ones resumed, finished ones reused, and runs
without `metrics.json` evaluated; a fork (specs.py) starts from its parent's checkpoint
as soon as the parent has written it. The runs train in this process, in `--jobs`
local processes (one GPU each where there are GPUs: `local_pool`), or as submitit jobs
(e.g. SLURM), each job one call of `_build`.
Once a run is finished, only its latest.pt and the checkpoints forks start from are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

from .config import HOW_KEYS, Config, config_changes
from .run import Run, RunError
from .specs import RunSpec


class RunMismatch(RunError):
    """A run folder holds a run trained with a different configuration than the profile asks."""


def _check_same(run: Run, cfg: Config):
    """RunMismatch if `run` was trained with other settings (HOW_KEYS aside)."""
    saved = run.config_dict()
    if saved is None:
        return
    diff = {k: v for k, v in config_changes(saved, cfg.to_dict()).items() if k not in HOW_KEYS}
    if diff:
        shown = ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in list(diff.items())[:6])
        raise RunMismatch(f"{run} was trained with {shown}; delete that folder to retrain it with "
                          f"the current settings, or pick another --out")


def train_run(spec: RunSpec, cfg: Config, run_dir: Path, parent_dir: Path | None = None,
              device: str | None = None, threads: int | None = None) -> str:
    """Train (or resume, or fork) one run to the end of its schedule; returns what was done."""
    import torch

    from .train import Trainer

    if threads:
        torch.set_num_threads(threads)
    run = Run(run_dir)
    with run.lock():  # decided and done by one process
        _check_same(run, cfg)
        state = run.progress()
        if state is not None and state[0] >= cfg.epochs:
            return "reused"
        if state is None and spec.fork and parent_dir is not None:
            parent = Run(parent_dir)
            if parent.epoch_checkpoint(spec.fork[1]).is_file():
                run.fork_from(parent, spec.fork[1], cfg)
                state = (spec.fork[1], 0)
        if state is None:  # files without a checkpoint: an attempt that never finished an epoch
            trainer, done = Trainer(cfg, run_dir, device, overwrite=True), "trained"
        else:
            trainer = Trainer.resume(run_dir, device, **{k: v for k, v in cfg.to_dict().items() if k != "preset"})
            done = "forked" if spec.fork and state == (spec.fork[1], 0) else "resumed"
        trainer.fit(progress=False)
    return done


def needs_evaluation(run_dir: Path, kid_protocol: dict) -> bool:
    """Whether a run's metrics.json is missing, older than its checkpoint, or from another KID
    protocol (`kid_protocol`: a profile's `kid`, its extractor, subsets and subset size)."""
    run = Run(run_dir)
    saved = run.metrics()
    if saved is not None and run.metrics_file.stat().st_mtime >= run.latest.stat().st_mtime:
        if (saved.get("kid_extractor") == kid_protocol["extractor"]
                and saved.get("kid_subset_size", kid_protocol["subset_size"]) == kid_protocol["subset_size"]):
            return False
    return True


def is_done(run_dir: Path, cfg: Config, kid_protocol: dict | None) -> bool:
    """Trained to the end of its schedule (and evaluated, if `kid_protocol` asks): nothing left
    to do. A run trained with other settings raises RunMismatch."""
    run = Run(run_dir)
    _check_same(run, cfg)
    state = run.progress()
    return state is not None and state[0] >= cfg.epochs and (kid_protocol is None
                                                             or not needs_evaluation(run_dir, kid_protocol))


def evaluate_if_needed(run_dir: Path, kid_protocol: dict, device: str | None = None) -> bool:
    """Evaluate a run if it `needs_evaluation`; returns whether it did."""
    from .evaluate import evaluate_run

    if not needs_evaluation(run_dir, kid_protocol):
        return False
    evaluate_run(run_dir, kid=kid_protocol["extractor"], device=device, kid_subsets=kid_protocol["subsets"],
                 kid_subset_size=kid_protocol["subset_size"])
    return True


def _build(spec_dict: dict, cfg_dict: dict, run_dir: str, parent_dir: str | None, kid_protocol: dict | None,
           device: str | None, threads: int | None) -> tuple[str, float]:
    """Worker: train then evaluate one run (a top-level function, so processes can run it)."""
    start = time.time()
    spec = RunSpec(**{**spec_dict, "fork": tuple(spec_dict["fork"]) if spec_dict["fork"] else None})
    cfg = Config.from_dict(cfg_dict)
    done = train_run(spec, cfg, Path(run_dir), Path(parent_dir) if parent_dir else None, device, threads)
    if kid_protocol is not None and evaluate_if_needed(Path(run_dir), kid_protocol, device):
        done += " + evaluated"
    if _placed_on is not None:
        done += f", CUDA_VISIBLE_DEVICES={_placed_on}"
    return done, time.time() - start


def _cluster_job(*args) -> tuple[str, float]:
    """A cluster job: `_build`, ending as `agit train` does when a signal stopped it (a scheduler's
    time limit, `scancel`): exit 75 after the checkpoint, so the scheduler records the job as
    interrupted and resumable (the next `agit reproduce` resumes it), not as a crash."""
    from .cli import EXIT_INTERRUPTED
    from .train import Interrupted

    try:
        return _build(*args)
    except Interrupted as stop:
        print(f"agit: interrupted, resumable: {stop}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)


def _cost(ctx, spec: RunSpec) -> float:
    """Rough training cost of a run, in main runs: its share of epochs not forked."""
    return 1 - spec.fork[1] / ctx.config_for(spec).epochs if spec.fork else 1


def _parent(spec: RunSpec) -> str | None:
    """The key of the run `spec` forks from."""
    return f"{spec.dataset}/{spec.fork[0]}" if spec.fork else None


def ensure_runs(ctx, names=None, jobs: int = 1, evaluate: bool = True) -> dict[str, Path]:
    """Make sure the runs `names` of the Context `ctx` (default: all of its profile) are trained
    and evaluated.

    Missing runs are trained, unfinished ones resumed, finished (and evaluated) ones reused; forks wait
    for their parent. With `jobs` > 1, independent runs train in that many processes.
    Returns {name: run folder} in the order asked.
    """
    paths = ctx.prepare_data(check_kid=evaluate)
    if evaluate:
        from .evaluate import prepare_classifiers

        for path in paths.values():
            prepare_classifiers(path, ctx.profile["kid"]["extractor"])
    wanted = [ctx.spec(n).key for n in (names or ctx.specs)]
    todo = list(dict.fromkeys(wanted))
    for key in list(todo):  # a fork needs its parent
        parent = _parent(ctx.specs[key])
        if parent and parent not in todo:
            todo.insert(0, parent)
    # parents first, then the longest runs first (so parallel workers finish together)
    todo.sort(key=lambda k: (ctx.specs[k].fork is not None, -_cost(ctx, ctx.specs[k])))
    kid_protocol = ctx.profile["kid"] if evaluate else None
    start, n = time.time(), len(todo)
    reused = [key for key in todo if is_done(ctx.run_dir(key), ctx.config_for(ctx.specs[key]), kid_protocol)]
    for k, key in enumerate(reused, 1):
        print(f"[{k}/{n}] {key}: reused, nothing to train ({ctx.schedule(key)})", flush=True)
    todo = [key for key in todo if key not in reused]
    jobs = max(1, min(jobs, len(todo)))
    executor = executor_from(ctx.executor, ctx.out / "submitit")
    gpus = job_gpus(ctx.device) if jobs > 1 and executor is None else []
    if len(gpus) < jobs and gpus:
        print(f"{jobs} jobs on {len(gpus)} GPUs: round-robin, up to {-(-jobs // len(gpus))} jobs share a GPU",
              flush=True)
    # local processes share this machine's cores; a cluster job has its node's
    local_share = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 and executor is None else None
    threads = ctx.profile.get("threads") or local_share

    def args(key):
        spec = ctx.specs[key]
        parent_dir = str(ctx.run_dir(_parent(spec))) if spec.fork else None
        return (dataclasses.asdict(spec), ctx.config_for(spec).to_dict(), str(ctx.run_dir(key)), parent_dir,
                kid_protocol, ctx.device, threads)

    def report(k, key, done, seconds):
        # pruned as soon as it is done, not after the batch: the paper profile's 23 runs would
        # otherwise hold ~100 checkpoints of 137 MB each at once (a preflight filled a disk so)
        prune_checkpoints(ctx, key)
        print(f"[{len(reused) + k}/{n}] {key}: {done} ({ctx.schedule(key)}) in {seconds:.0f} s "
              f"— {time.time() - start:.0f} s so far", flush=True)

    if jobs == 1 and executor is None:
        for k, key in enumerate(todo, 1):
            print(f"[{len(reused) + k}/{n}] {key} …", flush=True)
            report(k, key, *_build(*args(key)))
    else:
        _ensure_parallel(todo, args, report, jobs, ctx, executor, gpus)
    return {key: ctx.run_dir(key) for key in wanted}


def prune_checkpoints(ctx, key: str) -> list[Path]:
    """Delete a finished run's per-epoch checkpoints but latest.pt and those forks start from.

    A profile's batch would otherwise keep one checkpoint per epoch of every run (the
    quick profile: 3.2 GB instead of 0.6; the paper's: hundreds of GB). Returns the files removed.
    """
    run = Run(ctx.run_dir(key))
    if not run.finished():
        return []  # unfinished: every checkpoint may still matter
    return run.prune(s.fork[1] for s in ctx.specs.values() if _parent(s) == key)


def executor_from(spec: str | None, folder: Path):
    """What trains a profile's runs besides this process: None (local processes) or a
    submitit executor for ``submitit[:key=value,...]``.

    The keys are submitit's (``AutoExecutor.update_parameters``), e.g.
    ``submitit:slurm_partition=gpu,gpus_per_node=1,cpus_per_task=8,timeout_min=2880``
    submits each run as a SLURM job; ``cluster=local`` runs the same path as local
    processes (what the tests use). Job logs go to `folder`.
    """
    if not spec:
        return None
    name, _, options = spec.partition(":")
    pairs = [kv.partition("=") for kv in options.split(",") if kv]
    if name != "submitit" or any(not sep for _, sep, _ in pairs):
        raise ValueError(f"executor {spec!r}: expected 'submitit' or 'submitit:key=value,key=value'")
    try:
        import submitit
    except ImportError:
        raise RuntimeError("executor 'submitit' needs the optional extra: pip install -e '.[slurm]'") from None
    params = {k: _typed(v) for k, _, v in pairs}
    executor = submitit.AutoExecutor(folder=folder, cluster=params.pop("cluster", None))
    executor.update_parameters(**params)  # submitit names any key it does not know
    return executor


def _typed(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def job_gpus(device: str | None) -> list[str]:
    """The GPUs local job processes are spread over (CUDA_VISIBLE_DEVICES values): every visible
    one when `device` is CUDA without an index (or unset, with CUDA present), else none:
    `--device cpu` stays on the CPU and `--device cuda:1` puts every job on that GPU."""
    if device not in (None, "", "auto", "cuda"):
        return []
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [g.strip() for g in visible.split(",")] if visible else [str(k) for k in range(count)]
    return names[:count]


def default_jobs(profile: dict, device: str | None, executor: str | None) -> int:
    """`--jobs` when not given: one local job process per GPU, else the profile's."""
    return (executor is None and len(job_gpus(device))) or profile.get("jobs", 1)


def local_pool(jobs: int, gpus: list[str]):
    """`jobs` spawned processes; with `gpus`, process k sees only GPU k mod len(gpus).

    A process keeps its GPU for every run it trains: CUDA_VISIBLE_DEVICES is set by the
    pool's initializer, before anything in that process touches CUDA, so each job's
    `cuda` is its own card (without it, every job would train on GPU 0)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    if not gpus:
        return ProcessPoolExecutor(jobs, mp_context=spawn)
    slots = spawn.SimpleQueue()
    for k in range(jobs):
        slots.put(gpus[k % len(gpus)])
    return ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_take_gpu, initargs=(slots,))


_placed_on: str | None = None  # the GPU local_pool gave this job process


def _take_gpu(slots) -> None:
    global _placed_on
    _placed_on = os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()


def _ensure_parallel(todo, args, report, jobs, ctx, executor=None, gpus=()):
    """At most `jobs` runs at a time, in local processes (one GPU each, round-robin over
    `gpus`) or as `executor`'s (cluster) jobs."""
    # longest first, a fork as soon as its parent is done: the workers finish about together
    waiting, running, finished, k = sorted(todo, key=lambda key: -_cost(ctx, ctx.specs[key])), [], set(), 0
    with contextlib.nullcontext(executor) if executor is not None else local_pool(jobs, list(gpus)) as pool:
        while waiting or running:
            for key in list(waiting):
                parent = _parent(ctx.specs[key])
                if len(running) < jobs and (parent is None or parent in finished or parent not in todo):
                    waiting.remove(key)
                    running.append((pool.submit(_build if executor is None else _cluster_job, *args(key)), key))
                    print(f"started {key}", flush=True)
            # both futures and submitit jobs answer done(); submitit rate-limits its queue checks
            while not any(job.done() for job, _ in running):
                time.sleep(0.5)
            for job, key in [r for r in running if r[0].done()]:
                running.remove((job, key))
                k += 1
                report(k, key, *job.result())
                finished.add(key)
