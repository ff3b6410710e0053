"""Profiles: what `agit reproduce` regenerates and at what cost, and `Context`, a profile bound
to its folders (the notebooks' entry point: `context`).

A *profile* is data (``PROFILES``):

* ``ci``    — seconds: a tiny synthetic set (16 train / 12 test images a domain, 32 px),
  the ``ci`` preset, KID on the offline ``scene-cnn`` features with 10 subsets of 10
  (12 test images a domain allow no more). A smoke test of the whole pipeline, not a
  measurement; the tests run it.
* ``quick`` — CPU minutes: the synthetic default (``data/synthetic``, the ``quick``
  preset's data and size), the ``quick`` preset, ``scene-cnn`` KID with the paper's
  10 subsets of 50, three training seeds of Ours and CycleGAN.
* ``full``  — about an hour of CPU: the quick preset and data with 3 seeds of *every* row and
  sweep point (``row_seeds``), Fig. 7 from an early switch to none at all (``never_switch``),
  and Ours and CycleGAN on the other synthetic pairs (``pairs``): every claim with a spread.
* ``paper`` — the paper's setting: horse2zebra (Tables 1 and 2) and apple2orange
  (Table 1), the ``official`` preset, Inception KID. Needs the CycleGAN zips, the
  Inception weights and days of GPU time; without them its first notebook stops with
  the message that says what to fetch.

Each profile's *runs* are derived from it by ``specs.run_specs`` (specs.py: run specs and
their labels; some are forked from ``ours`` rather than trained from scratch). Runs live
under ``<out>/runs/<dataset>/<name>/``; ``Context.ensure_runs`` (jobs.py: the scheduler,
local processes or submitit) trains what is missing, resumes what is unfinished, skips
what is done and evaluates what lacks ``metrics.json`` — so the notebooks share runs and
a rerun costs only what changed.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .config import PRESETS, Config, preset
from .data import dataset_lock
from .files import write_atomically
from .jobs import default_jobs, ensure_runs, executor_from
from .locks import FolderLocked
from .specs import ABLATIONS, RunSpec, custom_spec, run_specs

STAGES = ("00_tutorial", "00_quickstart", "01_data", "02_train", "03_ablations", "04_kid_tables", "05_figures",
          "06_explore")

PROFILES: dict[str, dict] = {
    "ci": dict(
        description="seconds: tiny synthetic data and networks, for the tests",
        preset="ci",
        # dataset name -> how to get it ("synthetic": agit.synthetic.make_synthetic's arguments)
        datasets={"ci": dict(source="synthetic", size=32, n_train=16, n_test=12)},
        main_dataset="ci",  # Table 2, the sweeps and the figures use this dataset
        table1=("ci",),  # Table 1's datasets
        # 12 test images a domain: 10 subsets of 10 (a smoke test of KID, not a measurement)
        kid=dict(extractor="scene-cnn", subsets=10, subset_size=10),
        seeds=2,  # training seeds of Ours and CycleGAN: tables show mean ± std over them
        tutorial={},  # the preset's fields the step-through tutorial (00_tutorial) changes
        switch_epochs=(1, 2),  # Fig. 7 (the preset's own value reuses the main run)
        taus=(0.05, 0.1, 0.3, 0.5),  # Fig. 8
        stages=STAGES,
        jobs=1,
        threads=1,  # torch threads per process: tiny nets gain nothing from more, and lose a lot on a busy CPU
        cell_timeout=600,  # seconds a notebook cell may run (None: no limit)
    ),
    "quick": dict(
        description="CPU minutes on the synthetic default; every run on the same schedule, 3 seeds of Ours and CycleGAN",
        preset="quick",
        datasets=None,  # None: the quick preset's `data` folder, made by agit.synthetic
        main_dataset=None,
        table1=None,
        kid=dict(extractor="scene-cnn", subsets=10, subset_size=50),
        seeds=3,
        # The tutorial trains Ours and CycleGAN in the kernel, one after the other, within ~2 CPU
        # minutes: 250 iterations of batch 2 (the preset's 480), the switch after 200; the attention
        # held for the first 150 (with the preset's earlier, wider nets, held for 50 or 100, seed 0
        # collapsed to A = 0; with these, held for 150, seeds 0-2 all found the animal: IoU 0.48-0.62).
        tutorial=dict(epochs=5, switch_epoch=4, decay_epoch=4, iters_per_epoch=50),
        switch_epochs=None,  # None: derived from the preset (halfway from the warm-up, own value, later)
        taus=(0.05, 0.1, 0.5),  # low (equivalent to the default, per the paper), default, high
        stages=STAGES,
        jobs=2,  # two runs at a time, one thread each: on 2 CPU cores far faster than one run on two
        threads=1,
        # The tutorial trains in its kernel with nothing beside it: 2 threads take ~25 % off its
        # batch-2 steps (measured on 2 cores, 168 -> 126 ms); 1 thread would leave a core idle.
        kernel_threads=2,
        cell_timeout=None,
    ),
    "full": dict(
        description="about an hour of CPU on the quick preset and data: 3 seeds of every row and sweep point, "
                    "Fig. 7 on both sides of the switch, the other synthetic pairs",
        preset="quick",
        datasets=None,
        main_dataset=None,
        table1=None,
        kid=dict(extractor="scene-cnn", subsets=10, subset_size=50),
        seeds=3,
        row_seeds=3,  # seeds of every other row and sweep point too: each claim gets a seed spread
        pairs=("synthetic_fruit", "synthetic_stars", "synthetic_hard"),  # Ours and CycleGAN, `seeds` seeds
        switch_epochs=None,
        never_switch=True,  # Fig. 7's far side: stage 1 only
        taus=(0.05, 0.1, 0.5),
        stages=STAGES[1:7],  # no tutorial (its own two runs) and no explorer: numbers, tables, figures
        jobs=2,
        threads=1,
        cell_timeout=None,
    ),
    "paper": dict(
        description="the paper's setting: horse2zebra + apple2orange, official preset, Inception KID (GPU days)",
        preset="official",
        datasets={"horse2zebra": dict(source="cyclegan"), "apple2orange": dict(source="cyclegan")},
        main_dataset="horse2zebra",
        table1=("horse2zebra", "apple2orange"),
        kid=dict(extractor="inception", subsets=10, subset_size=50),
        seeds=1,
        switch_epochs=(10, 30, 50),
        taus=(0.05, 0.1, 0.3, 0.5),
        stages=STAGES[2:],  # the tutorial and the quickstart are synthetic-data introductions
        jobs=1,
        threads=None,  # None: torch's default (all cores); with jobs > 1, cores / jobs
        cell_timeout=None,
    ),
}


# The preflight (`agit reproduce --smoke`): every run of a profile cut to SMOKE["epochs"] epochs of
# SMOKE["iters_per_epoch"] iterations, its switch, decay and fork epochs scaled alike, so that each
# run passes through both stages and the lr decay as the full schedule does. Ten epochs are the
# fewest that keep the paper's sweep (switch at 10, 30, 50 of 100) three distinct epochs.
SMOKE = dict(epochs=10, iters_per_epoch=1)


# --------------------------------------------------------------------------- profiles


def resolve_profile(name: str) -> dict:
    """The profile `name` with every derived field filled in from the presets."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    prof = copy.deepcopy(PROFILES[name])
    prof["name"] = name
    base = PRESETS[prof["preset"]]
    if prof["datasets"] is None:  # the preset's data folder, as agit.synthetic makes it
        from .synthetic import SYNTHETIC_PAIRS

        ds = Path(base.get("data", "data/synthetic")).name
        prof["datasets"] = {ds: dict(source="synthetic", **SYNTHETIC_PAIRS.get(ds, {}),
                                     size=base.get("size", 64)) for ds in (ds, *prof.get("pairs", ()))}
    prof["main_dataset"] = prof["main_dataset"] or next(iter(prof["datasets"]))
    prof["table1"] = tuple(prof["table1"] or (prof["main_dataset"],))
    cfg = profile_preset(prof)
    if prof["switch_epochs"] is None:
        s, e, w = cfg.switch_epoch, cfg.epochs, cfg.att_warmup_epochs
        early = max(1, w + (s - w) // 2)  # half of the attention's own training in stage 1
        late = min(e - 1, s + max(1, (e - s) // 2))  # a short stage 2
        prof["switch_epochs"] = tuple(sorted({early, s, late, *((e,) if prof.get("never_switch") else ())}))
    return prof


def profile_preset(prof: dict, **changes) -> Config:
    """The profile's preset with the profile's own changes to it (`config`: a preflight's schedule)."""
    return preset(prof["preset"], **{**prof.get("config", {}), **changes})


def smoke_profile(prof: dict, size: int | None = None) -> dict:
    """`prof` as a preflight: the same runs, seeds, forks, datasets and KID protocol, each run
    cut to SMOKE's epochs and iterations with the switch, the lr decay, the attention warm-up and
    the swept switch epochs scaled to them; at `size` px if given (else the preset's)."""
    prof = copy.deepcopy(prof)
    cfg = profile_preset(prof)
    epochs = min(SMOKE["epochs"], cfg.epochs)
    scaled = lambda epoch: min(epochs - 1, max(1, round(epoch * epochs / cfg.epochs)))  # noqa: E731
    prof["config"] = dict(epochs=epochs, iters_per_epoch=SMOKE["iters_per_epoch"], switch_epoch=scaled(cfg.switch_epoch),
                          decay_epoch=scaled(cfg.decay_epoch),
                          att_warmup_epochs=round(cfg.att_warmup_epochs * epochs / cfg.epochs),
                          size=size or cfg.size)
    prof["switch_epochs"] = tuple(dict.fromkeys(scaled(e) for e in prof["switch_epochs"]))
    schedule = (f"{epochs} epochs of {_iterations_text(SMOKE['iters_per_epoch'])} at {prof['config']['size']} px")
    prof["smoke"] = dict(prof["config"], full_epochs=cfg.epochs, schedule=schedule)
    prof["description"] = f"PREFLIGHT of the {prof['name']} profile: its runs cut to {schedule}; checks the path, measures no result"
    return prof


def _iterations_text(n: int) -> str:
    return f"{n} iteration" + ("s" if n != 1 else "")


def smoke_kid(prof: dict, data_root: Path) -> dict:
    """The preflight's KID protocol: the profile's, its subsets no larger than the smallest test
    folder of its datasets (a stand-in may hold only a few test images); untouched until the data exist."""
    from .data import list_images

    counts = [len(list_images(data_root / name / folder)) for name in prof["datasets"] for folder in ("testA", "testB")
              if (data_root / name / folder).is_dir()]
    return dict(prof["kid"], subset_size=min([prof["kid"]["subset_size"], *counts]))


# --------------------------------------------------------------------------- paths


def project_root(start: str | Path | None = None) -> Path:
    """The repository holding `notebooks/` and `agit/`: searched upwards from `start` (cwd),
    then beside the installed package; else `start` itself."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "agit").is_dir():
            return folder
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "notebooks").is_dir():
        return package_parent
    return here


@dataclass
class Context:
    """A profile bound to its folders: what the notebooks hold on to."""

    profile: dict
    out: Path
    data_root: Path
    device: str | None = None
    runs: Path | None = None  # None: <out>/runs
    jobs: int = 1
    executor: str | None = None  # None: this machine's processes; see executor_from
    extra: dict = field(default_factory=dict)  # runs added by hand (run_for), keyed like specs

    @property
    def name(self) -> str:
        return self.profile["name"]

    @property
    def runs_dir(self) -> Path:
        return self.runs or self.out / "runs"

    @property
    def tables_dir(self) -> Path:
        return self.out / "tables"

    @property
    def figures_dir(self) -> Path:
        return self.out / "figures"

    @property
    def notebooks_dir(self) -> Path:
        return self.out / "notebooks"

    @property
    def specs(self) -> dict[str, RunSpec]:
        return {**run_specs(self.profile), **self.extra}

    def run_for(self, variant: str = "ours", preset_name: str | None = None, dataset: str | None = None,
                method: str = "aggan") -> str:
        """The key of the profile's run with this variant/method on `dataset` (default: the main
        one) and the profile's preset; any other combination becomes a run of its own."""
        dataset = dataset or self.profile["main_dataset"]
        preset_name = preset_name or None
        if preset_name in (None, self.profile["preset"]) and custom_spec(dataset, variant, method).key in self.specs:
            return custom_spec(dataset, variant, method).key
        spec = custom_spec(dataset, variant, method, preset_name)
        self.extra[spec.key] = spec
        return spec.key

    def spec(self, name: str) -> RunSpec:
        """A run by `name` (on the main dataset) or `dataset/name`."""
        key = name if "/" in name else f"{self.profile['main_dataset']}/{name}"
        if key not in self.specs:
            raise KeyError(f"profile {self.name!r} has no run {key!r}; it has {', '.join(self.specs)}")
        return self.specs[key]

    def dataset_path(self, dataset: str | None = None) -> Path:
        return self.data_root / (dataset or self.profile["main_dataset"])

    @property
    def stand_ins(self) -> dict[str, str]:
        """The profile's datasets that are synthetic stand-ins (`agit data synth --like`): name -> the real set."""
        from .synthetic import stand_in_of

        return {n: like for n in self.profile["datasets"] if (like := stand_in_of(self.dataset_path(n)))}

    def run_dir(self, name: str) -> Path:
        spec = self.spec(name)
        return self.runs_dir / spec.dataset / spec.name

    def names(self, group: str) -> list[str]:
        """Run keys of a group: 'main', 'table1', 'table2', 'switch', 'tau', 'baselines', 'pairs'.

        'table1' holds every training seed (tables average over them); the other groups,
        which figures show one run of each, the first seed only."""
        specs, main = self.specs, self.profile["main_dataset"]
        on_main = [k for k, s in specs.items() if s.dataset == main and s.seed == 0]
        groups = {
            "main": [f"{main}/ours"],
            "table1": [k for k, s in specs.items() if s.dataset in self.profile["table1"]
                       and (s.method != "aggan" or s.label in ("Ours", "CycleGAN"))],
            "table2": [f"{main}/{v}" for v in (*ABLATIONS, "ours")],
            "baselines": [k for k in on_main if specs[k].method != "aggan" or specs[k].name == "cyclegan"],
            "switch": [f"{main}/ours"] + [k for k in on_main if specs[k].name.startswith("switch_")],
            "tau": [f"{main}/ours"] + [k for k in on_main if specs[k].name.startswith("tau_")],
            "pairs": [k for k, s in specs.items() if s.dataset in self.profile.get("pairs", ()) and s.seed == 0],
        }
        if group not in groups:
            raise KeyError(f"unknown run group {group!r}; choose from {', '.join(groups)}")
        return groups[group]

    def seeds_of(self, key: str) -> list[str]:
        """`key` and the runs that differ from it only in the training seed."""
        spec = self.specs[key]
        return [k for k, s in self.specs.items() if s.dataset == spec.dataset and s.label == spec.label
                and s.method == spec.method and s.variant == spec.variant
                and (s.fork or ("", None))[1] == (spec.fork or ("", None))[1]
                and {**s.overrides, "seed": 0} == {**spec.overrides, "seed": 0}]

    def config_for(self, spec: RunSpec) -> Config:
        """The full config of a run: the profile's preset, the spec's changes, the dataset's path."""
        data = self.dataset_path(spec.dataset)
        cfg = preset(spec.preset or self.profile["preset"], data=str(data), variant=spec.variant,
                     method=spec.method, **{**self.profile.get("config", {}), **spec.overrides})
        cfg.extra = {**cfg.extra, "agit_run": spec.key, "profile": self.name,
                     "forked_from": f"{spec.fork[0]}@{spec.fork[1]}" if spec.fork else None}
        return cfg

    def train_in_kernel(self) -> int:
        """Torch threads for training inside this kernel with no job beside it (the tutorial): the
        profile's `kernel_threads`, where it sets one; `threads` is per job, for jobs side by side."""
        import torch

        if self.profile.get("kernel_threads"):
            torch.set_num_threads(self.profile["kernel_threads"])
        return torch.get_num_threads()

    def tutorial_config(self, **changes) -> Config:
        """The step-through tutorial's model (00_tutorial): the profile's preset on its main
        dataset, with the profile's `tutorial` fields, then `changes`."""
        return profile_preset(self.profile, data=str(self.dataset_path()),
                              **{**self.profile.get("tutorial", {}), **changes})

    def schedule(self, name: str) -> str:
        """How a run was trained, in words: its schedule, its seed, and whether it was forked."""
        spec = self.spec(name)
        cfg = self.config_for(spec)
        iters = _iterations(cfg, Path(cfg.data))
        text = f"{cfg.epochs} ep × {iters} it" + (f" × batch {cfg.batch_size}" if cfg.batch_size > 1 else "")
        if spec.seed:
            text += f", seed {spec.seed}"
        if spec.fork:
            text += f", forked from {spec.fork[0]} at epoch {spec.fork[1]}"
        return text

    # -- the work ---------------------------------------------------------------------
    def prepare_data(self, check_kid: bool = True) -> dict[str, Path]:
        return prepare_data(self.profile, self.data_root, check_kid=check_kid)

    def ensure_runs(self, names=None, jobs: int | None = None, evaluate: bool = True) -> dict[str, Path]:
        """Train, resume or fork and evaluate the runs `names` (default: all): agit.jobs."""
        return ensure_runs(self, names, jobs=jobs or self.jobs, evaluate=evaluate)

    def references(self, dataset: str | None = None) -> dict[str, dict]:
        """`agit.evaluate.evaluate_references` on a dataset (identity, second rendering, repaint),
        cached in `<out>/references/<dataset>.json` for the profile's KID protocol."""
        from .evaluate import evaluate_references

        dataset = dataset or self.profile["main_dataset"]
        kid = self.profile["kid"]
        path = self.out / "references" / f"{dataset}.json"
        size = profile_preset(self.profile).size
        stamp = {"kid": kid, "size": size}
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("stamp") == stamp:
                return saved["scores"]
        scores = evaluate_references(self.dataset_path(dataset), size, kid["extractor"], device=self.device or "cpu",
                                     kid_subsets=kid["subsets"], kid_subset_size=kid["subset_size"])
        write_atomically(path, json.dumps(_jsonable({"stamp": stamp, "scores": scores}), indent=1))
        return scores

    def record(self, stage: str, numbers: dict) -> Path:
        """Write a notebook's key numbers to `<out>/notebooks/<stage>.json` (NaN as null)."""
        path = self.notebooks_dir / f"{stage}.json"
        payload = {"stage": stage, "profile": self.name, **_jsonable(numbers)}
        write_atomically(path, json.dumps(payload, indent=1, sort_keys=True))
        return path


def context(profile: str = "quick", out: str | Path | None = None, data_root: str | Path | None = None,
            device: str | None = None, jobs: int | None = None, executor: str | None = None,
            runs: str | Path | None = None, smoke: int = 0) -> Context:
    """The notebooks' entry point: a profile and its folders. Relative paths are taken from
    the repository root, so a notebook behaves alike wherever its kernel starts.

    Without `out` (a notebook opened by hand) results go to `results/<profile>-local/`,
    which git ignores: only `agit reproduce` writes the committed `results/<profile>/`.
    The runs are still those of `results/<profile>/runs/` (ignored too), so a notebook
    opened after `agit reproduce` reuses its trained runs instead of training its own.
    `runs` names another folder of runs to reuse (papermill `-p runs DIR`, `agit reproduce
    --runs DIR`): those done are kept, the missing ones trained there.

    `smoke` (a size in px; 0: off) makes the profile a preflight (`smoke_profile`), whose results
    go to `results/<profile>-smoke/`."""
    prof = resolve_profile(profile)
    if smoke:
        prof = smoke_profile(prof, smoke)
        profile = f"{profile}-smoke"  # its folders: never the full profile's
    if prof.get("threads"):
        import torch

        torch.set_num_threads(prof["threads"])
    root = project_root()
    runs = Path(runs) if runs else None if out else root / "results" / profile / "runs"
    runs = runs if runs is None or runs.is_absolute() else root / runs
    out = Path(out) if out else Path("results") / f"{profile}-local"
    data_root = Path(data_root) if data_root else Path("data")
    out = out if out.is_absolute() else root / out
    data_root = data_root if data_root.is_absolute() else root / data_root
    if smoke:
        prof["kid"] = smoke_kid(prof, data_root)
    executor_from(executor, out / "submitit")  # a bad spec fails here, before any training
    return Context(prof, out, data_root, device=device or None, runs=runs,
                   jobs=jobs or default_jobs(prof, device, executor),
                   executor=executor or None)


def _iterations(cfg: Config, data: Path) -> int:
    """Iterations per epoch of `cfg` on the dataset folder `data`."""
    from .data import list_images

    return cfg.iterations_per_epoch(*(len(list_images(data / f"train{d}")) for d in "AB"))


def _jsonable(x):
    """Numbers from numpy/torch to plain JSON; NaN and inf to None."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


# --------------------------------------------------------------------------- data


def prepare_data(profile: dict, data_root: Path, check_kid: bool = True) -> dict[str, Path]:
    """Make or fetch every dataset of the profile; check that its KID extractor can run.

    Every missing prerequisite is reported at once (the first one's type is kept):
    a profile that cannot finish should say so before hours of training, not after.
    """
    from .data import download
    from .synthetic import make_synthetic

    paths, problems = {}, []
    for name, how in profile["datasets"].items():
        how = dict(how)
        source = how.pop("source")
        try:
            with dataset_lock(data_root, name):
                if source == "synthetic":
                    paths[name] = make_synthetic(data_root, name, **how)
                elif source == "cyclegan":
                    paths[name] = download(name, data_root)
                else:
                    raise ValueError(f"dataset {name}: unknown source {source!r}")
        except FolderLocked:  # another process is making it: no use listing what else is missing
            raise
        except Exception as err:  # noqa: BLE001 - collected, then re-raised below
            problems.append(err)
    if check_kid and profile["kid"]["extractor"] == "inception":
        from .features import inception_weights_path

        try:
            inception_weights_path()
        except Exception as err:  # noqa: BLE001
            problems.append(err)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = "\n".join(f"  {i}. {type(e).__name__}: {e}" for i, e in enumerate(problems, 1))
        raise type(problems[0])(f"profile {profile['name']!r} cannot start; {len(problems)} things are missing:\n{lines}")
    return paths


