"""Your own images on this machine: time per epoch to train, time and memory to translate a photo.

    python benchmarks/own_images.py          # about 5 minutes on 2 cores -> results/bench/own_images.{json,md}

1. Seconds per training iteration of the `quick` and `official` presets at 128 and 256 px
   (a few iterations of each stage after a warm-up, median), extrapolated to one pass over
   500 images a domain and to each preset's whole schedule. An extrapolation, not a run.
2. Translating one 1024×768 image with each method's `official` networks (random weights:
   the time and memory do not depend on them), each in a fresh process: seconds, the peak
   resident memory of the process, how much translating added to it, and the estimate that
   `agit translate` checks against the free memory before each image.

Each time is taken twice: with all of torch's threads, wall-clock, which other work
on a shared machine inflates; and with one thread, its CPU time, which other work
hardly changes (several threads would count their spin-waits as CPU time too). The
load average before and after is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import batch, make_trainer  # benchmarks/bench.py

from agit import preset
from agit.synthetic import make_synthetic

IMAGES_PER_DOMAIN = 500


def timed(fn, reps: int) -> tuple[float, float]:
    """Median (wall seconds with all threads, CPU seconds with one thread) of `fn()`, each after a warm-up call."""
    threads = torch.get_num_threads()
    out = []
    for n, clock in ((threads, time.perf_counter), (1, time.process_time)):
        torch.set_num_threads(n)
        fn()
        times = []
        for _ in range(reps):
            start = clock()
            fn()
            times.append(clock() - start)
        out.append(sorted(times)[reps // 2])
    torch.set_num_threads(threads)
    return tuple(out)


def epoch_times(data: Path, reps: int) -> list[dict]:
    rows = []
    for name in ("quick", "official"):
        cfg = preset(name)
        stage1 = cfg.switch_epoch / cfg.epochs  # share of the schedule in stage 1
        for size in (128, 256):
            walls, cpus = [], []
            for stage2 in (False, True):
                trainer = make_trainer(data, size, stage2, preset_name=name)
                s, t = batch(trainer, cfg.batch_size)
                wall, cpu = timed(lambda: trainer.train_step(s, t), reps)
                walls.append(wall)
                cpus.append(cpu)
            step = stage1 * walls[0] + (1 - stage1) * walls[1]
            cpu = stage1 * cpus[0] + (1 - stage1) * cpus[1]
            per_pass = IMAGES_PER_DOMAIN // cfg.batch_size
            per_epoch = cfg.iters_per_epoch or per_pass
            rows.append(dict(preset=name, size=size, batch=cfg.batch_size, step_s_stages=walls, cpu_s_stages=cpus,
                             step_s=step, cpu_s=cpu, iters_per_pass=per_pass, pass_min=step * per_pass / 60,
                             pass_cpu_min=cpu * per_pass / 60, iters_per_epoch=per_epoch, epochs=cfg.epochs,
                             schedule_h=step * per_epoch * cfg.epochs / 3600,
                             schedule_cpu_h=cpu * per_epoch * cfg.epochs / 3600))
            print(f"{name} {size} px: {step:.2f} s/it, {cpu:.2f} CPU s/it", flush=True)
    return rows


TRANSLATE = """
import json, time, torch
from agit import build_model, preset
from agit.translate import bytes_per_pixel, translate_image

def status(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024

torch.manual_seed(0)
model = build_model(preset("official", method={method!r})).eval()
x = torch.rand(1, 3, {height}, {width}) * 2 - 1
translate_image(model, x[..., :64, :64])  # warm-up: one-off allocations, oneDNN kernels
open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from here
before = status("VmRSS")
times = {{}}
for threads, clock in ((torch.get_num_threads(), time.perf_counter), (1, time.process_time)):
    torch.set_num_threads(threads)
    runs = []
    for _ in range({reps}):
        start = clock()
        translate_image(model, x)
        runs.append(clock() - start)
    times[threads == 1] = sorted(runs)[len(runs) // 2]
print(json.dumps(dict(seconds=times[False], cpu_seconds=times[True], rss_before=before, peak=status("VmHWM"),
                      estimate=bytes_per_pixel(model) * x.shape[-2] * x.shape[-1])))
"""


def translate_cost(method: str, height: int = 768, width: int = 1024, reps: int = 2) -> dict:
    code = TRANSLATE.format(method=method, height=height, width=width, reps=reps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(method=method, size=f"{width}×{height}", added=r["peak"] - r["rss_before"])
    r["added_per_estimate"] = r["added"] / r["estimate"]
    print(f"translate {method} {width}×{height}: {r['seconds']:.2f} s ({r['cpu_seconds']:.2f} CPU s), "
          f"peak {r['peak'] / 2**20:.0f} MiB", flush=True)
    return r


def markdown(r: dict) -> str:
    load = f"load average {r['load_before']:.1f} before, {r['load_after']:.1f} after"
    lines = [f"Machine: {r['machine']}, torch {r['torch']}, {r['threads']} threads; {load}.", "",
             f"Training, one pass over {IMAGES_PER_DOMAIN} images a domain, extrapolated from the median of "
             f"{r['reps']} timed iterations of each stage after a warm-up (stages weighted by the schedule). "
             f"Wall: as measured with {r['threads']} threads, under the load above; CPU: one thread's CPU time "
             "(what one free core would take):", "",
             "| preset | size | batch | s / iteration (wall, CPU) | iterations a pass | minutes a pass (wall, CPU) "
             "| preset's schedule | hours (wall, CPU) |", "|---|---|---|---|---|---|---|---|"]
    for e in r["epochs"]:
        lines.append(f"| {e['preset']} | {e['size']} | {e['batch']} | {e['step_s']:.2f}, {e['cpu_s']:.2f} "
                     f"| {e['iters_per_pass']} | {e['pass_min']:.1f}, {e['pass_cpu_min']:.1f} "
                     f"| {e['epochs']} epochs × {e['iters_per_epoch']} it | "
                     f"{e['schedule_h']:.1f}, {e['schedule_cpu_h']:.1f} |")
    lines += ["", "Translating one 1024×768 image, `official` networks, a fresh process each:", "",
              "| method | seconds (wall, 1-thread CPU) | process peak (MiB) | added by translating (MiB) | estimate (MiB) "
              "| added / estimate |", "|---|---|---|---|---|---|"]
    for t in r["translate"]:
        lines.append(f"| {t['method']} | {t['seconds']:.2f}, {t['cpu_seconds']:.2f} | {t['peak'] / 2**20:.0f} "
                     f"| {t['added'] / 2**20:.0f} | {t['estimate'] / 2**20:.0f} | {t['added_per_estimate']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--out", default="results/bench")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = make_synthetic(tempfile.mkdtemp(), "bench", size=256, n_train=8, n_test=2)
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "reps": args.reps, "load_before": os.getloadavg()[0],
              "translate": [translate_cost(m) for m in ("aggan", "cyclegan", "ra", "unit")],
              "epochs": epoch_times(data, args.reps), "load_after": os.getloadavg()[0]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "own_images.json").write_text(json.dumps(result, indent=1))
    (out / "own_images.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
