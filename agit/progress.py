"""Progress as people expect it from tqdm: a live bar in a terminal, plain lines in a file.

In a terminal (stderr is a tty) each loop gets one tqdm bar with its rate and ETA, erased when
the loop ends; what should stay (an epoch's summary) is printed above it with `say`. Written
to a file or a pipe, a bar's carriage-return updates would be hundreds of overwritten lines,
so there is none: a line every `LINE_EVERY` items tells a long loop's progress, and the
summaries are the log.
"""

from __future__ import annotations

import shutil
import sys
import time

from tqdm.auto import tqdm

LINE_EVERY = 100  # items between progress lines when stderr is not a terminal


def interactive() -> bool:
    return sys.stderr.isatty()


def say(*parts: str, sep: str = "  "):
    """A line that stays, printed above a live bar (tqdm.write). In a terminal narrower than the
    line its parts go on lines of their own, the later ones indented, rather than wrap mid-number;
    elsewhere it stays one line (one per epoch in a log file)."""
    line = sep.join(parts)
    if interactive() and len(line) > shutil.get_terminal_size().columns:
        line = "\n  ".join(parts)
    tqdm.write(line, file=sys.stdout)


class Progress:
    """One loop's progress: `update(status=...)` after each item; `status` is a short text
    (a live bar has room for about 20 characters of it at 80 columns)."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "it", enabled: bool = True,
                 every: int | None = None, **bar):
        """`every`: items between lines when not in a terminal (default LINE_EVERY); `bar`: more
        tqdm settings (unit_scale)."""
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.every = every or LINE_EVERY
        self.done, self.start = initial, time.monotonic()
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True, **bar)
                    if enabled and interactive() else None)

    def update(self, n: int = 1, status: str = ""):
        self.done += n
        if self.bar is not None:
            if status:
                self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n)
        elif self.enabled and self.done // self.every > (self.done - n) // self.every and self.done != self.total:
            print(f"{self.desc}: {self.done}/{self.total or '?'} {self.unit}, {self.elapsed():.0f} s"
                  + (f", {status}" if status else ""), file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def track(items, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True):
    """Each of `items`, with a `Progress` over them."""
    with Progress(len(items) if total is None else total, desc, unit=unit, enabled=enabled) as progress:
        for item in items:
            yield item
            progress.update()
