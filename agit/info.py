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
import time
from pathlib import Path

from . import __version__
from .config import Config, preset
from .data import SPLIT_FOLDERS, DataError, list_images
from .run import Run

PROVENANCE = "provenance.json"  # the code that last trained the run, written with README.md


def provenance() -> dict:
    """This package's version and, in a git checkout, its commit (dirty if it has uncommitted changes)."""
    source = Path(__file__).resolve().parent.parent
    commit = None
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            changed = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
            commit = head.stdout.strip() + ("-dirty" if changed else "")
    except (OSError, subprocess.TimeoutExpired):  # no git here: an installed package
        pass
    import torch

    return {"agit": __version__, "commit": commit, "torch": torch.__version__,
            "python": platform.python_version(), "written": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_run_readme(run) -> Path:
    """RUN/README.md, and RUN/provenance.json recording the code that trained the run (called as training ends)."""
    run = Path(run)
    Run(run).write_provenance(provenance())
    path = run / "README.md"
    path.write_text(run_summary(run))
    return path


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
    per_epoch = (cfg.iterations_per_epoch(counts["trainA"], counts["trainB"])
                 if "trainA" in counts and "trainB" in counts else cfg.iters_per_epoch)
    planned = f"{cfg.epochs} epochs" + (f" × {per_epoch} iterations" if per_epoch else "") + f", batch {cfg.batch_size}"
    planned += f"; stage 2 (attention frozen, D sees attended pixels) from epoch {cfg.switch_epoch + 1}"
    state = run.progress()
    if state is None:
        return f"not started (no checkpoint); planned {planned}"
    epoch, step = state
    done = f"{epoch} of {cfg.epochs} epochs done" + (f" and {step} iterations of the next" if step else "")
    done = f"finished ({done})" if epoch >= cfg.epochs else done
    return f"{done}; planned {planned}"


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
             f"τ = {metrics.get('tau', '?')}; data `{metrics.get('data', '?')}`).", "",
             "| metric | s2t | t2s |", "|---|---|---|"]
    number = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
    lines += [f"| {name} | {number(v.get('s2t'))} | {number(v.get('t2s'))} |" for name, v in rows.items()]
    return lines


def run_summary(run) -> str:
    """The run, in Markdown: what RUN/README.md holds and `agit info RUN` prints."""
    run = Run(run)
    saved = run.config_dict()
    if saved is None:
        raise FileNotFoundError(f"{run} is not a run folder: it has no config.json")
    cfg = Config.from_dict(saved)
    data = Path(cfg.data)
    counts = _image_counts(data)
    data_text = (f"`{cfg.data}`: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " images"
                 if counts else f"`{cfg.data}` (not found from {Path.cwd()})")
    made = json.loads((run.path / PROVENANCE).read_text()) if (run.path / PROVENANCE).is_file() else None
    code = (f"agit {made['agit']}, commit `{made['commit'] or 'unknown (not a git checkout)'}`, "
            f"torch {made['torch']}, Python {made['python']} (written {made['written']})"
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
        "Files: `config.json` (every setting), `log.jsonl` (losses per iteration, attention per epoch), "
        "`samples/` (input | attention | output per epoch), `checkpoints/latest.pt`.", "",
    ]
    return "\n".join(lines)
