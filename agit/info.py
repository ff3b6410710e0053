"""What a run folder is, in words: `agit info RUN` and the RUN/README.md written when training ends.

A run handed to someone else should say what it is without this package's source
at hand: the method and settings, the data it learned from and how many images,
how much of its schedule it has done, its seed, its metrics if evaluated, and
the code that trained it. Markdown, so it reads in a terminal and on GitHub alike.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import __version__
from .config import Config, preset, schedule_text
from .data import SPLIT_FOLDERS, DataError, list_images
from .released import source_domain
from .run import Run

# metrics.json keys in words (agit.metrics has their definitions).
METRIC_NAMES = {
    "cf_kid": "KID ×100 to the true translations", "cf_kid_std": "its std over subsets",
    "cf_psnr": "PSNR to the true translations, dB", "texture": "texture distance to the true translations",
    "object_target": "objects judged the target's, share", "iou": "attention IoU at τ",
    "iou_sweep": "attention IoU over τ 0.1-0.9", "bg_psnr": "background PSNR (input vs output), dB",
    "empty_att": "attention on object-free images", "fg_change": "object change, mean absolute on [0, 1]",
    "kid": "KID ×100 (paper: mean of vs target and vs source)", "kid_std": "its std over subsets",
    "kid_target": "KID ×100 vs the target test set", "kid_source": "KID ×100 vs the source test set",
    "att_mean": "mean attention", "changed": "share of pixels changed",
}
PROVENANCE = "provenance.json"  # the code that last trained the run, written with README.md


def provenance() -> dict:
    """This package's version and, in a git checkout, its commit: `-dirty` if tracked files other
    than results/ differ from it (`make reproduce` rewrites the committed results while it
    trains, which says nothing about the code), and `dirty` lists those files."""
    source = Path(__file__).resolve().parent.parent
    commit, dirty = None, []
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no",
                                    "--", ".", ":(exclude)results"],
                                   capture_output=True, text=True, timeout=10).stdout.split("\n")
            dirty = [line[3:] for line in dirty if line.strip()]
            commit = head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):  # no git here: an installed package
        pass
    import torch

    return {"agit": __version__, "commit": commit, "dirty": dirty[:20], "torch": torch.__version__,
            "python": platform.python_version(), "written": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_run_readme(run) -> Path | None:
    """RUN/README.md, and RUN/provenance.json recording the code that trained the run (called as
    training ends). A README.md of the user's is kept, and said so: returns None then."""
    run = Run(run)
    run.write_provenance(provenance())
    if run.write_readme(run_summary(run)):
        return run.readme_file
    print(f"{run.readme_file} is not agit's: kept as it is (agit info {run} prints the run's summary)", file=sys.stderr)
    return None


def _image_counts(data: Path) -> dict[str, int]:
    counts = {}
    for split in SPLIT_FOLDERS:
        try:
            counts[split] = len(list_images(data / split))
        except DataError:  # missing or empty
            pass
    return counts


def _method(cfg: Config) -> str:
    if cfg.method == "aggan":
        return f"AGGAN (attention-guided, Mejjati et al. 2018), variant `{cfg.variant}`"
    return f"`{cfg.method}` (Table 1 baseline)"


def _changed(cfg: Config) -> str:
    """The fields that differ from the preset (and method defaults) the run names."""
    base = preset(cfg.preset, method=cfg.method).to_dict()
    diff = {k: v for k, v in cfg.to_dict().items() if k not in ("data", "extra", "variant") and base.get(k) != v}
    return ", ".join(f"`{k}={v}`" for k, v in sorted(diff.items())) or "none"


def _schedule(run: Run, cfg: Config, counts: dict) -> str:
    """Done and planned; a stage the run has not reached says so (`schedule_text`)."""
    per_epoch = (cfg.iterations_per_epoch(counts["trainA"], counts["trainB"])
                 if "trainA" in counts and "trainB" in counts else cfg.iters_per_epoch)
    state = run.progress()
    if state is None:
        return f"not started (no checkpoint); planned {schedule_text(cfg, per_epoch, reached=0)}"
    epoch, step = state
    done = f"{epoch} of {cfg.epochs} epochs done" + (f" and {step} iterations of the next" if step else "")
    done = f"finished ({done})" if epoch >= cfg.epochs else done
    return f"{done}; planned {schedule_text(cfg, per_epoch, reached=epoch + (step > 0))}"


def _metrics(run: Run) -> list[str]:
    metrics = run.metrics()
    if metrics is None:
        return [f"Not evaluated yet: `agit evaluate --run {run}` writes `metrics.json`."]
    rows = {}
    for key, value in metrics.items():
        name, _, direction = key.rpartition("_")
        if direction in ("s2t", "t2s") and isinstance(value, (int, float)):
            rows.setdefault(name, {})[direction] = value
    lines = [f"From `metrics.json` (KID ×100 with the `{metrics.get('kid_extractor', '?')}` features; "
             f"τ = {metrics.get('tau', '?')}; data `{metrics.get('data', '?')}`). KID's estimator is unbiased, "
             f"so a KID near 0 may come out slightly negative: read it as 0.", "",
             "| metric | key | s2t | t2s |", "|---|---|---|---|"]
    number = lambda v: "—" if v is None or v != v else f"{v:.4g}"  # noqa: E731  (v != v: NaN)
    order = list(METRIC_NAMES)
    lines += [f"| {METRIC_NAMES.get(name, name)} | `{name}` | {number(v.get('s2t'))} | {number(v.get('t2s'))} |"
              for name, v in sorted(rows.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))]
    return lines


# what `agit info` says of each file a run folder may hold (an imported run has no log or samples)
RUN_FILE_NOTES = {"config.json": " (every setting)", "log.jsonl": " (losses per iteration, attention per epoch)",
                  "samples/": " (input | attention | output per epoch)", "checkpoints/latest.pt": ""}


def _imported(source: dict) -> str:
    """The weights' row of an `agit import-tf` run: which file, and which of its domains is S."""
    epochs = source.get("epochs_trained")
    return (f"| weights | imported from `{source['checkpoint']}` ({source['format']}"
            + (f", {epochs} epochs" if epochs is not None else "")
            + f"); its domain {source.get('source_domain', source_domain(False))} is the source S |")


def run_summary(run) -> str:
    """The run, in Markdown: what RUN/README.md holds and `agit info RUN` prints."""
    run = Run(run)
    saved = run.config_dict()
    if saved is None:
        raise FileNotFoundError(run.not_a_run())
    cfg = Config.from_dict(saved)
    data = Path(cfg.data)
    counts = _image_counts(data)
    data_text = (f"`{cfg.data}`: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " images"
                 if counts else f"`{cfg.data}` (not found from {Path.cwd()})")
    made = json.loads((run.path / PROVENANCE).read_text()) if (run.path / PROVENANCE).is_file() else None
    code = (f"agit {made['agit']}, commit `{made['commit'] or 'unknown (not a git checkout)'}`"
            + (f" (changed: {', '.join(f'`{f}`' for f in made['dirty'])})" if made.get("dirty") else "")
            + f", torch {made['torch']}, Python {made['python']} (written {made['written']})"
            if made else "not recorded (written when training ends)")
    lines = [
        f"# Run `{run.path.name}`", "",
        "| | |", "|---|---|",
        f"| method | {_method(cfg)} |",
        f"| preset | `{cfg.preset}`; changed: {_changed(cfg)} |",
        f"| data | {data_text} |",
        f"| images | {cfg.size} px (resized to {cfg.load_size}, random crop and flip in training) |",
        f"| schedule | {_schedule(run, cfg, counts)} |",
        f"| seed | {cfg.seed} |",
        f"| code | {code} |",
        *([_imported(made["imported_from"])] if made and "imported_from" in made else []),
        "", "## Metrics", "", *_metrics(run), "",
        "## Use it", "",
        "```bash",
        f"agit translate --run {run} --input photos/ --out translated/   # each image at its own size",
        f"agit evaluate --run {run}   # KID and, with masks, attention metrics -> metrics.json",
        "```", "",
        "```python",
        "import agit",
        f'model = agit.load("{run}")',
        'output, attention = model.translate("photo.jpg", direction="s2t")   # PIL images',
        "```", "",
        "Files: " + ", ".join(f"`{name}`{what}" for name, what in RUN_FILE_NOTES.items()
                              if (run.path / name.rstrip("/")).exists()) + ".", "",
    ]
    return "\n".join(lines)
