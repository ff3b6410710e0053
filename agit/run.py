"""A run folder: the files one training run writes, and the one module that reads and writes them.

    RUN/config.json              the run's Config
    RUN/log.jsonl                a JSON row per iteration ("iter"), epoch ("epoch"), start, resume or fork
    RUN/samples/epoch_NNNN.png   input | attention | output of the probe images after each epoch
    RUN/checkpoints/latest.pt    the newest training state; epoch_NNNN.pt: the state after epoch NNNN
    RUN/metrics.json             agit evaluate's numbers
    RUN/.lock                    the process training the run, while it does (pid, host)

What makes a folder trustworthy (README: "Runs and checkpoints"):

* One folder, one run: starting a run where another run's files are is refused unless
  asked to overwrite, which removes them first; two runs never mix in one folder.
* One process at a time: the lock file is held with flock(), which the kernel releases
  however its holder ends (even kill -9), so a lock left behind is seen to be stale.
* A checkpoint is data (tensors, numbers, strings, lists, dicts) and is read with
  ``torch.load(weights_only=True)``: a checkpoint from someone else cannot run code.
* A checkpoint is written whole or not at all: serialised in memory, written to a
  temporary file unique to the process, fsync'ed, then renamed over the old one. A
  write error (a full disk) leaves the previous checkpoint as it was and says so.
* A resume starts from latest.pt or, if that is unreadable, from the newest readable
  epoch_NNNN.pt, and says so.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import pickle
import re
import secrets
import shutil
import time
from pathlib import Path

import torch

from .config import HOW_KEYS, RESCHEDULABLE_KEYS, Config, config_changes, describe_changes
from .locks import folder_lock

# What a run writes into its folder: what --overwrite removes (nothing else there is touched).
# provenance.json (agit.info, as training ends) goes too, so a replaced run never shows the old
# run's code; README.md, written with it, is left: the folder may be a user's with a README of its own.
RUN_FILES = ("config.json", "log.jsonl", "metrics.json", "samples", "checkpoints", "provenance.json")
STATE_KEYS = ("model", "config", "epoch", "step")


class RunError(RuntimeError):
    """A run folder cannot be used as asked; the message, one line, says why and what to do."""


class RunExists(RunError):
    """The folder holds another run's files."""


class ResumeMismatch(RunError):
    """A resume asked for settings that change what the run learns."""


class CheckpointError(RunError):
    """A checkpoint cannot be written or read."""


class UnreadableCheckpoint(CheckpointError):
    """Truncated, corrupt, or not an agit checkpoint."""


class UnsafeCheckpoint(CheckpointError):
    """The file holds more than plain data: loading it could run code. Never loaded."""


class Run:
    """One run folder (it need not exist yet)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- paths ------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints_dir / "latest.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        """The checkpoint written after `epoch` epochs."""
        return self.checkpoints_dir / f"epoch_{epoch:04d}.pt"

    def sample_file(self, epoch: int) -> Path:
        return self.samples_dir / f"epoch_{epoch:04d}.png"

    def samples(self) -> list[Path]:
        return sorted(self.samples_dir.glob("epoch_*.png"))

    # -- config, log, metrics ---------------------------------------------------------------
    def config_dict(self) -> dict | None:
        return json.loads(self.config_file.read_text()) if self.config_file.is_file() else None

    def config(self) -> Config:
        if not self.config_file.is_file():
            raise FileNotFoundError(f"no run in {self.path}: {self.config_file} does not exist")
        return Config.from_dict(self.config_dict())

    def write_config(self, cfg: Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(cfg.to_json())

    def log(self) -> list[dict]:
        """Every row of log.jsonl, in order ([] before the first)."""
        if not self.log_file.is_file():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]

    @contextlib.contextmanager
    def log_writer(self):
        """log.jsonl opened for appending rows with `write(row)`, each flushed as written
        (`tail -f` shows progress; a hard kill loses no finished iteration's row)."""
        self.path.mkdir(parents=True, exist_ok=True)  # a loop written by hand need not have called fit()
        with open(self.log_file, "a", buffering=1) as file:
            yield lambda row: file.write(json.dumps(row) + "\n")

    def append_log(self, row: dict) -> None:
        with self.log_writer() as write:
            write(row)

    def trim_log(self, epoch: int, step: int) -> None:
        """Drop the rows after (epoch, step): work no checkpoint holds, which a resume redoes."""
        def position(row):  # an epoch row comes after every iteration of its epoch
            return row.get("epoch", 0), math.inf if row.get("kind") == "epoch" else row.get("step", 0)

        rows = self.log()
        kept = [r for r in rows if position(r) <= (epoch, step)]
        if len(kept) < len(rows):
            _write_atomically(self.log_file, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def metrics(self) -> dict | None:
        """metrics.json (agit evaluate), None before the run is evaluated."""
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else None

    def write_metrics(self, metrics: dict) -> None:
        self.metrics_file.write_text(json.dumps(metrics, indent=1, sort_keys=True))

    # -- checkpoints: reading ---------------------------------------------------------------
    def write_provenance(self, facts: dict) -> None:
        """RUN/provenance.json: where the run's weights came from (agit.info's, or an import's source)."""
        (self.path / "provenance.json").write_text(json.dumps(facts, indent=1))

    def checkpoints(self) -> list[Path]:
        """latest.pt, then epoch_NNNN.pt newest first: the order a resume tries them in."""
        epochs = sorted(self.checkpoints_dir.glob("epoch_*.pt"), reverse=True)
        return [p for p in (self.latest, *epochs) if p.is_file()]

    def load_checkpoint(self, path: str | Path | None = None, mmap: bool = False) -> dict:
        """A checkpoint's state (latest.pt by default), on CPU, loaded as plain data only."""
        path = Path(path) if path else self.latest
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}: train the run first")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
            if "Weights only load failed" in str(err):
                raise UnsafeCheckpoint(
                    f"refusing to load {path}: it holds more than tensors and plain values "
                    f"({_unsupported(err)}), and unpickling it could run code") from None
            raise UnreadableCheckpoint(
                f"cannot read checkpoint {path}: truncated or corrupt ({_first_line(err)})") from None
        if not isinstance(state, dict) or not set(STATE_KEYS) <= state.keys():
            raise UnreadableCheckpoint(f"{path} is not an agit checkpoint (it lacks {', '.join(STATE_KEYS)})")
        return state

    def resume_point(self, mmap: bool = False) -> tuple[Path, dict, list[str]] | None:
        """(path, state) of the newest readable checkpoint, with why each newer one was passed
        over; None if the run has none. An unsafe file is never passed over: it raises."""
        passed = []
        for path in self.checkpoints():
            try:
                return path, self.load_checkpoint(path, mmap=mmap), passed
            except UnsafeCheckpoint:
                raise
            except UnreadableCheckpoint as err:
                passed.append(str(err))
        if passed:
            raise UnreadableCheckpoint(f"no readable checkpoint in {self.checkpoints_dir}: {'; '.join(passed)}")
        return None

    def progress(self) -> tuple[int, int] | None:
        """(epoch, step) a resume would start from; None without a checkpoint. Reads two ints, not the file."""
        point = self.resume_point(mmap=True)
        return (point[1]["epoch"], point[1]["step"]) if point else None

    def finished(self) -> bool:
        """Whether the run has trained all the epochs of its config.json."""
        saved, done = self.config_dict(), self.progress()
        return saved is not None and done is not None and done[0] >= saved["epochs"]

    def load_model(self, checkpoint: str | Path | None = None, device=None):
        """The trained model (AGGAN or a baseline; latest.pt by default), in eval mode."""
        from .baselines import build_model
        from .distributed import pick_device

        state = self.load_checkpoint(checkpoint)
        model = build_model(Config.from_dict(state["config"]))
        model.load_state_dict(state["model"])
        return model.to(pick_device(device)).eval()

    # -- checkpoints: writing ---------------------------------------------------------------
    def save_checkpoint(self, state: dict, epoch: int | None = None) -> Path:
        """Write latest.pt and, with `epoch`, epoch_NNNN.pt; a failed write leaves the previous file
        as it was and raises CheckpointError saying so. Returns the last file written."""
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        targets = [self.latest] + ([self.epoch_checkpoint(epoch)] if epoch is not None else [])
        for target in targets:
            try:
                _write_atomically(target, buffer.getbuffer())
            except OSError as err:
                raise CheckpointError(f"{_why(err)} while writing {target}; {self._intact()}") from None
        return targets[-1]

    def _intact(self) -> str:
        try:
            done = self.progress()
        except CheckpointError:
            done = None
        if done is None:
            return "no earlier checkpoint exists"
        return f"the previous checkpoint {self.latest} (epoch {done[0]}, iteration {done[1]}) is intact"

    def remove_temporary_files(self) -> None:
        """Temporary checkpoint files left by a process that died while writing one."""
        for tmp in self.checkpoints_dir.glob("*.tmp"):  # ours are hidden; `*` matches those too
            tmp.unlink(missing_ok=True)

    def prune(self, keep_epochs=()) -> list[Path]:
        """Delete the per-epoch checkpoints but those of `keep_epochs`; latest.pt stays. Returns them."""
        keep = {self.epoch_checkpoint(e).name for e in keep_epochs}
        removed = [p for p in self.checkpoints_dir.glob("epoch_*.pt") if p.name not in keep]
        for p in removed:
            p.unlink()
        return removed

    # -- ownership ----------------------------------------------------------------------------
    def run_files(self) -> list[str]:
        """The names of the run files present (RUN_FILES; an empty checkpoints/ does not count)."""
        found = []
        for name in RUN_FILES:
            p = self.path / name
            if p.is_file() or (p.is_dir() and any(p.iterdir())):
                found.append(name)
        return found

    def start(self, cfg: Config, overwrite: bool = False) -> None:
        """Make the folder this new run's: refuse one that holds another run's files, unless
        `overwrite`, which removes those files first. Writes config.json."""
        found = self.run_files()
        if found and not overwrite:
            raise RunExists(self._occupied(found))
        for name in found:
            if (self.path / name).is_dir():
                shutil.rmtree(self.path / name)
            else:
                (self.path / name).unlink()
        self.write_config(cfg)

    def begin(self, cfg: Config, overwrite: bool, resumed: dict | None, at: tuple[int, int], **facts) -> None:
        """Open the folder for training from (epoch, step) `at`: a new run (`resumed` None) claims it
        (`start`); a resumed one must find it where its checkpoint left it, and trims the log back to
        there. Logs a 'start' or 'resume' row with `resumed` (what the resume began from) and `facts`."""
        if resumed is None:
            self.start(cfg, overwrite)
        elif self.progress() != at:
            raise RunError(f"{self} moved on since this resume loaded it (another process trained it "
                           f"meanwhile); resume again")
        else:
            self.write_config(cfg)
            self.trim_log(*at)
        self.append_log({"kind": "start" if resumed is None else "resume", "epoch": at[0], "step": at[1],
                         "time": time.time(), **(resumed or {}), **facts})

    def _occupied(self, found: list[str]) -> str:
        try:
            done = self.progress()
        except CheckpointError:
            done = None
        if done is None:
            return (f"{self.path} holds another run's files ({', '.join(found)}) but no checkpoint to resume; "
                    f"start over there with --overwrite (deletes them), or choose another --out")
        epochs = (self.config_dict() or {}).get("epochs")
        if epochs and done[0] >= epochs:
            where = f"epoch {done[0]} of {epochs}, finished"
        else:
            where = f"{done[0]} of {epochs} epochs done" + (f", {done[1]} iterations into the next" if done[1] else "")
        return (f"{self.path} already holds a run ({where}); continue it with --resume, or start over "
                f"with --overwrite (deletes its checkpoints, log and samples)")

    def fork_from(self, parent: "Run", epoch: int, cfg: Config) -> None:
        """Start this run from `parent`'s checkpoint after `epoch` epochs, with its log so far.

        The state is the parent's, the config this run's: a fork is a new run that shares
        the parent's first epochs. latest.pt is written last, so a fork is complete once it exists.
        """
        state = parent.load_checkpoint(parent.epoch_checkpoint(epoch))
        state["config"] = cfg.to_dict()
        self.start(cfg, overwrite=True)
        rows = [r for r in parent.log() if r.get("epoch", 0) < epoch]
        rows.append({"kind": "fork", "epoch": epoch, "step": 0, "from": str(parent.epoch_checkpoint(epoch))})
        _write_atomically(self.log_file, "".join(json.dumps(r) + "\n" for r in rows).encode())
        self.save_checkpoint(state)

    @contextlib.contextmanager
    def lock(self):
        """Hold the run's lock for the block (re-entrant within a process); temporary files of a
        writer that died are removed once it is held."""
        with folder_lock(self.path / ".lock", f"run folder {self.path}"):
            self.remove_temporary_files()
            yield self


# ----------------------------------------------------------------------------- config checks


def resume_config(run: Run, state: dict, overrides: dict) -> tuple[Config, dict[str, tuple]]:
    """The config a resume continues with, and what it changes (HOW_KEYS and epochs only).

    A field that changes what is learned must equal the checkpoint's: the optimisers,
    the pools and the weights were made with it. ResumeMismatch lists any that differ.
    """
    saved = state["config"]
    cfg = Config.from_dict({**saved, **overrides})
    changes = config_changes(saved, cfg.to_dict())
    learned = {k: v for k, v in changes.items() if k not in HOW_KEYS + RESCHEDULABLE_KEYS}
    if learned:
        raise ResumeMismatch(f"cannot resume {run.path} with {describe_changes(learned)}: that changes what the "
                             f"run learns (a resume may change the epochs and how the run computes, e.g. workers "
                             f"or compile); train a new run with another --out, or start over with --overwrite")
    if cfg.epochs < state["epoch"]:
        raise ResumeMismatch(f"cannot resume {run.path} with epochs {cfg.epochs}: it has trained "
                             f"{state['epoch']} epochs already")
    return cfg, changes


# ----------------------------------------------------------------------------- files and locks


def _write_atomically(target: Path, data) -> None:
    """`data` into `target` via a temporary file unique to this call: whole or not at all."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _why(err: OSError) -> str:
    words = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
    return words.get(err.errno, f"cannot write ({err.strerror or err})")


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _unsupported(err: BaseException) -> str:
    """What torch's weights-only unpickler refused, e.g. 'GLOBAL posix.system'."""
    found = re.search(r"GLOBAL (\S+?)\.?(\s|$)", str(err))
    return f"GLOBAL {found.group(1)}" if found else "an object torch does not allow"
