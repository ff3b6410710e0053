"""What a profile trains: one RunSpec per run, named and labelled from one table.

`run_specs(profile)` derives a profile's runs: Ours and CycleGAN (with `seeds` training
seeds each) and the Table 1 baselines on every Table 1 dataset; the Table 2 ablations,
the Fig. 7 switch-epoch sweep and the Fig. 8 threshold sweep on the main dataset —
every one on the preset's schedule: the same images seen, the same epochs, the same
switch. A run that equals `ours` until some epoch by construction is *forked* from
`ours`'s checkpoint of that epoch (`RunSpec.fork`) instead of trained from scratch:
`d`/`da` and the threshold sweep differ only from the stage switch on, a switch-epoch
value only from the earlier of the two switches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import preset, run_name

# Table 2's ablations, in the paper's row order (CycleGAN is Table 1's).
ABLATIONS = ("cycle", "cycleatt", "as", "at", "d", "da")
# Table 1's baselines besides CycleGAN, in the paper's row order; trained where the package has them.
BASELINES = ("discogan", "ra", "dualgan", "unit")
# Variants that equal `ours` until the stage switch: forked from its checkpoint there.
SAME_STAGE1 = ("d", "da")

# How tables and figures name each model, by `config.run_name` (a variant, or a baseline's method).
LABELS = {"ours": "Ours", "cycle": "Ours–cycle", "cycleatt": "Ours–cycleAtt", "as": "Ours–As", "at": "Ours–At",
          "d": "Ours–D", "da": "Ours–D–A", "cyclegan": "CycleGAN", "discogan": "DiscoGAN", "ra": "RA",
          "dualgan": "DualGAN", "unit": "UNIT"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a profile: which model, on which dataset, for how long, from where."""

    name: str  # unique per dataset: folder name under runs/<dataset>/
    dataset: str
    variant: str = "ours"
    method: str = "aggan"
    overrides: dict = field(default_factory=dict)  # further config fields (switch_epoch, tau, seed)
    fork: tuple[str, int] | None = None  # (parent run name, epoch): start from its checkpoint
    label: str = ""  # how tables and figures name it
    preset: str | None = None  # None: the profile's

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.name}"

    @property
    def seed(self) -> int:
        return self.overrides.get("seed", 0)


def run_specs(profile: dict) -> dict[str, RunSpec]:
    """Every run a (resolved) profile needs, keyed `dataset/name`; all on the preset's schedule.

    Ours and CycleGAN get the profile's `seeds` training seeds, every other row and sweep point
    `row_seeds` (default 1); seed N of a fork starts from seed N of `ours`. The profile's `pairs`
    (other datasets) get Ours and CycleGAN only."""
    cfg = preset(profile["preset"], **profile.get("config", {}))
    main = profile["main_dataset"]
    row_seeds = range(profile.get("row_seeds", 1))
    specs: list[RunSpec] = []

    def seeded(name, dataset, seed, fork=None, overrides=None, **kw):
        suffix = f"_seed{seed}" if seed else ""
        overrides = {**(overrides or {}), **({"seed": seed} if seed else {})}
        fork = (fork[0] + suffix, fork[1]) if fork else None
        return RunSpec(name + suffix, dataset, fork=fork, overrides=overrides, **kw)

    for ds in dict.fromkeys((*profile["table1"], main, *profile.get("pairs", ()))):
        for variant in ("ours", "cyclegan"):
            specs += [seeded(variant, ds, seed, variant=variant, label=LABELS[variant])
                      for seed in range(profile["seeds"])]
        if ds in (*profile["table1"], main):
            specs += [seeded(method, ds, seed, variant="cyclegan", method=method, label=LABELS[method])
                      for method in BASELINES for seed in row_seeds]
    for seed in row_seeds:
        for v in ABLATIONS:
            fork = ("ours", cfg.switch_epoch) if v in SAME_STAGE1 else None
            specs.append(seeded(v, main, seed, variant=v, fork=fork, label=LABELS[v]))
        for s in profile["switch_epochs"]:
            if s != cfg.switch_epoch:
                specs.append(seeded(f"switch_{s}", main, seed, overrides={"switch_epoch": s},
                                    fork=("ours", min(s, cfg.switch_epoch)), label=switch_label(s, cfg.epochs)))
        for tau in profile["taus"]:
            if not math.isclose(tau, cfg.tau):
                specs.append(seeded(f"tau_{tau:g}", main, seed, overrides={"tau": tau},
                                    fork=("ours", cfg.switch_epoch), label=f"τ = {tau:g}"))
    return {s.key: s for s in specs}


def switch_label(switch_epoch: int, epochs: int) -> str:
    """How Fig. 7 names a switch epoch: one at or past the last epoch never switches."""
    return "never switched (stage 1 only)" if switch_epoch >= epochs else f"switch {switch_epoch}"


def custom_spec(dataset: str, variant: str = "ours", method: str = "aggan", preset_name: str | None = None) -> RunSpec:
    """A run outside a profile's own: the model `run_name(variant, method)` on `dataset`, with another
    preset if named; its folder name says both (e.g. `ours-paper`)."""
    name = "-".join(x for x in (run_name(variant, method), preset_name) if x)
    return RunSpec(name, dataset, variant=variant, method=method, preset=preset_name,
                   label=LABELS.get(run_name(variant, method), variant))
