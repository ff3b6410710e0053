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
of every verdict (`agit.claims`): a difference within twice it is not a result.
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

from .files import write_atomically
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
    ("att_recall", "attention recall@τ", 3, "higher"),
    ("att_precision", "attention precision@τ", 3, "higher"),
    ("free_psnr", "object-free PSNR dB", 1, "higher"),
    ("kid", "KID×100 [{ex}], paper protocol", 2, "lower"),
)
BETTER = {key: better for key, _, _, better in COLUMNS}
DIGITS = {key: digits for key, _, digits, _ in COLUMNS}
# short headers of the narrow per-direction tables (the arrow: which way is better)
SHORT = {"cf_kid": "KID to cf ×100 ↓", "texture": "texture ↓", "cf_psnr": "PSNR to cf ↑", "object_target": "object → target ↑",
         "iou": "IoU@τ ↑", "bg_psnr": "bg PSNR ↑", "empty_att": "object-free att ↓", "att_recall": "recall@τ ↑",
         "att_precision": "precision@τ ↑", "free_psnr": "object-free PSNR ↑"}
RANKING = ("cf_kid", "texture", "cf_psnr", "object_target", "bg_psnr", "iou", "empty_att")  # the narrow tables' columns
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


def cell(mean, std, digits: int, seeds: int | None = None) -> str:
    """`mean ± std` (std over training seeds); one ± a cell, and a lone seed said in words."""
    if not _finite(mean):
        return "n/a"
    text = f"{mean:.{digits}f}"
    if _finite(std):
        return f"{text} ± {std:.{digits}f}"
    return text + (" (1 seed)" if seeds == 1 else "")


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
                    f[f"{lab} {header.format(ex=ex)}"] = (cell(stats["mean"], stats["seed_std"], digits)
                                                          if results else "not run")
                    if "subset_std" in stats:  # its own column: a cell carries one ±
                        n[f"{lab} {key} subset std"] = stats["subset_std"]
                        f[f"{lab} {header.format(ex=ex).split(' [')[0]}: std over subsets"] = (
                            _num(stats["subset_std"], digits) if results else "")
                if reference:  # the published numbers beside ours
                    ref = reference.get(label, {}).get(lab)
                    n[f"{lab} paper KID×100"], n[f"{lab} paper std×100"] = ref if ref else (math.nan, math.nan)
                    f[f"{lab} paper KID×100 [Inception, {reference_name(ctx.dataset_path(ds))}]"] = (
                        f"{ref[0]:.2f} ± {ref[1]:.2f}" if ref else "—")
        n["seeds"] = f["seeds"] = max((len(r) for r in by_ds.values()), default=0)
        num[label], fmt[label] = n, f
    num_df, fmt_df = pd.DataFrame.from_dict(num, orient="index"), pd.DataFrame.from_dict(fmt, orient="index")
    num_df.index.name = fmt_df.index.name = "algorithm"  # columns: per dataset, s2t then t2s, as every table
    return num_df, fmt_df, _caption(ctx, title, {c[0] for c in shown}, num_df)


def provenance(ctx) -> str:
    """What a caption says first where its numbers are not the paper's: stand-in data, a preflight."""
    parts = [f"**STAND-IN DATA:** `{name}` is synthetic (agit data synth --like {like}), not the real {like}."
             for name, like in ctx.stand_ins.items()]
    if ctx.profile.get("smoke"):
        parts.append(f"**PREFLIGHT:** every run cut to {ctx.profile['smoke']['schedule']}: these numbers measure nothing.")
    return "".join(p + " " for p in parts)


def _caption(ctx, title: str, shown: set, num: pd.DataFrame) -> str:
    ex, kid = ctx.profile["kid"]["extractor"], ctx.profile["kid"]
    parts = [f"{provenance(ctx)}**{title}**", "Rows in the paper's order."]
    if "cf_kid" in shown:
        parts.append("The columns that rank come first: the distance to the counterfactual — the true translation the synthetic pair "
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
    parts.append("Cells: mean ± std over the training seeds (column `seeds`; one seed: the mean alone); the KID "
                 "columns' std over their subsets has a column of its own. Every run trains the same schedule: "
                 f"{ctx.schedule('ours').split(',')[0]}.")
    note = kid_note(num)
    return " ".join(parts + ([note] if note else []))


def kid_note(num: pd.DataFrame) -> str:
    """What a reader needs where a KID is negative or its seed std exceeds its mean."""
    kid = [c for c in num.columns if c.split(" ", 1)[-1] in KID_LIKE]
    negative = any((num[c] < 0).any() for c in kid)
    wide = any((num[f"{c} seed std"] > num[c].abs()).any() for c in kid if f"{c} seed std" in num)
    if not (negative or wide):
        return ""
    return ("*Note:* KID is an unbiased estimate of a squared distance, so a set as close to the reference as "
            "another sample of it scores about 0, and the estimate can fall below 0"
            + (" (negative cells here)" if negative else "")
            + "; near 0 its std over seeds can exceed its mean" + (" (as here)" if wide else "")
            + ". Such values mean 'indistinguishable at this sample size', not a negative distance.")


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
    """Table 2: the ablations on the main dataset with the profile's `row_seeds` seeds; Ours with
    every seed and, where the ablations have fewer, its first seed alone: the one they share
    their seed (and forks) with."""
    main = ctx.profile["main_dataset"]
    rows = {ctx.specs[k].label: {main: _results(ctx, ctx.seeds_of(k))} for k in ctx.names("table2")}
    if ctx.profile.get("row_seeds", 1) < ctx.profile["seeds"]:
        rows["Ours, first seed (as the ablations)"] = {main: _results(ctx, [f"{main}/ours"])}
    return kid_table(rows, PAPER_TABLE2, ctx, "Table 2.")


def per_direction(num: pd.DataFrame, ctx, title: str, dataset: str | None = None, keys=RANKING) -> dict:
    """The narrow view of a table's numbers `num` (kid_table's or sweep_table's): per direction, one
    column per metric of `keys` (index + 7: readable), the rows' seed counts in their labels.
    Returns {direction label: (numbers, formatted, caption)}."""
    out = {}
    for lab in direction_labels(ctx.dataset_path(dataset)):
        keys_here = [k for k in keys if f"{lab} {k}" in num and num[f"{lab} {k}"].notna().any()]
        n = num[[f"{lab} {k}" for k in keys_here]].set_axis(keys_here, axis=1)
        f = pd.DataFrame({SHORT[k]: [cell(num.loc[r, f"{lab} {k}"], num.loc[r, f"{lab} {k} seed std"], DIGITS[k])
                                     for r in num.index] for k in keys_here},
                         index=[f"{r} ({int(num.loc[r, 'seeds'])})" for r in num.index])
        f.index.name = f"{lab} (seeds)"
        caption = (f"{provenance(ctx)}**{title} {lab}.** Mean ± std over training seeds, their number in brackets; ↑/↓: which way "
                   "is better; cf: the counterfactual (the true translation). Every column in the full table.")
        out[lab] = (n, f, caption)
    return out


def sweep_table(ctx, group: str):
    """Fig. 7 (group 'switch') or Fig. 8 ('tau') as numbers: one row per value, mean ± std over its
    seeds (the profile's `row_seeds`; the default value is Ours, with all of its seeds)."""
    field_name = {"switch": "switch_epoch", "tau": "tau"}[group]
    rows, values = {}, {}
    for key in ctx.names(group):
        spec = ctx.specs[key]
        label = "Ours (default)" if spec.name == "ours" else spec.label
        rows[label] = {spec.dataset: _results(ctx, ctx.seeds_of(key))}
        values[label] = getattr(ctx.config_for(spec), field_name)
    num, fmt, _ = kid_table(rows, {}, ctx, "")
    order = sorted(num.index, key=values.get)
    num, fmt = num.loc[order], fmt.loc[order]
    num.insert(0, field_name, [values[r] for r in order])
    fmt.insert(0, field_name, [values[r] for r in order])
    num.index.name = fmt.index.name = "run"
    what = {"switch": "Fig. 7 as numbers: the epoch of the stage switch",
            "tau": "Fig. 8 as numbers: the threshold τ of the stage-2 discriminator (Eq. 6)"}[group]
    caption = (f"{provenance(ctx)}**{what}.** Mean ± std over the seeds (column `seeds`); columns as in Table 1, IoU, recall and "
               "precision at each run's own τ. Forked runs share their seed's main run's epochs before the fork.")
    note = kid_note(num)
    return num, fmt, caption + (f" {note}" if note else "")


def pair_table(ctx, pair: str):
    """Ours and CycleGAN on one of the profile's other pairs (`pairs`), every seed averaged."""
    rows = {ctx.specs[k].label: {pair: _results(ctx, ctx.seeds_of(k))} for k in ctx.names("pairs")
            if ctx.specs[k].dataset == pair}
    return kid_table(rows, {}, ctx, f"Another pair: `{pair}`.")


# the narrow tables' columns where the ranking ones are not what the table is about
NARROW = {"fig7_switch_sweep": ("texture", "object_target", "iou", "att_recall", "att_precision", "empty_att",
                                "bg_psnr"),
          "fig8_tau_sweep": ("cf_kid", "texture", "object_target", "iou", "att_precision", "empty_att", "bg_psnr")}


def save_all(ctx) -> dict:
    """Every table of the report into `ctx.tables_dir`: the full tables (Tables 1 and 2, the sweeps
    of Figs. 7 and 8, each other pair), their narrow views per direction (`<name>_s2t`, `_t2s`) and
    the claims (`agit.claims`). Returns {name: its files} and, under 'numbers', the full tables."""
    from .claims import save_claims

    built = {"table1_kid": (table1(ctx), None, "Table 1,"), "table2_ablations": (table2(ctx), None, "Table 2,"),
             "fig7_switch_sweep": (sweep_table(ctx, "switch"), None, "Fig. 7,"),
             "fig8_tau_sweep": (sweep_table(ctx, "tau"), None, "Fig. 8,")}
    built |= {f"pair_{p}": (pair_table(ctx, p), p, f"`{p}`,") for p in ctx.profile.get("pairs", ())}
    saved = {"claims": save_claims(ctx)}
    for name, ((num, fmt, caption), dataset, title) in built.items():
        saved[name] = save_table(num, fmt, caption, ctx.tables_dir, name)
        views = per_direction(num, ctx, title, dataset, NARROW.get(name, RANKING))
        for d, (n, f, c) in zip(("s2t", "t2s"), views.values()):
            saved[f"{name}_{d}"] = save_table(n, f, c, ctx.tables_dir, f"{name}_{d}")
    saved["numbers"] = {name: b[0][0] for name, b in built.items()}
    return saved


def seed_values(ctx, keys) -> pd.DataFrame:
    """Every seed's value of every metric of the runs `keys` and their seeds, long form: one row per
    (row label, seed, direction, metric): what the seed plots draw and the claims compare."""
    records, seen = [], set()
    for key in keys:
        spec = ctx.specs[key]
        labels = dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(spec.dataset))))
        for seed_key in ctx.seeds_of(key):
            if seed_key in seen:  # a group may list a row's seeds itself (Table 1 does)
                continue
            seen.add(seed_key)
            m = _metrics(ctx.run_dir(seed_key)) or {}
            for d, lab in labels.items():
                for metric in BETTER:
                    if _finite(m.get(f"{metric}_{d}")):
                        records.append({"dataset": spec.dataset, "row": spec.label, "seed": ctx.specs[seed_key].seed,
                                        "direction": lab, "metric": metric, "value": float(m[f"{metric}_{d}"])})
    return pd.DataFrame(records, columns=["dataset", "row", "seed", "direction", "metric", "value"])


def save_table(num: pd.DataFrame, fmt: pd.DataFrame, caption: str, folder: str | Path, name: str) -> dict:
    """`folder/name.csv` (numbers) and `folder/name.md` (caption + formatted table)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    write_atomically(csv, num.to_csv())
    write_atomically(md, f"{caption}\n\n{fmt.to_markdown(index=fmt.index.name is not None)}\n")
    return {"csv": csv, "md": md}
