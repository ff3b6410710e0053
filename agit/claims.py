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

import numpy as np
import pandas as pd

from .specs import ABLATIONS, BASELINES, LABELS
from .tables import BETTER, DIGITS, RANKING, SHORT, cell, direction_labels, seed_values

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
    specs, main = ctx.specs, ctx.profile["main_dataset"]
    has = lambda name, ds=main: f"{ds}/{name}" in specs  # noqa: E731
    claims = [Claim(f"Ours beats {LABELS[b]}", "Table 1", "ours", b, RANKING) for b in ("cyclegan", *BASELINES)
              if has(b)]
    claims += [Claim(f"{LABELS[v]} is worse than Ours", f"Table 2, row {LABELS[v]}", "ours", v, RANKING)
               for v in ABLATIONS if has(v)]
    if has("cycle"):
        claims.append(Claim("Without cycle consistency the attention fails", "Sec. 4.2, Fig. 10", "ours", "cycle",
                            ("iou", "empty_att")))
    sweep = {name: spec for name, spec in ((s.name, s) for s in specs.values() if s.dataset == main)
             if name.startswith("switch_") and "_seed" not in name}
    switch, epochs = ctx.config_for(specs[f"{main}/ours"]).switch_epoch, ctx.config_for(specs[f"{main}/ours"]).epochs
    at = {name: spec.overrides["switch_epoch"] for name, spec in sweep.items()}
    early = [n for n, e in at.items() if e < switch]
    late = [n for n, e in at.items() if switch < e < epochs]
    never = [n for n, e in at.items() if e >= epochs]
    if early:
        claims.append(Claim(f"Switching early (epoch {at[min(early, key=at.get)]}) leaves part of the object "
                            "unattended", "Fig. 7, Appendix", "ours", min(early, key=at.get), ("att_recall", "iou")))
    if late:
        claims.append(Claim(f"Switching late (epoch {at[max(late, key=at.get)]}) lets the attention spread onto "
                            "the background", "Fig. 7, Appendix", "ours", max(late, key=at.get),
                            ("empty_att", "att_precision")))
    if never:
        claims.append(Claim("Training stage 1 only lets the attention spread onto the background", "Fig. 7, Appendix",
                            "ours", never[0], ("empty_att", "att_precision")))
    taus = sorted((s.overrides["tau"], s.name) for s in specs.values()
                  if s.dataset == main and s.name.startswith("tau_") and "_seed" not in s.name)
    tau = ctx.config_for(specs[f"{main}/ours"]).tau
    for value, name in taus:
        if value < tau:
            claims.append(Claim(f"A low τ ({value:g}) gives results equivalent to τ = {tau:g}", "Fig. 8, Sec. 4.2",
                                "ours", name, ("texture", "cf_kid", "object_target"), expect="equal"))
        else:
            claims.append(Claim(f"A high τ ({value:g}) gives less realistic translations, especially H→Z",
                                "Fig. 8, Sec. 4.2", "ours", name, ("texture", "cf_kid", "object_target")))
    if has("cyclegan"):
        claims.append(Claim("The background is preserved (against CycleGAN)", "Sec. 4.1, Figs. 1, 5", "ours",
                            "cyclegan", ("bg_psnr",)))
    claims += [Claim(f"On object-free images {LABELS[b]} hallucinates target texture, Ours returns the input",
                     "Fig. 5 bottom, Fig. 17", "ours", b, ("free_psnr",)) for b in ("cyclegan", *BASELINES) if has(b)]
    for pair in ctx.profile.get("pairs", ()):
        s2t = direction_labels(ctx.dataset_path(pair))[0]
        claims.append(Claim(f"Ours beats CycleGAN on `{pair}` ({s2t} in the H→Z columns)", "Table 1, other datasets",
                            "ours", "cyclegan", ("texture", "object_target", "bg_psnr", "free_psnr"), dataset=pair))
    return claims


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
    return num, formatted(num, direction_labels(ctx.dataset_path(main))), caption(num)


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
    from pathlib import Path

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
