"""The paper's claims as verdicts, computed from per-seed metrics on the synthetic pairs.

Each `Claim` says one thing the paper says (Table 1, a Table 2 row, Fig. 7, ...) as a comparison
of two rows of a profile — Ours and another — on named metrics. `verdict` judges one metric in
one direction from the two rows' values per training seed:

* *reproduced*   — the difference goes the claim's way by more than twice the seed spread;
* *contradicted* — it goes the other way by more than twice the spread;
* *not resolved* — it is within twice the spread, or a row has one seed (no spread to judge by);
* *not measured* — a row lacks the measure (no attention, no mask); such rows are not shown.

The spread is the larger of the two rows' std over seeds. A claim of *equivalence* (a low τ
works as well as 0.1) is reproduced when the difference is within twice the spread and
contradicted beyond it; with one seed it is not resolved either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .specs import ABLATIONS, BASELINES, LABELS
from .tables import BETTER, DIGITS, RANKING, SHORT, cell, direction_labels, provenance, seed_values

REPRODUCED, CONTRADICTED, UNRESOLVED = "reproduced", "contradicted", "not resolved"
NOT_MEASURED = "not measured"  # a row without the measure (CycleGAN has no attention to score)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: the row `ours` beats (or, `expect="equal"`, matches) the row `other`
    on each metric of `measures`; rows are run names of the profile (seed 0), on `dataset`."""

    text: str  # the claim in a line
    where: str  # its place in the paper
    ours: str
    other: str
    measures: tuple[str, ...]
    expect: str = "better"  # 'better' or 'equal'
    dataset: str | None = None  # None: the profile's main dataset


def verdict(ours, other, better: str, expect: str = "better") -> dict:
    """Judge one metric from its values per seed in the two rows (`better`: 'lower' or 'higher').

    Returns the means, stds, seed counts, the difference (Ours − other), the spread and the verdict."""
    ours, other = (np.asarray([v for v in x if _finite(v)], dtype=float) for x in (ours, other))
    stats = {"ours": _mean(ours), "ours std": _std(ours), "ours seeds": len(ours),
             "other": _mean(other), "other std": _std(other), "other seeds": len(other)}
    diff = stats["ours"] - stats["other"]
    spread = max(stats["ours std"], stats["other std"]) if min(len(ours), len(other)) > 1 else math.nan
    if not (len(ours) and len(other)):
        text = NOT_MEASURED
    elif not _finite(spread):
        text = f"{UNRESOLVED} (1 seed)"
    elif abs(diff) <= 2 * spread:
        text = REPRODUCED if expect == "equal" else f"{UNRESOLVED} (within 2× spread)"
    elif expect == "equal":
        text = CONTRADICTED
    else:
        text = REPRODUCED if (diff < 0) == (better == "lower") else CONTRADICTED
    return {**stats, "difference": diff, "spread": spread, "verdict": text}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _mean(x) -> float:
    return float(x.mean()) if len(x) else math.nan


def _std(x) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


# --------------------------------------------------------------------------- the claims


def paper_claims(ctx) -> list[Claim]:
    """The claims a profile can test, in the paper's order, with its own run names."""
    main = ctx.profile["main_dataset"]
    has = lambda name: f"{main}/{name}" in ctx.specs  # noqa: E731
    methods = [m for m in ("cyclegan", *BASELINES) if has(m)]
    claims = [Claim(f"Ours beats {LABELS[m]}", "Table 1", "ours", m, RANKING) for m in methods]
    claims += [Claim(f"{LABELS[v]} is worse than Ours", f"Table 2, row {LABELS[v]}", "ours", v, RANKING)
               for v in ABLATIONS if has(v)]
    if has("cycle"):
        claims.append(Claim("Without cycle consistency the attention fails", "Sec. 4 ablation study, Fig. 10",
                            "ours", "cycle", ("iou", "empty_att")))
    claims += _switch_claims(ctx) + _tau_claims(ctx)
    if has("cyclegan"):
        claims.append(Claim("The background is preserved (against CycleGAN)", "Sec. 4, Figs. 1, 4, 5", "ours",
                            "cyclegan", ("bg_psnr",)))
    claims += [Claim(f"On object-free images {LABELS[m]} hallucinates target texture, Ours returns the input",
                     "Sec. 4, Fig. 5 bottom, Fig. 17", "ours", m, ("free_psnr",)) for m in methods]
    for pair in ctx.profile.get("pairs", ()):
        s2t = direction_labels(ctx.dataset_path(pair))[0]
        claims.append(Claim(f"Ours beats CycleGAN on `{pair}` ({s2t} in the H→Z columns)", "Table 1, other datasets",
                            "ours", "cyclegan", ("texture", "object_target", "bg_psnr", "free_psnr"), dataset=pair))
    return claims


def _sweep(ctx, group: str, field_name: str) -> tuple[float, dict[str, float]]:
    """(Ours' value, {run name: value}) of `field_name` over a sweep's other points (first seed)."""
    value = lambda key: getattr(ctx.config_for(ctx.specs[key]), field_name)  # noqa: E731
    ours, *points = ctx.names(group)
    return value(ours), {ctx.specs[k].name: value(k) for k in points}


def _switch_claims(ctx) -> list[Claim]:
    """Fig. 7 (appendix): an early switch leaves part of the object out of the attention; a late one,
    or none, lets it spread onto the background."""
    switch, points = _sweep(ctx, "switch", "switch_epoch")
    epochs = ctx.config_for(ctx.spec("ours")).epochs
    early = [n for n, e in points.items() if e < switch]
    late = [n for n, e in points.items() if switch < e < epochs]
    never = [n for n, e in points.items() if e >= epochs]
    spread, where = ("empty_att", "att_precision"), "Appendix, Fig. 7"
    claims = [Claim(f"Switching early (epoch {points[n]}) leaves part of the object unattended", where, "ours", n,
                    ("att_recall", "iou")) for n in early[:1]]
    claims += [Claim(f"Switching late (epoch {points[n]}) lets the attention spread onto the background", where,
                     "ours", n, spread) for n in late[-1:]]
    return claims + [Claim("Training stage 1 only lets the attention spread onto the background", where, "ours", n,
                           spread) for n in never]


def _tau_claims(ctx) -> list[Claim]:
    """Fig. 8 (appendix): a low τ gives results equivalent to 0.1; a high one, less realistic ones."""
    tau, points = _sweep(ctx, "tau", "tau")
    measures, where = ("texture", "cf_kid", "object_target"), "Appendix, Fig. 8"
    return [Claim(f"A low τ ({v:g}) gives results equivalent to τ = {tau:g}", where, "ours", n, measures, "equal")
            if v < tau else
            Claim(f"A high τ ({v:g}) gives less realistic translations, especially H→Z", where, "ours", n, measures)
            for n, v in sorted(points.items(), key=lambda kv: kv[1])]


def claims_table(ctx) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(numbers, formatted, caption): one verdict per claim, measure and direction.

    The numbers are long form, one row per (claim, measure, direction); the formatted table has one
    row per (claim, measure), the two directions side by side."""
    main = ctx.profile["main_dataset"]
    claims = paper_claims(ctx)
    keys = {f"{c.dataset or main}/{name}" for c in claims for name in (c.ours, c.other)}
    values = seed_values(ctx, sorted(keys)).groupby(["dataset", "row", "direction", "metric"])["value"].apply(list)
    rows = []
    for c in claims:
        ds = c.dataset or main
        labels = {"ours": ctx.specs[f"{ds}/{c.ours}"].label, "other": ctx.specs[f"{ds}/{c.other}"].label}
        for metric in c.measures:
            for d in direction_labels(ctx.dataset_path(ds)):
                ours, other = (values.get((ds, labels[r], d, metric), []) for r in ("ours", "other"))
                v = verdict(ours, other, BETTER[metric], c.expect)
                rows.append({"claim": c.text, "paper": c.where, "dataset": ds, "other row": labels["other"],
                             "measure": metric, "direction": d, **v})
    num = pd.DataFrame(rows)
    return num, formatted(num, direction_labels(ctx.dataset_path(main))), provenance(ctx) + caption(num)


def formatted(num: pd.DataFrame, directions: tuple[str, str]) -> pd.DataFrame:
    """One row per (claim, measure), the claim and its place in the paper named on its first row;
    per direction (s2t first, in every table): Ours, the other, the verdict. A measure missing in
    both directions (no attention, no ground truth) is left out."""
    out, last = [], None
    for (claim, metric), group in num.groupby(["claim", "measure"], sort=False):
        if (group["verdict"] == NOT_MEASURED).all():
            continue
        row = {"claim (paper)": "" if claim == last else f"{claim} ({group['paper'].iloc[0]})",
               "measure": SHORT[metric]}
        last = claim
        for k in range(2):
            r = group.iloc[k]
            head = directions[k]
            row[f"{head} Ours"] = cell(r["ours"], r["ours std"], DIGITS[metric], r["ours seeds"])
            row[f"{head} other"] = cell(r["other"], r["other std"], DIGITS[metric], r["other seeds"])
            row[f"{head} verdict"] = _bold(r["verdict"])
        out.append(row)
    return pd.DataFrame(out)


def _bold(text: str) -> str:
    return f"**{text}**" if text in (REPRODUCED, CONTRADICTED) else text


def caption(num: pd.DataFrame) -> str:
    counts = num.loc[num["verdict"] != NOT_MEASURED, "verdict"].str.replace(r" \(.*", "", regex=True)
    tally = ", ".join(f"{(counts == v).sum()} {v}" for v in (REPRODUCED, CONTRADICTED, UNRESOLVED))
    return ("**The paper's claims, as verdicts.** Each claim compares Ours with another row on the synthetic "
            "data's measures (ground truth and counterfactuals), per direction: mean ± std over training seeds. "
            "Verdict: *reproduced* or *contradicted* where the difference exceeds twice the seed spread (the "
            "larger of the two rows' std), *not resolved* where it does not or a row has one seed; an "
            f"equivalence claim is reproduced within twice the spread. Of {len(counts)} verdicts: {tally}.")


def contradictions(num: pd.DataFrame) -> list[str]:
    """The claims these data contradict, each in a sentence with its numbers."""
    lines = []
    for _, r in num[num["verdict"] == CONTRADICTED].iterrows():
        digits = DIGITS[r["measure"]]
        lines.append(f"{r['claim']} ({r['paper']}): **contradicted** on {SHORT[r['measure']]} {r['direction']}: "
                     f"Ours {r['ours']:.{digits}f} ± {r['ours std']:.{digits}f}, {r['other row']} "
                     f"{r['other']:.{digits}f} ± {r['other std']:.{digits}f}.")
    return lines


def save_claims(ctx, folder=None) -> dict:
    """`claims.csv` (long form, one verdict a row) and `claims.md` (the table, then every
    contradiction in words) in the profile's tables folder."""
    folder = Path(folder or ctx.tables_dir)
    folder.mkdir(parents=True, exist_ok=True)
    num, fmt, text = claims_table(ctx)
    csv, md = folder / "claims.csv", folder / "claims.md"
    num.to_csv(csv, index=False)
    against = contradictions(num)
    body = [text, "", fmt.to_markdown(index=False), ""]
    body += (["**Where these data contradict the paper:**", ""] + [f"- {line}" for line in against] if against
             else ["No claim is contradicted by these data."])
    md.write_text("\n".join(body) + "\n")
    return {"csv": csv, "md": md, "verdicts": num["verdict"].value_counts().to_dict()}
