"""The paper's setting on one GPU, measured in at most 8 minutes: `make gpu-check`.

On CUDA it measures, in this run, and writes results/bench/gpu.{json,md} with the card's name:
  * the official networks' full iteration at 256 px, batch 1 (both directions, G+A+D, stage 1
    and 2) in fp32, bf16 and compiled, timed interleaved with a float32 matmul (timing.py:
    A B C D A B C D …; min / median / max; a busy GPU is flagged);
  * the peak GPU memory of each, and translate throughput (256 px, batch 16);
  * a short official run on a 256-px synthetic stand-in (agit.synthetic, with true masks):
    its attention IoU after `--iterations` iterations;
  * with two GPUs or more, the same short run data-parallel on 2 GPUs (torchrun), its seconds
    per iteration against one GPU's.
On a machine without CUDA it stops with one line. `--cpu-dry-run` runs the same code at a tiny
size on the CPU, to check the script itself where no GPU is lent (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from agit import preset
from agit.evaluate import evaluate_run
from agit.synthetic import make_synthetic
from agit.train import Trainer
from timing import busy_note, busy_warnings, interleaved

VARIANTS = {"fp32": {}, "bf16": dict(precision="bf16"), "compiled": dict(compile=True)}


def official(data: Path, size: int, folder: Path, **overrides) -> Trainer:
    return Trainer(preset("official", data=str(data), size=size, **overrides), folder)


def step_times(data: Path, size: int, rounds: int, device: str, variants: dict) -> dict:
    """Each variant's iteration (stage 1 and 2), interleaved with a float32 matmul; its peak memory."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    n = 8192 if device == "cuda" else 512
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out, timings = {}, {}
    for stage in (1, 2):
        trainers = {name: official(data, size, Path(tempfile.mkdtemp()), **o) for name, o in variants.items()}
        for tr in trainers.values():
            tr.set_epoch(tr.cfg.switch_epoch if stage == 2 else 0)
        a_images, b_images = trainers["fp32"].domains
        s, t = a_images[0]["image"][None].to(device), b_images[0]["image"][None].to(device)
        for name, tr in trainers.items():  # first call (compiles), then the peak memory of a step
            start = time.perf_counter()
            tr.train_step(s, t)
            out[f"first_step_s_{name}_stage{stage}"] = time.perf_counter() - start
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                tr.train_step(s, t)
                out[f"peak_mb_{name}_stage{stage}"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        got = interleaved({**{name: (lambda tr=tr: tr.train_step(s, t)) for name, tr in trainers.items()},
                           "matmul": lambda: a @ b}, rounds, sync)
        for name, stats in got.items():
            out.update({f"{name}_stage{stage}_{k}": v for k, v in stats.items()})
            timings[f"{name} stage {stage}"] = stats
        out[f"matmul_tflops_stage{stage}"] = 2 * n**3 / got["matmul"]["median"] / 1e12
        del trainers
    out["busy"] = busy_warnings(timings)
    return out


def translate_throughput(data: Path, size: int, device: str, n: int = 16, rounds: int = 5) -> float:
    model = official(data, size, Path(tempfile.mkdtemp())).model.eval()
    x = torch.randn(n, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else None
    with torch.no_grad():
        seconds = interleaved({"translate": lambda: model.translate(x, "s2t")}, rounds, sync)["translate"]["median"]
    return n / seconds


def short_run_settings(iterations: int) -> dict:
    """The official schedule's shape in `iterations`: 10 epochs, stage 2 from the 3rd (the official
    30 of 100), the decay over the last half."""
    return dict(epochs=10, iters_per_epoch=max(1, iterations // 10), switch_epoch=3, decay_epoch=5)


def short_run(data: Path, size: int, iterations: int, device: str) -> dict:
    """Train the official preset on the stand-in and score its attention against the true masks."""
    folder = Path(tempfile.mkdtemp()) / "run"
    start = time.perf_counter()
    official(data, size, folder, **short_run_settings(iterations)).fit(progress=False)
    seconds = time.perf_counter() - start
    metrics = evaluate_run(folder, kid="none", device=device)
    return {"short_run_iterations": iterations, "short_run_s": seconds, "short_run_s_per_it": seconds / iterations,
            "iou_s2t": metrics["iou_s2t"], "iou_t2s": metrics["iou_t2s"]}


def ddp_run(data: Path, size: int, iterations: int) -> dict:
    """The short run on 2 GPUs (torchrun, one rank each): wall seconds per iteration, start-up included."""
    sets = [f"--set={k}={v}" for k, v in {**short_run_settings(iterations), "size": size}.items() if k != "epochs"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "agit", "train",
           "--data", str(data), "--preset", "official", "--epochs", "10", *sets,
           "--out", str(Path(tempfile.mkdtemp()) / "ddp")]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return {"ddp2_s": seconds, "ddp2_s_per_it": seconds / iterations}


def markdown(r: dict) -> str:
    lines = [f"GPU check on {r['device_name']} (torch {r['torch']}, CUDA {r['cuda']}): official networks, "
             f"{r['size']} px, batch 1, {r['rounds']} interleaved rounds; figures measured in this run "
             f"({r['wall_s']:.0f} s in all).", "",
             "| variant | stage | step (ms): median (min–max) | first step (s) | peak memory (MB) |",
             "|---|---|---|---|---|"]
    for name in r["variants"]:
        for stage in (1, 2):
            k = f"{name}_stage{stage}"
            lines.append(f"| {name} | {stage} | {1e3 * r[f'{k}_median']:.1f} ({1e3 * r[f'{k}_min']:.1f}–"
                         f"{1e3 * r[f'{k}_max']:.1f}) | {r[f'first_step_s_{k}']:.1f} | "
                         f"{r.get(f'peak_mb_{k}', float('nan')):.0f} |")
    lines += ["", f"float32 matmul, interleaved: {r['matmul_tflops_stage1']:.1f} / {r['matmul_tflops_stage2']:.1f} "
              f"TFLOP/s (beside stage 1 / stage 2).", busy_note(r["busy"]), "",
              f"Translate throughput ({r['size']} px, batch 16): {r['translate_img_s']:.1f} images/s.",
              f"Short official run on the {r['size']}-px synthetic stand-in: {r['short_run_iterations']} iterations "
              f"in {r['short_run_s']:.0f} s ({r['short_run_s_per_it']:.3f} s/it, sampling and checkpoints "
              f"included); attention IoU at τ {r['iou_s2t']:.2f} (s→t) / {r['iou_t2s']:.2f} (t→s)."]
    if "ddp2_s_per_it" in r:
        lines.append(f"DDP on 2 GPUs, the same run: {r['ddp2_s_per_it']:.3f} s/it, start-up included "
                     f"(1 GPU: {r['short_run_s_per_it']:.3f}).")
    else:
        lines.append("DDP on 2 GPUs: not measured (one GPU visible).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds")
    p.add_argument("--iterations", type=int, default=1000, help="of the short official run")
    p.add_argument("--out", default="results/bench")
    p.add_argument("--cpu-dry-run", action="store_true", help="the script's code at 32 px on the CPU, bf16 only")
    args = p.parse_args(argv)
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): run make gpu-check on a GPU",
              file=sys.stderr)
        return 2
    device, size = ("cpu", 32) if dry else ("cuda", 256)
    variants = {k: v for k, v in VARIANTS.items() if k != "compiled"} if dry else VARIANTS
    start = time.perf_counter()
    torch.manual_seed(0)
    data = make_synthetic(tempfile.mkdtemp(), "gpu-check", size=size, n_train=64, n_test=32, seed=0)
    r = {"device_name": "CPU (dry run)" if dry else torch.cuda.get_device_name(), "torch": torch.__version__,
         "cuda": torch.version.cuda, "size": size, "rounds": args.rounds, "variants": list(variants)}
    r.update(step_times(data, size, args.rounds, device, variants))
    r["translate_img_s"] = translate_throughput(data, size, device)
    r.update(short_run(data, size, args.iterations, device))
    if not dry and torch.cuda.device_count() >= 2:
        r.update(ddp_run(data, size, args.iterations))
    r["wall_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(r, indent=1))
    (out / "gpu.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
