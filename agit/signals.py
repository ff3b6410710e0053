"""Stop signals: how agit stops when asked to, from the first line of `agit …` to the last.

SIGINT (Ctrl-C), SIGTERM (kill, docker stop, a scheduler's time limit), SIGUSR1 and SIGUSR2
(SLURM's and submitit's early warnings) stop every command with exit status 75 and one line, never
a traceback or death by signal. Where work is in progress, it stops at a point where nothing is half done:
training after the current iteration with a checkpoint (train.py), translation after the
current image (translate.py), each by its own handler (`stop_signals`). Elsewhere, at
start-up above all (imports, building the model), `stop_now` raises Stopped at once:
nothing there is worth keeping.

Light on purpose (no torch): the CLI installs `stop_now` before it imports anything heavy.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

# SIGINT: Ctrl-C. SIGTERM: kill, docker stop, a scheduler's time limit or preemption.
# SIGUSR1: what SLURM sends ahead of the time limit when asked to (sbatch --signal=USR1@120).
# SIGUSR2: the same warning for submitit's jobs (`agit reproduce --executor submitit:…`), which
# submitit asks for (--signal=USR2@signal_delay_s, 90 s by default); during training it checkpoints
# instead of submitit's handler (which requeues only a job it can checkpoint itself).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class Stopped(KeyboardInterrupt):
    """A stop signal where there was nothing to finish first: run the same command again.

    A KeyboardInterrupt, so that code which cleans up after Ctrl-C (a partial dataset
    folder, a temporary file) does so for SIGTERM too, and no `except Exception` swallows it.
    """


def stop_now(signum, frame=None):
    raise Stopped(signal.Signals(signum).name)


@contextmanager
def stop_signals(handler):
    """STOP_SIGNALS call `handler` inside the block (their previous handlers come back after)."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
