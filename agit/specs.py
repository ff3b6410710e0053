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
    """Every run a (resolved) profile needs, keyed `dataset/name`; all on the preset's schedule."""
    cfg = preset(profile["preset"], **profile.get("config", {}))
    main = profile["main_dataset"]
    specs: list[RunSpec] = []
    for ds in dict.fromkeys((*profile["table1"], main)):
        for variant in ("ours", "cyclegan"):
            for seed in range(profile["seeds"]):
                specs.append(RunSpec(variant + (f"_seed{seed}" if seed else ""), ds, variant=variant,
                                     label=LABELS[variant], overrides={"seed": seed} if seed else {}))
        for method in BASELINES:
            specs.append(RunSpec(method, ds, variant="cyclegan", method=method, label=LABELS[method]))
    for v in ABLATIONS:
        fork = ("ours", cfg.switch_epoch) if v in SAME_STAGE1 else None
        specs.append(RunSpec(v, main, variant=v, fork=fork, label=LABELS[v]))
    for s in profile["switch_epochs"]:
        if s != cfg.switch_epoch:
            specs.append(RunSpec(f"switch_{s}", main, overrides={"switch_epoch": s},
                                 fork=("ours", min(s, cfg.switch_epoch)), label=f"switch {s}"))
    for tau in profile["taus"]:
        if not math.isclose(tau, cfg.tau):
            specs.append(RunSpec(f"tau_{tau:g}", main, overrides={"tau": tau},
                                 fork=("ours", cfg.switch_epoch), label=f"τ = {tau:g}"))
    return {s.key: s for s in specs}


def custom_spec(dataset: str, variant: str = "ours", method: str = "aggan", preset_name: str | None = None) -> RunSpec:
    """A run outside a profile's own: the model `run_name(variant, method)` on `dataset`, with another
    preset if named; its folder name says both (e.g. `ours-paper`)."""
    name = "-".join(x for x in (run_name(variant, method), preset_name) if x)
    return RunSpec(name, dataset, variant=variant, method=method, preset=preset_name,
                   label=LABELS.get(run_name(variant, method), variant))
