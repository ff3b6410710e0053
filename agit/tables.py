"""Tables 1 and 2 in the paper's layout, our numbers beside the published ones.

Each table is KID×100 ± std×100 per translation direction, with the feature
extractor named in the column header (``domain-cnn`` KID is not comparable with the
paper's Inception KID; the published column is there to compare rankings, not
values). On data with ground-truth masks (the synthetic sets) the tables also carry
what the paper could only show: attention IoU at τ, background PSNR, mean attention
on images without the object, and the share classified as the target domain.
A ``training`` column says which runs were shortened or forked.

Every table is written twice: CSV with plain numbers, Markdown formatted for reading.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .run import Run

# Published reference values — quoted from the paper, not measured here.
# Mejjati et al., NeurIPS 2018, Table 1: KID×100 ± std×100, Inception features,
# mean of KID vs target and vs source test sets, 10 splits of 50.
PAPER_TABLE1 = {
    "DiscoGAN": {"A→O": (18.34, 0.75), "O→A": (21.56, 0.80), "Z→H": (16.60, 0.50), "H→Z": (13.68, 0.28), "L→T": (16.10, 0.55), "T→L": (19.97, 0.09)},
    "RA": {"A→O": (12.75, 0.49), "O→A": (13.84, 0.78), "Z→H": (10.97, 0.26), "H→Z": (10.16, 0.12), "L→T": (9.98, 0.13), "T→L": (12.68, 0.07)},
    "DualGAN": {"A→O": (13.04, 0.72), "O→A": (12.42, 0.88), "Z→H": (12.86, 0.50), "H→Z": (10.38, 0.31), "L→T": (10.18, 0.15), "T→L": (10.44, 0.04)},
    "UNIT": {"A→O": (11.68, 0.43), "O→A": (11.76, 0.51), "Z→H": (13.63, 0.34), "H→Z": (11.22, 0.24), "L→T": (11.00, 0.09), "T→L": (10.23, 0.03)},
    "CycleGAN": {"A→O": (8.48, 0.53), "O→A": (9.82, 0.51), "Z→H": (11.44, 0.38), "H→Z": (10.25, 0.25), "L→T": (10.15, 0.08), "T→L": (10.97, 0.04)},
    "Ours": {"A→O": (6.44, 0.69), "O→A": (5.32, 0.48), "Z→H": (8.87, 0.26), "H→Z": (6.93, 0.27), "L→T": (8.56, 0.16), "T→L": (9.17, 0.07)},
}
# Mejjati et al., NeurIPS 2018, Table 2: ablations on horse↔zebra, same protocol.
PAPER_TABLE2 = {
    "Ours–cycle": {"Z→H": (64.55, 0.34), "H→Z": (41.48, 0.34)},
    "Ours–cycleAtt": {"Z→H": (9.46, 0.38), "H→Z": (7.79, 0.23)},
    "Ours–As": {"Z→H": (10.90, 0.25), "H→Z": (7.62, 0.25)},
    "Ours–At": {"Z→H": (9.30, 0.45), "H→Z": (7.80, 0.21)},
    "Ours–D": {"Z→H": (9.26, 0.22), "H→Z": (7.77, 0.35)},
    "Ours–D–A": {"Z→H": (9.86, 0.32), "H→Z": (8.28, 0.34)},
    "Ours": {"Z→H": (8.87, 0.26), "H→Z": (6.93, 0.27)},
}
PAPER_COLUMNS = ("A→O", "O→A", "Z→H", "H→Z", "L→T", "T→L")  # the paper's column order

# Direction labels (s2t, t2s) by dataset; the synthetic sets are horse (A) ↔ zebra (B).
DIRECTION_LABELS = {"horse2zebra": ("H→Z", "Z→H"), "apple2orange": ("A→O", "O→A"),
                    "lion2tiger": ("L→T", "T→L"), "summer2winter_yosemite": ("S→W", "W→S")}
GROUND_TRUTH = (("iou", "IoU@τ", 3), ("bg_psnr", "bg PSNR dB", 1), ("empty_att", "empty-image att", 3),
                ("target_rate", "target rate", 2))


def direction_labels(data: str | Path) -> tuple[str, str]:
    """(s2t, t2s) labels of a dataset folder."""
    data = Path(data)
    if data.name in DIRECTION_LABELS:
        return DIRECTION_LABELS[data.name]
    if (data / "meta.json").is_file():  # agit.synthetic: horse on meadow (A), zebra on savanna (B)
        return DIRECTION_LABELS["horse2zebra"]
    return ("A→B", "B→A")


def reference_name(data: str | Path) -> str:
    """The paper's dataset the reference column comes from."""
    data = Path(data)
    return "horse2zebra" if (data / "meta.json").is_file() else data.name


def _ordered(labels) -> list[str]:
    return sorted(labels, key=lambda x: PAPER_COLUMNS.index(x) if x in PAPER_COLUMNS else 99)


def _pm(mean, std, digits=2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(x, digits) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _metrics(run: Path) -> dict | None:
    return Run(run).metrics()


def kid_table(rows: dict[str, dict], reference: dict[str, dict], ctx, title: str):
    """rows: {label: {dataset: run key or None}}. Returns (numeric DataFrame, formatted DataFrame, caption)."""
    ex = ctx.profile["kid"]["extractor"]
    datasets = list(dict.fromkeys(ds for r in rows.values() for ds in r))
    has_masks = {ds: (ctx.dataset_path(ds) / "testA_mask").is_dir() for ds in datasets}
    num, fmt = {}, {}
    for label, by_ds in rows.items():
        n, f = {}, {}
        schedules = []
        for ds in datasets:
            key = by_ds.get(ds)
            m = _metrics(ctx.run_dir(key)) if key else None
            if key and m:
                schedules.append(ctx.schedule(key))
            labels = dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(ds))))
            for d in ("s2t", "t2s"):
                lab = labels[d]
                kid, std = (m[f"kid_{d}"], m[f"kid_std_{d}"]) if m else (math.nan, math.nan)
                n[f"{lab} KID×100"], n[f"{lab} KID std×100"] = kid, std
                f[f"{lab} KID×100 [{ex}]"] = _pm(kid, std) if m else "not run"
                ref = reference.get(label, {}).get(lab)
                n[f"{lab} paper KID×100"], n[f"{lab} paper std×100"] = ref if ref else (math.nan, math.nan)
                f[f"{lab} paper [Inception, {reference_name(ctx.dataset_path(ds))}]"] = _pm(*ref) if ref else "—"
                if has_masks[ds]:
                    for k, name, digits in GROUND_TRUTH:
                        v = m.get(f"{k}_{d}", math.nan) if m else math.nan
                        n[f"{lab} {name}"] = v
                        f[f"{lab} {name}"] = _num(v, digits)
        n["training"] = f["training"] = "; ".join(dict.fromkeys(schedules)) or "not run"
        num[label], fmt[label] = n, f
    num_df = pd.DataFrame.from_dict(num, orient="index")
    fmt_df = pd.DataFrame.from_dict(fmt, orient="index")
    # the paper's column order: per direction label
    def order(cols):
        labs = _ordered(dict.fromkeys(c.split(" ", 1)[0] for c in cols if c != "training"))
        return [c for lab in labs for c in cols if c.split(" ", 1)[0] == lab] + ["training"]
    num_df, fmt_df = num_df[order(list(num_df.columns))], fmt_df[order(list(fmt_df.columns))]
    num_df.index.name = fmt_df.index.name = "algorithm"
    kid = ctx.profile["kid"]
    caption = (f"**{title}** KID×100 ± std×100 (lower is better), features: `{ex}`, "
               f"{kid['subsets']} subsets of {kid['subset_size']}, mean of KID vs target and vs source test set "
               f"(the paper's protocol). `paper` columns: the published values (Inception features, the real "
               f"dataset named), quoted for reference"
               + ("; `domain-cnn` values are not comparable with them — compare rankings." if ex != "inception" else ".")
               + (" Ground truth (synthetic masks): IoU of [A > τ] with the object, PSNR of the background, "
                  "mean attention on object-free images (ideal 0), share classified as the target domain."
                  if any(has_masks.values()) else ""))
    return num_df, fmt_df, caption


def table1(ctx):
    """Table 1: our method, CycleGAN and the baselines on each of the profile's Table 1 datasets."""
    from .reproduce import METHOD_LABELS

    rows: dict[str, dict] = {}
    for label in PAPER_TABLE1:  # paper's row order; every row kept, measured or not
        rows[label] = {}
    for key in ctx.names("table1"):
        spec = ctx.specs[key]
        label = "Ours" if spec.name == "ours" else "CycleGAN" if spec.name == "cyclegan" else METHOD_LABELS[spec.method]
        rows.setdefault(label, {})[spec.dataset] = key
    for label in rows:
        for ds in ctx.profile["table1"]:
            rows[label].setdefault(ds, None)
    return kid_table(rows, PAPER_TABLE1, ctx, "Table 1.")


def table2(ctx):
    """Table 2: the ablations on the main dataset."""
    from .reproduce import VARIANT_LABELS

    main = ctx.profile["main"]
    rows = {VARIANT_LABELS[k.split("/")[1]]: {main: k} for k in ctx.names("table2")}
    return kid_table(rows, PAPER_TABLE2, ctx, "Table 2.")


def sweep_table(ctx, group: str):
    """Fig. 7 (group 'switch') or Fig. 8 ('tau') as numbers: one row per value."""
    field_name = {"switch": "switch_epoch", "tau": "tau"}[group]
    rows = {}
    for key in ctx.names(group):
        cfg = ctx.config_for(ctx.specs[key])
        m = _metrics(ctx.run_dir(key)) or {}
        labels = dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(ctx.specs[key].dataset))))
        row = {field_name: getattr(cfg, field_name)}
        for d in ("s2t", "t2s"):
            row[f"{labels[d]} KID×100"] = m.get(f"kid_{d}", math.nan)
            for k, name, _ in GROUND_TRUTH:
                row[f"{labels[d]} {name}"] = m.get(f"{k}_{d}", math.nan)
        row["training"] = ctx.schedule(key)
        rows[key.split("/")[1]] = row
    df = pd.DataFrame.from_dict(rows, orient="index").sort_values(field_name)
    df.index.name = "run"
    fmt = df.copy()
    for c in fmt.columns:
        if c not in ("training", field_name):
            fmt[c] = [_num(v, 3 if "IoU" in c or "att" in c else 2) for v in df[c]]
    what = {"switch": "Fig. 7 as numbers: the epoch of the stage switch",
            "tau": "Fig. 8 as numbers: the threshold τ of the stage-2 discriminator (Eq. 6)"}[group]
    caption = (f"**{what}.** KID×100 with `{ctx.profile['kid']['extractor']}` features; IoU at each run's own τ. "
               "Forked runs share the main run's epochs before the fork.")
    return df, fmt, caption


def save_table(num: pd.DataFrame, fmt: pd.DataFrame, caption: str, folder: str | Path, name: str) -> dict:
    """`folder/name.csv` (numbers) and `folder/name.md` (caption + formatted table)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    num.to_csv(csv)
    md.write_text(f"{caption}\n\n{fmt.to_markdown()}\n")
    return {"csv": csv, "md": md}
