"""benchmarks/timing.py: what a benchmark compares is timed interleaved, and a busy machine is flagged."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from timing import busy_note, busy_warnings, interleaved  # noqa: E402


def test_candidates_run_in_turn_after_one_warm_up_each():
    calls = []
    got = interleaved({"A": lambda: calls.append("A"), "B": lambda: calls.append("B")}, rounds=3)
    assert calls == ["A", "B"] + ["A", "B"] * 3
    assert set(got) == {"A", "B"} and all(s["min"] <= s["median"] <= s["max"] for s in got.values())


def test_a_spread_or_a_share_of_peak_above_100_percent_is_flagged():
    slowed = iter([0.0, 0.01, 0.04, 0.01])  # warm-up, then one call 4x the others: something else ran
    got = interleaved({"step": lambda: time.sleep(next(slowed))}, rounds=3)
    warnings = busy_warnings(got, {"agit step 256 px": 1.08})
    assert [w.split(":")[0] for w in warnings] == ["step", "agit step 256 px"]
    assert "108 % of the matmul peak" in warnings[1]
    assert busy_note(warnings).startswith("**BUSY MACHINE")
    steady = {"step": {"min": 1.0, "median": 1.05, "max": 1.1}}
    assert busy_warnings(steady, {"agit step 64 px": 0.4}) == [] and busy_note([]).startswith("Steady machine")
