"""Timing what a benchmark compares, interleaved (A B C A B C …), and telling a busy machine.

Timed one after the other (all of A, then all of B), a comparison also measures whatever
else the machine did meanwhile: `make bench` once reported a step 18.5x the plain one and
108 % of the matmul peak while other jobs ran. Interleaved, every candidate sees the same
load; the spread of each one's repetitions (max / min) says how steady that load was.
"""

from __future__ import annotations

import statistics
import time

BUSY_SPREAD = 1.25  # max / min of one candidate's repetitions above this: the machine was busy


def interleaved(candidates: dict, rounds: int, sync=None) -> dict[str, dict[str, float]]:
    """{name: {"min", "median", "max"}} seconds of each `candidates[name]()`, after one warm-up call
    each, timed in `rounds` rounds of one call of each in turn. `sync` (e.g. torch.cuda.synchronize)
    is called before each clock reading, so asynchronous work is counted where it ran."""
    sync = sync or (lambda: None)
    for fn in candidates.values():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: {"min": min(t), "median": statistics.median(t), "max": max(t)} for name, t in times.items()}


def spread(stats: dict[str, float]) -> float:
    return stats["max"] / stats["min"]


def busy_warnings(timings: dict[str, dict[str, float]], shares_of_peak: dict[str, float] = ()) -> list[str]:
    """One line per sign of a busy machine: a candidate whose repetitions spread more than
    BUSY_SPREAD, or a share of the matmul peak above 100 % (the peak was measured slowed down)."""
    lines = [f"{name}: repetitions spread {spread(s):.2f}x (min {s['min']:.3f} s, max {s['max']:.3f} s)"
             for name, s in timings.items() if spread(s) > BUSY_SPREAD]
    lines += [f"{name}: {100 * share:.0f} % of the matmul peak, impossible on an idle machine"
              for name, share in dict(shares_of_peak).items() if share > 1]
    return lines


def busy_note(warnings: list[str]) -> str:
    """The report's line: a flag with its reasons, or the steadiness it checked."""
    if not warnings:
        return (f"Steady machine: every candidate's repetitions within {BUSY_SPREAD:.2f}x of each other "
                f"(interleaved: A B C A B C …).")
    return ("**BUSY MACHINE: these figures are not this machine's best** (interleaved A B C A B C …, so the "
            "comparisons hold better than the absolute times): " + "; ".join(warnings) + ".")
