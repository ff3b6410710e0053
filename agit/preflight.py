"""The preflight: `agit reproduce --profile paper --smoke`, the paper's path in minutes.

A user with GPUs who starts the paper profile commits days of GPU time to a path that
should not fail on day two. The preflight runs that profile as it is — every run, seed and
fork, every notebook, the KID protocol with Inception, the tables, figures and report —
with each run cut to a few iterations (profiles.SMOKE), and around it:

* `check_data`: each dataset's image counts and sizes against the CycleGAN zips
  (`data.CYCLEGAN_COUNTS`), or that it is a synthetic stand-in (`agit data synth --like`);
* `check_weights`: the Inception weights load through torch-fidelity's own loader and give
  finite 2048-d features;
* `estimate`: from the training steps the runs timed (the `step_seconds` of each epoch row
  of their logs, per stage), the time of each run of the full profile and the total, in
  hours of the device it ran on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .data import CYCLEGAN_COUNTS, CYCLEGAN_SIZE, SPLIT_FOLDERS, list_images
from .run import Run
from .synthetic import stand_in_of


def check_data(ctx) -> list[str]:
    """One line per dataset of the profile: what it is, its counts per folder and image sizes,
    and how they differ from the real set's. A missing dataset says so (01_data fetches it)."""
    from PIL import Image

    lines = []
    for name in ctx.profile["datasets"]:
        root = ctx.dataset_path(name)
        if not all((root / f).is_dir() for f in SPLIT_FOLDERS):
            lines.append(f"{name}: not in {root} yet (01_data fetches it; offline: agit data synth --like {name})")
            continue
        files = {f: list_images(root / f) for f in SPLIT_FOLDERS}
        counts = tuple(len(v) for v in files.values())
        sizes = {Image.open(p).size for v in files.values() for p in v}
        shown = " ".join(f"{f} {n}" for f, n in zip(SPLIT_FOLDERS, counts))
        size = ", ".join(f"{w}×{h}" for w, h in sorted(sizes)[:3]) + (" …" if len(sizes) > 3 else "")
        real, stand_in = CYCLEGAN_COUNTS.get(name), stand_in_of(root)
        if stand_in:
            verdict = f"a synthetic STAND-IN for {stand_in} (agit data synth --like), not the real images"
        elif real is None:
            verdict = "not a CycleGAN set: nothing to compare with"
        else:
            problems = [f"{f} {n} (the zip: {r})" for f, n, r in zip(SPLIT_FOLDERS, counts, real) if n != r]
            if sizes != {(CYCLEGAN_SIZE, CYCLEGAN_SIZE)}:
                problems.append(f"sizes {size} (the zip: {CYCLEGAN_SIZE}×{CYCLEGAN_SIZE})")
            verdict = "as the CycleGAN zip" if not problems else "DIFFERS from the CycleGAN zip: " + "; ".join(problems)
        lines.append(f"{name}: {shown} images, {size} px — {verdict}")
    return lines


def check_weights(ctx) -> str:
    """The KID extractor's state: for Inception, its weights loaded through torch-fidelity's loader
    and run on two images (finite 2048-d features), or what is missing."""
    import torch

    from .features import EXTRACTORS, inception_weights_path

    name = ctx.profile["kid"]["extractor"]
    if name != "inception":
        return f"KID features: {name} (offline, trained on the data; no weights to check)"
    try:
        path = inception_weights_path()
        feats = EXTRACTORS["inception"](None, "cpu")(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    except Exception as err:  # noqa: BLE001 - the preflight reports it; 01_data stops on it
        return f"Inception weights: NOT USABLE: {type(err).__name__}: {err}"
    finite = bool(torch.isfinite(feats).all())
    return (f"Inception weights: {path} ({path.stat().st_size / 2**20:.0f} MiB) loaded by torch-fidelity; "
            f"features {tuple(feats.shape[1:])}, {'finite' if finite else 'NOT FINITE'}")


def _seconds_per_step(run: Run) -> dict[int, float]:
    """Seconds per timed training step, per stage, from the epoch rows of a run's log."""
    rows = [r for r in run.log() if r.get("kind") == "epoch" and r.get("steps_timed")]
    out = {}
    for stage in (1, 2):
        seconds = sum(r["step_seconds"] for r in rows if r["stage"] == stage)
        steps = sum(r["steps_timed"] for r in rows if r["stage"] == stage)
        if steps:
            out[stage] = seconds / steps
    return out


def _full_iterations(ctx, spec) -> int:
    """Iterations per epoch of `spec` on the real dataset (a stand-in's: the real set's counts)."""
    cfg = ctx.config_for(spec)
    like = stand_in_of(cfg.data)
    if like:
        return cfg.iterations_per_epoch(*CYCLEGAN_COUNTS[like][:2])
    return cfg.iterations_per_epoch(*(len(list_images(Path(cfg.data) / f"train{d}")) for d in "AB"))


def _test_images(data: Path, real: bool = False) -> int:
    """Test images of a dataset folder; with `real`, of the real set a stand-in stands in for."""
    like = stand_in_of(data) if real else None
    return sum(CYCLEGAN_COUNTS[like][2:]) if like else sum(len(list_images(data / f)) for f in ("testA", "testB"))


def estimate(smoke_ctx, full_ctx) -> pd.DataFrame:
    """Per run of the full profile: its timed seconds per step in each stage, the iterations it
    trains (forks start at their epoch), and the hours to train and evaluate it at that pace.

    The smoke's runs and the full profile's are the same list in the same order (the switch
    sweep's names differ: their epochs are scaled). A stage a run did not time (a fork after
    the switch) takes the run's other stage's pace. Evaluation: the smoke's measured seconds,
    scaled to the real test sets' size."""
    pairs = list(zip(smoke_ctx.specs.values(), full_ctx.specs.values(), strict=True))
    rows = {}
    for smoke, full in pairs:
        run = Run(smoke_ctx.run_dir(smoke.key))
        pace = _seconds_per_step(run)
        if not pace:
            continue
        cfg = full_ctx.config_for(full)
        start = full.fork[1] if full.fork else 0
        per_epoch = _full_iterations(full_ctx, full)
        steps = {1: per_epoch * max(0, cfg.switch_epoch - start),
                 2: per_epoch * (cfg.epochs - max(start, cfg.switch_epoch))}
        train = sum(n * pace.get(stage, pace.get(3 - stage, math.nan)) for stage, n in steps.items())
        metrics = run.metrics() or {}
        data = Path(smoke_ctx.config_for(smoke).data)
        evaluate = metrics.get("seconds", 0) * _test_images(data, real=True) / max(1, _test_images(data))
        rows[full.key] = {"s/step stage 1": pace.get(1, math.nan), "s/step stage 2": pace.get(2, math.nan),
                          "iterations": steps[1] + steps[2], "train h": train / 3600,
                          "evaluate min": evaluate / 60, "hours": (train + evaluate) / 3600,
                          "schedule": f"{cfg.epochs} ep × {per_epoch} it" + (f", from epoch {start}" if start else "")}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "run"
    return df


def device_name(device: str | None) -> str:
    """What the runs trained on, in words."""
    import torch

    from .distributed import pick_device

    dev = pick_device(device or None)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (cuda)"
    return f"CPU, {torch.get_num_threads()} threads"


def estimate_text(smoke_ctx, full_ctx, jobs: int) -> str:
    """The estimate as the preflight prints it: one line a run, the total, and what it assumes."""
    df = estimate(smoke_ctx, full_ctx)
    if df.empty:
        return "No run timed a training step: no estimate."
    size, full_size = smoke_ctx.profile["config"]["size"], full_ctx.config_for(next(iter(full_ctx.specs.values()))).size
    shown = df.copy()
    for col, digits in (("s/step stage 1", 3), ("s/step stage 2", 3), ("train h", 1), ("evaluate min", 1), ("hours", 1)):
        shown[col] = [f"{v:.{digits}f}" if math.isfinite(v) else "—" for v in df[col]]
    total = df["hours"].sum()
    lines = [f"Estimate for the full {full_ctx.name} profile ({len(df)} runs) on {device_name(smoke_ctx.device)}, "
             f"from the steps the preflight timed at {size} px:", "", shown.to_markdown(), "",
             f"Total: {total:.1f} device-hours; with --jobs {jobs} (one run per device) at least "
             f"{total / jobs:.1f} h of wall time (forks wait for their parent)."]
    if size != full_size:
        lines.append(f"CAUTION: timed at {size} px, not the profile's {full_size}: a step at {full_size} px costs "
                     f"more, by how much depends on the device; this is not the real cost. Run the preflight "
                     f"without --size for that.")
    lines.append("Training steps and evaluation only: data loading beyond what the steps waited for, samples and "
                 "checkpoints are not counted.")
    return "\n".join(lines)


def write_preflight(smoke_ctx, full_ctx, checks: list[str], jobs: int) -> str:
    """`<out>/PREFLIGHT.md` (the checks and the estimate) and `<out>/estimate.json`; returns the estimate's text."""
    text = estimate_text(smoke_ctx, full_ctx, jobs)
    (smoke_ctx.out / "PREFLIGHT.md").write_text("\n".join(["## Preflight", "", *(f"* {c}" for c in checks), "", text, ""]))
    table = estimate(smoke_ctx, full_ctx)
    (smoke_ctx.out / "estimate.json").write_text(json.dumps(json.loads(table.to_json(orient="index")), indent=1))
    return text
