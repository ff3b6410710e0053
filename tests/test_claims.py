"""The verdict logic of the claims table, on made-up per-seed numbers: every verdict reachable."""

import math

import pandas as pd

from agit.claims import CONTRADICTED, REPRODUCED, UNRESOLVED, caption, contradictions, formatted, verdict


def test_a_difference_beyond_twice_the_spread_is_a_result_either_way():
    ours, other = [0.040, 0.042, 0.044], [0.060, 0.062, 0.058]  # std 0.002 each; difference -0.018
    assert verdict(ours, other, "lower")["verdict"] == REPRODUCED
    assert verdict(ours, other, "higher")["verdict"] == CONTRADICTED
    v = verdict(ours, other, "lower")
    assert math.isclose(v["difference"], -0.018) and math.isclose(v["spread"], 0.002)
    assert v["ours seeds"] == v["other seeds"] == 3


def test_within_twice_the_spread_or_one_seed_is_not_resolved():
    assert verdict([1.0, 2.0, 3.0], [2.5, 3.0, 3.5], "higher")["verdict"] == f"{UNRESOLVED} (within 2× spread)"
    # 3.9 vs 1.0 with a spread of 1 (the larger std): 2.9 > 2 -> a result; 2.9 within 2 × 1.5 -> not
    assert verdict([2.9, 3.9, 4.9], [1.0, 1.0, 1.0], "higher")["verdict"] == REPRODUCED
    assert verdict([2.4, 3.9, 5.4], [1.0, 1.0, 1.0], "higher")["verdict"].startswith(UNRESOLVED)
    one = verdict([0.9], [0.1, 0.2, 0.3], "higher")
    assert one["verdict"] == f"{UNRESOLVED} (1 seed)" and math.isnan(one["spread"])
    assert verdict([0.1, None, float("nan")], [0.5, 0.6], "lower")["verdict"] == f"{UNRESOLVED} (1 seed)"
    assert verdict([], [0.5, 0.6], "lower")["verdict"] == "not measured"


def test_an_equivalence_claim_holds_within_the_spread_and_fails_beyond_it():
    assert verdict([0.020, 0.022], [0.021, 0.023], "lower", expect="equal")["verdict"] == REPRODUCED
    assert verdict([0.020, 0.022], [0.040, 0.042], "lower", expect="equal")["verdict"] == CONTRADICTED
    assert verdict([0.020], [0.021, 0.023], "lower", expect="equal")["verdict"].startswith(UNRESOLVED)


def _long(rows):
    """claims_table's long form from (claim, measure, direction, ours seeds, other seeds, better)."""
    out = []
    for claim, metric, d, ours, other, better in rows:
        out.append({"claim": claim, "paper": "Table 1", "dataset": "x", "other row": "CycleGAN", "measure": metric,
                    "direction": d, **verdict(ours, other, better)})
    return pd.DataFrame(out)


def test_the_table_puts_directions_side_by_side_and_names_every_contradiction():
    num = _long([("Ours beats CycleGAN", "bg_psnr", "H→Z", [34, 35, 36], [9, 10, 11], "higher"),
                 ("Ours beats CycleGAN", "bg_psnr", "Z→H", [34], [9, 10, 11], "higher"),
                 ("Ours beats CycleGAN", "texture", "H→Z", [0.05, 0.051, 0.052], [0.03, 0.031, 0.032], "lower"),
                 ("Ours beats CycleGAN", "texture", "Z→H", [0.02, 0.03], [0.021, 0.031], "lower")])
    fmt = formatted(num, ("H→Z", "Z→H"))
    assert list(fmt.columns) == ["claim (paper)", "measure", "H→Z Ours", "H→Z other", "H→Z verdict",
                                 "Z→H Ours", "Z→H other", "Z→H verdict"]
    assert fmt["claim (paper)"].tolist() == ["Ours beats CycleGAN (Table 1)", ""]  # named once
    assert fmt.loc[0, "H→Z verdict"] == f"**{REPRODUCED}**" and fmt.loc[0, "Z→H Ours"] == "34.0 (1 seed)"
    assert fmt.loc[1, "H→Z verdict"] == f"**{CONTRADICTED}**"
    assert all(str(c).count("±") <= 1 for c in fmt.to_numpy().ravel())
    assert "1 reproduced, 1 contradicted, 2 not resolved" in caption(num)
    [line] = contradictions(num)
    assert "texture" in line and "H→Z" in line and "0.051 ± 0.001" in line and "0.031 ± 0.001" in line
