"""Speed and memory of one AGGAN iteration on this machine, against the plain step and the matmul peak.

Everything is measured in this run: the float32 matmul peak, seconds per full
iteration (both directions, G+A+D updates, stage 1 and stage 2) of the official
networks at 64/128/256 px for agit's step and for the same step written the plain
way, translate throughput, and the peak RSS of a 256-px training process; then
each opt-in optimisation against the default step of the quick preset: torch.compile
(its compile time apart, from an empty compile cache), bf16/fp16 autocast (on CUDA
only), and the cached pre-resized images against decoding each file per item.
What is compared is timed interleaved (agit step, plain step, matmul: A B C A B C …,
timing.py), reported as min / median / max, and a run whose spread shows a busy machine
is flagged. Writes results/bench/bench.json (flat keys) and bench.md.
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

# An empty compile cache: the compile time reported is what a first run pays.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="agit-bench-inductor-"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from agit import preset  # noqa: E402
from agit.synthetic import make_synthetic  # noqa: E402
from agit.train import Trainer  # noqa: E402
from timing import busy_note, busy_warnings, interleaved  # noqa: E402

SIZES = (64, 128, 256)


MATMUL_N = 2048


def matmul():
    """A float32 GEMM (2 n^3 FLOPs) to time beside the steps: the ceiling a conv net could approach."""
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    return lambda: a @ b


def gflops_of_matmul(seconds: float) -> float:
    return 2 * MATMUL_N**3 / seconds / 1e9


def record(out: dict, key: str, stats: dict) -> float:
    """stats' min / median / max under key_min, key (the median), key_max; returns the median."""
    out.update({f"{key}_min": stats["min"], key: stats["median"], f"{key}_max": stats["max"]})
    return stats["median"]


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def plain_step(trainer: Trainer, s, t):
    """The released code's iteration written the plain way: every quantity recomputed where it is
    used, D's parameters not excluded from G's backward, zero-filled grads, per-tensor Adam."""
    m, stage = trainer.model, trainer.stage
    opts = trainer.plain_opts

    def g_loss(direction):
        x = s if direction == "s2t" else t
        fake, mask = m.fake_for_d(m.translate(x, direction), stage)
        pred = m.judge(direction)(m.d_input(fake, mask, stage), norm=not stage.d_masked)
        cyc = sum(m.cycle_loss(y, m.cycle(y, d)) for y, d in ((s, "s2t"), (t, "t2s")))
        return F.mse_loss(pred, torch.ones_like(pred)) + cyc

    def d_loss(direction):
        x, real = (s, t) if direction == "s2t" else (t, s)
        with torch.no_grad():
            fwd = m.translate(x, direction)
            real_att = m.attention(real, "t2s" if direction == "s2t" else "s2t")
        fake, mask = m.fake_for_d(fwd, stage)
        fake, mask = trainer.updates.pools[direction].query(fake, mask)
        return m.discriminator_loss(direction, real, real_att, fake, mask, stage)

    for direction, g, d in (("s2t", "g_s2t", "d_t"), ("t2s", "g_t2s", "d_s")):
        for o in opts.values():
            o.zero_grad(set_to_none=False)
        g_loss(direction).backward()
        opts[g].step()
        opts[d].zero_grad(set_to_none=False)
        d_loss(direction).backward()
        opts[d].step()


def make_trainer(data: Path, size: int | None, stage2: bool, preset_name: str = "official", **overrides) -> Trainer:
    sized = {"size": size} if size else {}  # None: the preset's
    trainer = Trainer(preset(preset_name, data=str(data), **sized, **overrides), Path(tempfile.mkdtemp()))
    if stage2:
        trainer.set_epoch(trainer.cfg.switch_epoch)
    trainer.plain_opts = {
        k: torch.optim.Adam(o.param_groups[0]["params"], lr=trainer.cfg.lr, betas=(0.5, 0.999), foreach=False)
        for k, o in trainer.updates.opt.items()
    }
    return trainer


def batch(trainer: Trainer, n: int = 1):
    a, b = trainer.domains
    return (torch.stack([a[i]["image"] for i in range(n)]).to(trainer.device),
            torch.stack([b[i]["image"] for i in range(n)]).to(trainer.device))


def bench_size(data: Path, size: int, reps: int) -> dict:
    """agit's step, the plain step and the matmul peak at `size`, interleaved, stage 1 and stage 2."""
    out, timings = {}, {}
    for stage in (1, 2):
        ours = make_trainer(data, size, stage == 2)
        plain = make_trainer(data, size, stage == 2)
        plain.model.load_state_dict(ours.model.state_dict())
        s, t = batch(ours)
        got = interleaved({"step": lambda: ours.train_step(s, t), "plain": lambda: plain_step(plain, s, t),
                           "matmul": matmul()}, reps)
        record(out, f"step_s_{size}_stage{stage}", got["step"])
        record(out, f"plain_step_s_{size}_stage{stage}", got["plain"])
        out[f"peak_gflops_{size}_stage{stage}"] = gflops_of_matmul(got["matmul"]["median"])
        out[f"gflop_per_step_{size}_stage{stage}"] = flops(lambda: ours.train_step(s, t)) / 1e9
        timings.update({f"{name} {size} px stage {stage}": v for name, v in got.items()})
    for key in ("step_s", "plain_step_s", "gflop_per_step", "peak_gflops"):
        out[f"{key}_{size}"] = (out[f"{key}_{size}_stage1"] + out[f"{key}_{size}_stage2"]) / 2
    for key in ("step_s", "plain_step_s"):
        for end in ("min", "max"):
            out[f"{key}_{size}_{end}"] = (out[f"{key}_{size}_stage1_{end}"] + out[f"{key}_{size}_stage2_{end}"]) / 2
    out[f"gflops_{size}"] = out[f"gflop_per_step_{size}"] / out[f"step_s_{size}"]
    out[f"speedup_{size}"] = out[f"plain_step_s_{size}"] / out[f"step_s_{size}"]
    out[f"peak_frac_{size}"] = out[f"gflops_{size}"] / out[f"peak_gflops_{size}"]
    out[f"busy_{size}"] = busy_warnings(timings, {f"agit step {size} px": out[f"peak_frac_{size}"]})
    return out


def bench_options(data: Path, reps: int) -> dict:
    """The opt-in fields against the default step on the `quick` preset (its own size and batch) with
    one thread: what each of the quick profile's two parallel jobs trains on a CPU. Stage 1 and 2
    averaged; each stage's first step compiles (its graphs differ)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _bench_options(data, reps)
    finally:
        torch.set_num_threads(threads)


def _bench_options(data: Path, reps: int) -> dict:
    variants = {"default": {}, "compiled": dict(compile=True)}
    if torch.cuda.is_available():  # a CPU without bf16/fp16 units only slows down under autocast
        variants.update(bf16=dict(precision="bf16"), fp16=dict(precision="fp16"))
    out, steps, firsts, timings = {}, {name: [] for name in variants}, {name: 0.0 for name in variants}, {}
    peaks = []
    for stage2 in (False, True):
        trainers = {name: make_trainer(data, None, stage2, preset_name="quick", **o) for name, o in variants.items()}
        s, t = batch(trainers["default"], trainers["default"].cfg.batch_size)
        for name, trainer in trainers.items():  # the first step compiles (each stage's graphs differ)
            start = time.perf_counter()
            trainer.train_step(s, t)
            firsts[name] += time.perf_counter() - start
        got = interleaved({**{name: (lambda tr=tr: tr.train_step(s, t)) for name, tr in trainers.items()},
                           "matmul": matmul()}, reps)
        for name in variants:
            steps[name].append(got[name])
        peaks.append(gflops_of_matmul(got["matmul"]["median"]))
        timings.update({f"quick {name} stage {2 if stage2 else 1}": v for name, v in got.items()})
        if not stage2:
            out["quick_gflop_per_step"] = flops(lambda: trainers["default"].train_step(s, t)) / 1e9
    for name in variants:
        record(out, f"quick_{name}_step_s", {k: sum(st[k] for st in steps[name]) / 2 for k in ("min", "median", "max")})
        out[f"quick_{name}_first_step_s"] = firsts[name]
    out["peak_gflops_1thread"] = sum(peaks) / 2
    out["compile_s"] = out["quick_compiled_first_step_s"] - 2 * out["quick_compiled_step_s"]
    out["busy_options"] = busy_warnings(timings)
    return out


def data_item_ms(data: Path, size: int = 256, n: int = 64) -> dict:
    """Milliseconds per augmented training item: decoding the file each time vs the cached copy."""
    from agit.data import DomainFolder

    folder = data / "trainA"
    start = time.perf_counter()
    cached = DomainFolder(folder, size, augment=True, cache=True)
    build = time.perf_counter() - start
    out = {"cache_build_s": build, "cache_images_n": len(cached), "data_size": size}
    for key, ds in (("data_ms", DomainFolder(folder, size, augment=True)), ("data_ms_cached", cached)):
        start = time.perf_counter()
        for i in range(n):
            ds[(i % len(ds), i)]
        out[key] = (time.perf_counter() - start) / n * 1e3
    return out


def translate_throughput(data: Path, size: int = 256, n: int = 8, reps: int = 3) -> float:
    trainer = make_trainer(data, size, False)
    model = trainer.model.eval()
    x, _ = batch(trainer, n)
    with torch.no_grad():
        seconds = interleaved({"translate": lambda: model.translate(x, "s2t")}, reps)["translate"]["median"]
    return n / seconds


def rss_of_training(data: Path, size: int = 256, steps: int = 2, recompute: bool = False) -> float:
    """Peak resident memory (MB) of a fresh process that trains `steps` iterations at `size` px."""
    code = (
        "import sys, tempfile, torch\n"
        "from agit import preset\nfrom agit.train import Trainer\n"
        f"t = Trainer(preset('official', data={str(data)!r}, size={size}, recompute_activations={recompute}),"
        " tempfile.mkdtemp())\n"
        "a, b = t.domains\n"
        f"for i in range({steps}):\n"
        "    t.train_step(a[i]['image'][None], b[i]['image'][None])\n"
        f"{PRINT_PEAK}\n"
    )
    return _peak_mb(code)


def rss_of_import() -> float:
    return _peak_mb(f"import torch\n{PRINT_PEAK}")


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child
# would report this (large) benchmark process's peak instead of its own.
PRINT_PEAK = "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"


def _peak_mb(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024  # kB


def markdown(r: dict) -> str:
    lines = [
        f"Machine: {r['machine']}, {r['threads']} threads, torch {r['torch']}; float32 matmul peak measured "
        f"in this run, interleaved with each size's steps.",
        "",
        "| size | agit step (s): median (min–max) | plain step (s): median (min–max) | speed-up | GFLOP/step "
        "| GFLOP/s | matmul GFLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in r["sizes"]:
        lines.append(
            f"| {s} | {r[f'step_s_{s}']:.3f} ({r[f'step_s_{s}_min']:.3f}–{r[f'step_s_{s}_max']:.3f}) "
            f"| {r[f'plain_step_s_{s}']:.3f} ({r[f'plain_step_s_{s}_min']:.3f}–{r[f'plain_step_s_{s}_max']:.3f}) "
            f"| {r[f'speedup_{s}']:.2f}x | {r[f'gflop_per_step_{s}']:.1f} | {r[f'gflops_{s}']:.1f} "
            f"| {r[f'peak_gflops_{s}']:.1f} | {100 * r[f'peak_frac_{s}']:.0f} % |")
    lines += ["", busy_note([w for s in r["sizes"] for w in r[f"busy_{s}"]] + r.get("busy_options", []))]
    if "translate_img_s" not in r:
        return "\n".join(lines) + "\n"
    lines += ["", f"Translate throughput (256 px, batch 8): {r['translate_img_s']:.2f} images/s.",
              f"Peak RSS of a 256-px training process (batch 1): {r['rss_mb_256']:.0f} MB with "
              f"`recompute_activations` ({r['step_s_256_recompute']:.2f} s/it), "
              f"{r['rss_mb_256_default']:.0f} MB without"
              + (f" ({r['step_s_256']:.2f} s/it); " if "step_s_256" in r else "; ") +
              f"importing torch alone takes {r['rss_mb_import']:.0f} MB.",
              "Step times: median (min–max) of the interleaved rounds after a warm-up call each, averaged over stage 1 and "
              "stage 2; official networks, batch 1. FLOPs counted with torch.utils.flop_counter.",
              "", f"Opt-in config fields on the `quick` preset ({preset('quick').size} px, batch "
              f"{preset('quick').batch_size}, 1 thread: each of the quick "
              f"profile's two parallel jobs), {r['quick_gflop_per_step']:.1f} GFLOP a step:", "",
              "| config | step (s): median (min–max) | vs default | % of 1-thread matmul peak | one-off cost |",
              "|---|---|---|---|---|"]
    default = r["quick_default_step_s"]
    for name, field, cost in (("default", "default", "none"),
                              ("compiled", "`compile=true`", f"compile {r['compile_s']:.0f} s (empty cache)"),
                              ("bf16", "`precision=bf16`", "none"), ("fp16", "`precision=fp16`", "none")):
        if f"quick_{name}_step_s" in r:
            step = r[f"quick_{name}_step_s"]
            frac = r["quick_gflop_per_step"] / step / r["peak_gflops_1thread"]
            lines.append(f"| {field} | {step:.3f} ({r[f'quick_{name}_step_s_min']:.3f}–{r[f'quick_{name}_step_s_max']:.3f}) "
                         f"| {default / step:.2f}x | {100 * frac:.0f} % | {cost} |")
    lines += ["", f"Training items ({r['data_size']} px crop, flip; PNG files): {r['data_ms']:.2f} ms each "
              f"decoding and resizing the file, {r['data_ms_cached']:.2f} ms from `cache_images` (built once in {r['cache_build_s']:.2f} s "
              f"for {r['cache_images_n']} images)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--reps", type=int, default=3, help="timed rounds (two at 256 px)")
    p.add_argument("--steps-only", action="store_true",
                   help="only the step table (agit, plain, matmul interleaved): a quick check of the flag")
    p.add_argument("--out", default="results/bench")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = make_synthetic(tempfile.mkdtemp(), "bench", size=max(args.sizes), n_train=8, n_test=2)
    result = {"machine": f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)",
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "sizes": args.sizes}
    for size in args.sizes:
        result.update(bench_size(data, size, min(2, args.reps) if size >= 256 else args.reps))  # 256 px: ~20 s a step
        print(f"{size} px: {result[f'step_s_{size}']:.3f} s/it (plain {result[f'plain_step_s_{size}']:.3f})",
              flush=True)
    if args.steps_only:
        return write(result, Path(args.out))
    result["translate_img_s"] = translate_throughput(data, max(args.sizes))
    # The default keeps every activation; recompute_activations trades a forward pass for memory.
    result["rss_mb_256_default"] = rss_of_training(data, 256)
    result["rss_mb_256"] = rss_of_training(data, 256, recompute=True)
    lean = make_trainer(data, 256, False, recompute_activations=True)
    s, t = batch(lean)
    result["step_s_256_recompute"] = interleaved({"step": lambda: lean.train_step(s, t)}, 1)["step"]["median"]
    result["rss_mb_import"] = rss_of_import()
    result.update(bench_options(data, args.reps))
    result.update(data_item_ms(data, max(args.sizes)))
    write(result, Path(args.out))


def write(result: dict, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    (out / "bench.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
