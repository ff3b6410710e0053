"""Tables 1 and 2 in the paper's layout, our numbers beside the published ones.

On data with counterfactuals (agit's synthetic pairs) the tables lead with the columns
that rank methods for the right reasons: the distance of the translations to the true
translations (KID to the counterfactual set, a texture distance inside the object, PSNR
over the whole image), the share of translated objects that an object-only classifier
takes for the target's, and the ground truth the masks allow (attention IoU at τ,
background PSNR, attention on object-free images). The paper's own number — KID, the
mean of KID against the target and against the source test set — follows, with its
feature extractor in the header and the published value beside it (Inception features
on the real dataset: compare rankings, not values).

A row trained with several seeds shows mean ± std over them; the std is the yardstick
of every comparison (`comparisons`): a difference smaller than it is not a result.
Table 1 ends with reference rows that need no training (the input returned unchanged,
a second rendering of the counterfactuals, a background repaint), which give the
columns their scale.

Every table is written twice: CSV with plain numbers, Markdown formatted for reading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
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

# Direction labels (s2t, t2s) by dataset; the synthetic sets are named after their style.
DIRECTION_LABELS = {"horse2zebra": ("H→Z", "Z→H"), "apple2orange": ("A→O", "O→A"),
                    "lion2tiger": ("L→T", "T→L"), "summer2winter_yosemite": ("S→W", "W→S"),
                    "star2leopard": ("S→L", "L→S")}

# (metrics.json key, header, digits, which way is better); the counterfactual columns rank.
COLUMNS = (
    ("cf_kid", "KID×100 to counterfactual [{ex}]", 2, "lower"),
    ("texture", "texture dist. to counterfactual", 3, "lower"),
    ("cf_psnr", "PSNR to counterfactual dB", 1, "higher"),
    ("object_target", "object → target", 2, "higher"),
    ("iou", "IoU@τ", 3, "higher"),
    ("bg_psnr", "bg PSNR dB", 1, "higher"),
    ("empty_att", "object-free att", 3, "lower"),
    ("kid", "KID×100 [{ex}], paper protocol", 2, "lower"),
)
RANKING = ("cf_kid", "texture", "cf_psnr", "object_target", "bg_psnr", "iou", "empty_att")  # what `comparisons` reports
KID_LIKE = ("cf_kid", "kid")  # their subset std is kept apart from the seed std
REFERENCE_LABELS = {"identity": "reference: identity (input unchanged)",
                    "counterfactual_again": "reference: counterfactual, 2nd rendering",
                    "repaint": "reference: repaint (background swapped)"}


def style_of(data: str | Path) -> str | None:
    """The synthetic style of a dataset folder (meta.json), None for other data."""
    meta = Path(data) / "meta.json"
    return json.loads(meta.read_text())["params"].get("style", "horse2zebra") if meta.is_file() else None


def direction_labels(data: str | Path) -> tuple[str, str]:
    """(s2t, t2s) labels of a dataset folder."""
    data = Path(data)
    name = style_of(data) or data.name
    return DIRECTION_LABELS.get(name, ("A→B", "B→A"))


def reference_name(data: str | Path) -> str:
    """The paper's dataset the reference column comes from."""
    return style_of(data) or Path(data).name


def _ordered(labels) -> list[str]:
    return sorted(labels, key=lambda x: PAPER_COLUMNS.index(x) if x in PAPER_COLUMNS else 99)


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _num(x, digits) -> str:
    return f"{x:.{digits}f}" if _finite(x) else "n/a"


def _metrics(run: Path) -> dict | None:
    return Run(run).metrics()


def seed_stats(results: list[dict], key: str) -> dict:
    """Mean and std over training seeds of one metric (and, for KID, the mean subset std)."""
    values = np.array([r.get(key, math.nan) for r in results], dtype=float)
    values = values[np.isfinite(values)]
    out = {"mean": float(values.mean()) if len(values) else math.nan,
           "seed_std": float(values.std(ddof=1)) if len(values) > 1 else math.nan, "seeds": len(values)}
    base, _, d = key.rpartition("_")
    if base in KID_LIKE:
        out["subset_std"] = float(np.nanmean([r.get(f"{base}_std_{d}", math.nan) for r in results]))
    return out


def _cell(stats: dict, digits: int) -> str:
    if not _finite(stats["mean"]):
        return "n/a"
    text = f"{stats['mean']:.{digits}f}"
    if _finite(stats["seed_std"]):
        text += f" ± {stats['seed_std']:.{digits}f}"
        if "subset_std" in stats:
            text += f" (±{stats['subset_std']:.{digits}f})"
    elif "subset_std" in stats and _finite(stats["subset_std"]):
        text += f" ± {stats['subset_std']:.{digits}f}"
    return text


def kid_table(rows: dict[str, dict[str, list[dict]]], reference: dict[str, dict], ctx, title: str):
    """rows: {label: {dataset: [metrics.json dicts, one per seed]}} -> (numbers, formatted, caption)."""
    ex = ctx.profile["kid"]["extractor"]
    datasets = list(dict.fromkeys(ds for r in rows.values() for ds in r))
    labels = {ds: dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(ds)))) for ds in datasets}
    # a column only where some row has a value (no counterfactuals, no masks: those columns go)
    shown = [c for c in COLUMNS if any(_finite(m.get(f"{c[0]}_{d}")) for r in rows.values()
                                       for results in r.values() for m in results for d in ("s2t", "t2s"))]
    num, fmt = {}, {}
    for label, by_ds in rows.items():
        n, f = {}, {}
        for ds in datasets:
            results = by_ds.get(ds, [])
            for d, lab in labels[ds].items():
                for key, header, digits, _ in shown:
                    stats = seed_stats(results, f"{key}_{d}")
                    n[f"{lab} {key}"], n[f"{lab} {key} seed std"] = stats["mean"], stats["seed_std"]
                    if "subset_std" in stats:
                        n[f"{lab} {key} subset std"] = stats["subset_std"]
                    f[f"{lab} {header.format(ex=ex)}"] = _cell(stats, digits) if results else "not run"
                ref = reference.get(label, {}).get(lab)
                n[f"{lab} paper KID×100"], n[f"{lab} paper std×100"] = ref if ref else (math.nan, math.nan)
                f[f"{lab} paper KID×100 [Inception, {reference_name(ctx.dataset_path(ds))}]"] = (
                    f"{ref[0]:.2f} ± {ref[1]:.2f}" if ref else "—")
        n["seeds"] = f["seeds"] = max((len(r) for r in by_ds.values()), default=0)
        num[label], fmt[label] = n, f
    num_df, fmt_df = pd.DataFrame.from_dict(num, orient="index"), pd.DataFrame.from_dict(fmt, orient="index")

    def order(cols):  # the paper's column order: per direction label
        labs = _ordered(dict.fromkeys(c.split(" ", 1)[0] for c in cols if c != "seeds"))
        return [c for lab in labs for c in cols if c.split(" ", 1)[0] == lab] + ["seeds"]

    num_df, fmt_df = num_df[order(list(num_df.columns))], fmt_df[order(list(fmt_df.columns))]
    num_df.index.name = fmt_df.index.name = "algorithm"
    return num_df, fmt_df, _caption(ctx, title, {c[0] for c in shown})


def provenance(ctx) -> str:
    """What a caption says first where its numbers are not the paper's: stand-in data, a preflight."""
    parts = [f"**STAND-IN DATA:** `{name}` is synthetic (agit data synth --like {like}), not the real {like}."
             for name, like in ctx.stand_ins.items()]
    if ctx.profile.get("smoke"):
        parts.append(f"**PREFLIGHT:** every run cut to {ctx.profile['smoke']['schedule']}: these numbers measure nothing.")
    return "".join(p + " " for p in parts)


def _caption(ctx, title: str, shown: set) -> str:
    ex, kid = ctx.profile["kid"]["extractor"], ctx.profile["kid"]
    parts = [f"{provenance(ctx)}**{title}**"]
    if "cf_kid" in shown:
        parts.append("Ranked by the distance to the counterfactual — the true translation the synthetic pair "
                     "renders for every test image (same scene, the other domain's object): KID×100 of the "
                     f"translations against the counterfactual set (`{ex}` features, {kid['subsets']} subsets of "
                     f"{kid['subset_size']}; lower is better), a texture distance inside the true object mask "
                     "(colour and oriented-energy statistics, blind to stripe phase; lower is better), PSNR over "
                     "the whole image (mostly the background; no method can predict a stripe's phase), and the "
                     "share of translated objects an object-only classifier takes for the target's.")
    if "iou" in shown or "bg_psnr" in shown:
        parts.append("Ground truth from the masks: IoU of [A > τ] with the object, PSNR of the background "
                     "(outside the mask), mean attention on object-free images (ideal 0).")
    parts.append(f"`KID×100 [{ex}], paper protocol`: the paper's number, the mean of KID against the target and "
                 "against the source test set; beside it the published value (Inception features on the real "
                 "dataset): compare rankings, not values."
                 + (" On the synthetic pair this column cannot tell a perfect translation from the input returned "
                    "unchanged (see the reference rows): a half-source, half-target image is as close to both sets "
                    "whatever it gets right, which is why the counterfactual columns rank." if "cf_kid" in shown else ""))
    parts.append("Cells: mean ± std over the training seeds (column `seeds`); KID cells add the mean std over its "
                 "subsets in parentheses (alone where one seed). Every run trains the same schedule: "
                 f"{ctx.schedule('ours').split(',')[0]}.")
    return " ".join(parts)


def _results(ctx, keys) -> list[dict]:
    return [m for m in (_metrics(ctx.run_dir(k)) for k in keys) if m]


def table1(ctx, references: bool = True):
    """Table 1: our method, CycleGAN and the baselines on each of the profile's Table 1 datasets,
    every seed averaged; reference rows on synthetic data."""
    rows: dict[str, dict] = {label: {} for label in PAPER_TABLE1}  # paper's row order, every row kept
    for key in ctx.names("table1"):
        spec = ctx.specs[key]
        rows.setdefault(spec.label, {})[spec.dataset] = _results(ctx, ctx.seeds_of(key))
    if references:
        for ds in ctx.profile["table1"]:
            if style_of(ctx.dataset_path(ds)):
                for kind, scores in ctx.references(ds).items():
                    rows.setdefault(REFERENCE_LABELS[kind], {})[ds] = [scores]
    return kid_table(rows, PAPER_TABLE1, ctx, "Table 1.")


def table2(ctx):
    """Table 2: the ablations on the main dataset, each one seed (the first); Ours with every
    seed, and its first seed alone, the one the ablations share their seed (and forks) with."""
    main = ctx.profile["main_dataset"]
    rows = {ctx.specs[k].label: {main: _results(ctx, ctx.seeds_of(k))} for k in ctx.names("table2")}
    rows["Ours, first seed (as the ablations)"] = {main: _results(ctx, [f"{main}/ours"])}
    return kid_table(rows, PAPER_TABLE2, ctx, "Table 2.")


def comparisons(ctx, against=("CycleGAN", REFERENCE_LABELS["identity"])):
    """Ours against each row of `against` on the main dataset, per ranking metric and direction,
    with the seed spread beside every difference and a verdict that respects it.

    The spread is the larger of the two rows' std over seeds (a reference row has none).
    A difference is called a result only when it exceeds twice that spread."""
    num, _, _ = table1(ctx)
    main = ctx.profile["main_dataset"]
    rows = []
    for other in against:
        if other not in num.index:
            continue
        for d, lab in zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(main))):
            for key in RANKING:
                col = f"{lab} {key}"
                if col not in num.columns or not _finite(num.loc["Ours", col]) or not _finite(num.loc[other, col]):
                    continue
                better = next(c[3] for c in COLUMNS if c[0] == key)
                ours, theirs = num.loc["Ours", col], num.loc[other, col]
                spread = np.nanmax([num.loc["Ours", f"{col} seed std"], num.loc[other, f"{col} seed std"]])
                diff = ours - theirs
                wins = diff < 0 if better == "lower" else diff > 0
                verdict = ("within the seed spread: not a result" if not abs(diff) > 2 * spread
                           else f"Ours {'better' if wins else 'worse'}")
                rows.append({"versus": other, "direction": lab, "metric": key, "Ours": ours, "other": theirs,
                             "difference": diff, "seed spread": spread, "verdict": verdict})
    df = pd.DataFrame(rows)
    fmt = df.copy()
    for c in ("Ours", "other", "difference", "seed spread"):
        if c in fmt:
            fmt[c] = [f"{v:.3g}" if _finite(v) else "n/a" for v in df[c]]
    caption = (f"{provenance(ctx)}**Comparisons.** Ours against CycleGAN and against the identity on the ranking columns of "
               "Table 1 (means over seeds). Seed spread: the larger std over training seeds of the two rows; "
               "a difference is called a result only when it exceeds twice the spread.")
    return df, fmt, caption


def sweep_table(ctx, group: str):
    """Fig. 7 (group 'switch') or Fig. 8 ('tau') as numbers: one row per value (one seed)."""
    field_name = {"switch": "switch_epoch", "tau": "tau"}[group]
    ex = ctx.profile["kid"]["extractor"]
    num, fmt = {}, {}
    for key in ctx.names(group):
        spec = ctx.specs[key]
        cfg = ctx.config_for(spec)
        m = _metrics(ctx.run_dir(key)) or {}
        labels = dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(spec.dataset))))
        n, f = {field_name: getattr(cfg, field_name)}, {field_name: getattr(cfg, field_name)}
        for d in ("s2t", "t2s"):
            for k, header, digits, _ in COLUMNS:
                v = m.get(f"{k}_{d}", math.nan)
                column = f"{labels[d]} {header.format(ex=ex)}"
                n[column], f[column] = v, _num(v, digits)
        n["training"] = f["training"] = ctx.schedule(key)
        num[spec.name], fmt[spec.name] = n, f
    df = pd.DataFrame.from_dict(num, orient="index").sort_values(field_name)
    keep = [c for c in df.columns if c in ("training", field_name) or df[c].notna().any()]
    df, fmt_df = df[keep], pd.DataFrame.from_dict(fmt, orient="index").loc[df.index, keep]
    df.index.name = fmt_df.index.name = "run"
    what = {"switch": "Fig. 7 as numbers: the epoch of the stage switch",
            "tau": "Fig. 8 as numbers: the threshold τ of the stage-2 discriminator (Eq. 6)"}[group]
    caption = (f"{provenance(ctx)}**{what}.** One training seed; columns as in Table 1, IoU at each run's own τ. "
               "Forked runs share the main run's epochs before the fork.")
    return df, fmt_df, caption


def save_table(num: pd.DataFrame, fmt: pd.DataFrame, caption: str, folder: str | Path, name: str) -> dict:
    """`folder/name.csv` (numbers) and `folder/name.md` (caption + formatted table)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    num.to_csv(csv)
    md.write_text(f"{caption}\n\n{fmt.to_markdown()}\n")
    return {"csv": csv, "md": md}
