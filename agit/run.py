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
* Every file is written whole or not at all (agit.files: a temporary file beside it,
  fsync'ed, renamed over the old one); a write error (a full disk) leaves the previous
  file as it was and says so. log.jsonl is appended to, a row at a time: a last row cut
  short by a failed write is dropped when the log is read, with a warning.
* A user's own file under one of these names (a README.md, a config.json, a samples/
  folder of photos) is never taken for the run's nor overwritten: agit's README.md is
  marked, and its JSON files are recognised by their fields.
* A resume starts from latest.pt or, if that is unreadable, from the newest readable
  epoch_NNNN.pt, and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import re
import time
import warnings
from pathlib import Path

import torch

from .config import HOW_KEYS, RESCHEDULABLE_KEYS, Config, config_changes, describe_changes
from .files import WriteFailed, write_atomically
from .locks import folder_lock

# What a run writes into its folder: what --overwrite removes (nothing else there is touched), and
# of those only agit's own (`_ours`): a user's README.md or samples/ folder in a run folder stays.
# README.md and provenance.json (agit.info, as training ends) go too, so a replaced run never
# shows the old run's settings or code, even when the new one is stopped before it ends.
RUN_FILES = ("config.json", "log.jsonl", "metrics.json", "samples", "checkpoints", "provenance.json", "README.md")
# The fields that tell agit's JSON files from a user's file of the same name.
JSON_FIELDS = {"config.json": ("preset", "variant", "data"), "log.jsonl": ("kind",),
               "metrics.json": ("kid_extractor",), "provenance.json": ("agit", "commit")}
README_MARK = "<!-- agit: this run's summary, rewritten when training ends; `agit info RUN` prints it -->\n"
# agit's files inside samples/ and checkpoints/ (with the temporary files of agit.files)
OWN_IN_FOLDER = {"samples": ("epoch_*.png",), "checkpoints": ("latest.pt", "epoch_*.pt", ".*.tmp")}
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
    def readme_file(self) -> Path:
        return self.path / "README.md"

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
        return _read_json(self.config_file)

    def not_a_run(self) -> str:
        """The one wording of every command given a folder that is not a run."""
        return f"{self.path} is not a run folder: it has no config.json (agit train --out makes one)"

    def config(self) -> Config:
        if not self.config_file.is_file():
            raise FileNotFoundError(self.not_a_run())
        return Config.from_dict(self.config_dict())

    def write_config(self, cfg: Config) -> None:
        try:
            write_atomically(self.config_file, cfg.to_json())
        except WriteFailed as err:  # as a run starts or resumes: say where it stands
            raise RunError(f"{err}; {self._intact()}") from None

    def log(self) -> list[dict]:
        """Every row of log.jsonl, in order ([] before the first). A last row cut short (a write
        that failed, a full disk) is dropped with a warning; an unreadable row before it is an error."""
        rows, torn = self._read_log()
        if torn:
            warnings.warn(f"{self.log_file}: dropping its last line, cut short by a write that failed "
                          f"({torn!r})", stacklevel=2)
        return rows

    def _read_log(self) -> tuple[list[dict], str]:
        """(the rows, the torn last line or '')."""
        if not self.log_file.is_file():
            return [], ""
        text = self.log_file.read_text(errors="replace")
        lines = text.split("\n")
        rows, torn = [], lines.pop()  # the text after the last newline: '' unless a write was cut short
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as err:
                raise RunError(f"cannot read {self.log_file}: line {number} is not a JSON row ({err}); "
                               f"the file was changed by something other than agit") from None
        return rows, torn[:60]

    @contextlib.contextmanager
    def log_writer(self):
        """log.jsonl opened for appending rows with `write(row)`, each flushed as written
        (`tail -f` shows progress; a hard kill loses no finished iteration's row). A write that
        fails (a full disk) stops with one line; the row it cut short is dropped on the next read."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)  # a loop written by hand need not have called fit()
            self._cut_torn_line()
            file = open(self.log_file, "ab", buffering=0)  # unbuffered: nothing is left to flush after a failure
        except OSError as err:
            raise self._log_failed(err) from None

        def write(row: dict):
            data = memoryview((json.dumps(row) + "\n").encode())
            try:
                while data:  # a write may take part of the row (a disk filling up), then fail on the rest
                    data = data[file.write(data):]
            except OSError as err:
                raise self._log_failed(err) from None

        with file:
            yield write

    def _log_failed(self, err: OSError) -> RunError:
        return RunError(f"{WriteFailed(err, self.log_file)}; {self._intact()}, and --resume goes on "
                        f"from there once the disk has room")

    def _cut_torn_line(self) -> None:
        """Remove a last row cut short by a failed write, so the next row starts on a line of its own."""
        if not self.log_file.is_file() or not self.log_file.stat().st_size:
            return
        with open(self.log_file, "rb+") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) == b"\n":
                return
            file.seek(0)
            file.truncate(file.read().rfind(b"\n") + 1)

    def append_log(self, row: dict) -> None:
        with self.log_writer() as write:
            write(row)

    def trim_log(self, epoch: int, step: int) -> None:
        """Drop the rows after (epoch, step): work no checkpoint holds, which a resume redoes."""
        def position(row):  # an epoch row comes after every iteration of its epoch
            return row.get("epoch", 0), math.inf if row.get("kind") == "epoch" else row.get("step", 0)

        rows = self.log()
        kept = [r for r in rows if position(r) <= (epoch, step)]
        if len(kept) < len(rows):  # (a torn last row is cut as the next row is appended)
            write_atomically(self.log_file, "".join(json.dumps(r) + "\n" for r in kept))

    def metrics(self) -> dict | None:
        """metrics.json (agit evaluate), None before the run is evaluated."""
        return _read_json(self.metrics_file)

    def write_metrics(self, metrics: dict) -> None:
        self._refuse_foreign(["metrics.json"])
        write_atomically(self.metrics_file, json.dumps(metrics, indent=1, sort_keys=True))

    def write_readme(self, text: str) -> bool:
        """RUN/README.md (marked as agit's), unless the folder holds a README.md of the user's,
        which is kept: returns whether it was written."""
        if self.readme_file.exists() and not _ours(self.readme_file):
            return False
        write_atomically(self.readme_file, README_MARK + text)
        return True

    # -- checkpoints: reading ---------------------------------------------------------------
    def write_provenance(self, facts: dict) -> None:
        """RUN/provenance.json: where the run's weights came from (agit.info's, or an import's source)."""
        write_atomically(self.path / "provenance.json", json.dumps(facts, indent=1))

    def checkpoints(self) -> list[Path]:
        """latest.pt, then epoch_NNNN.pt newest first: the order a resume tries them in."""
        epochs = sorted(self.checkpoints_dir.glob("epoch_*.pt"), reverse=True)
        return [p for p in (self.latest, *epochs) if p.is_file()]

    def load_checkpoint(self, path: str | Path | None = None, mmap: bool = False) -> dict:
        """A checkpoint's state (latest.pt by default), on CPU, loaded as plain data only."""
        path = Path(path) if path else self.latest
        if not path.is_file():
            raise FileNotFoundError(self.not_a_run() if path == self.latest and not self.config_file.is_file()
                                    else f"no checkpoint at {path}: train the run first")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
            # torch names the global a crafted file asks for; other refusals are bytes that are no pickle
            if "Weights only load failed" in str(err) and "GLOBAL" in str(err):
                raise UnsafeCheckpoint(
                    f"refusing to load {path}: it holds more than tensors and plain values "
                    f"({_unsupported(err)}), and unpickling it could run code") from None
            raise UnreadableCheckpoint(
                f"cannot read checkpoint {path}: truncated or corrupt ({_first_line(err)})") from None
        if not isinstance(state, dict) or not set(STATE_KEYS) <= state.keys():
            raise UnreadableCheckpoint(f"{path} is not an agit checkpoint (it lacks {', '.join(STATE_KEYS)})")
        for key, kind in (("epoch", int), ("step", int), ("config", dict), ("model", dict)):
            value = state[key]
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
                raise UnreadableCheckpoint(f"{path} is not an agit checkpoint (its {key} is {state[key]!r})")
        if "checksum" in state and state["checksum"] != state_checksum(state):
            raise UnreadableCheckpoint(f"cannot read checkpoint {path}: corrupt (its tensors do not match "
                                       f"the checksum written with them)")
        return state

    def resume_point(self, mmap: bool = False) -> tuple[Path, dict, list[str]] | None:
        """(path, state) of the newest readable checkpoint, with why each newer one was passed
        over; None if the run has none. An unsafe file is never passed over: it raises."""
        found = self.checkpoints()
        passed = [] if self.latest.is_file() or not found else [f"{self.latest} is missing"]
        for path in found:
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
        torch.save({**state, "checksum": state_checksum(state)}, buffer)
        targets = [self.latest] + ([self.epoch_checkpoint(epoch)] if epoch is not None else [])
        for target in targets:
            try:
                write_atomically(target, buffer.getbuffer())
            except WriteFailed as err:
                raise CheckpointError(f"{err}; {self._intact()}") from None
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
        """Temporary files (agit.files) left by a process that died while writing one."""
        for tmp in self.checkpoints_dir.glob("*.tmp"):  # ours are hidden; `*` matches those too
            tmp.unlink(missing_ok=True)
        for name in RUN_FILES:
            for tmp in self.path.glob(f".{name}.*.tmp"):
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
        """The names of the run files present that agit wrote (RUN_FILES, `_ours`)."""
        return [name for name in RUN_FILES if (self.path / name).exists() and _ours(self.path / name)]

    def _refuse_foreign(self, names) -> None:
        """RunError if a file agit would write over (of `names`) is there and is not agit's."""
        foreign = [n for n in names if (self.path / n).is_file() and not _ours(self.path / n)]
        if foreign:
            raise RunError(f"{self.path} holds {', '.join(foreign)} that agit did not write, and agit would "
                           f"write its own there; move {'them' if len(foreign) > 1 else 'it'} or choose another --out")

    def start(self, cfg: Config, overwrite: bool = False) -> None:
        """Make the folder this new run's: refuse one that holds another run's files, unless
        `overwrite`, which removes those files first (agit's only). Writes config.json."""
        self._refuse_foreign(JSON_FIELDS)
        found = self.run_files()
        if found and not overwrite:
            raise RunExists(self._occupied(found))
        for name in found:
            path = self.path / name
            if path.is_dir():  # samples/, checkpoints/: agit's files in it, then the folder if that empties it
                for file in [f for pattern in OWN_IN_FOLDER[name] for f in path.glob(pattern)]:
                    file.unlink()
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                path.unlink()
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
        write_atomically(self.log_file, "".join(json.dumps(r) + "\n" for r in rows))
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
    changes = config_changes(saved, {**saved, **overrides})  # before validating: a change the run refuses is the news
    learned = {k: v for k, v in changes.items() if k not in HOW_KEYS + RESCHEDULABLE_KEYS}
    if learned:
        raise ResumeMismatch(f"cannot resume {run.path} with {describe_changes(learned)}: that changes what the "
                             f"run learns (a resume may change the epochs and how the run computes, e.g. workers "
                             f"or compile); train a new run with another --out, or start over with --overwrite")
    cfg = Config.from_dict({**saved, **overrides})
    least = state["epoch"] + (state["step"] > 0)  # an epoch begun is finished, not cut short
    if cfg.epochs < least:
        done = f"{state['epoch']} epochs"
        if state["step"]:
            done += f" and {state['step']} iterations of epoch {least}"
        raise ResumeMismatch(f"cannot resume {run.path} with epochs {cfg.epochs}: it has trained {done} already; "
                             f"--epochs must be at least {least}")
    return cfg, changes


# ----------------------------------------------------------------------------- files and locks


def _read_json(path: Path) -> dict | None:
    """A JSON file's content, None if there is none; RunError naming the file if it cannot be parsed."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise RunError(f"cannot read {path}: not valid JSON ({err}); move it away if it is not agit's") from None


def state_checksum(state: dict) -> str:
    """A digest of a checkpoint's tensors and plain values (its "checksum" entry aside): torch.load
    does not check the bytes of tensor data, so a flipped bit would otherwise be trained on."""
    digest = hashlib.blake2b(digest_size=16)

    def add(value):
        if isinstance(value, torch.Tensor):
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                if key != "checksum":
                    digest.update(repr(key).encode())
                    add(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        else:
            digest.update(repr(value).encode())

    add(state)
    return digest.hexdigest()


def _ours(path: Path) -> bool:
    """Whether `path` (of RUN_FILES) was written by agit, not a user's file or folder of the same
    name: samples/ and checkpoints/ holding agit's files, the marked README.md, JSON with agit's
    fields. An empty file holds nothing to lose: agit's, cut short."""
    if path.is_dir():
        return any(f for pattern in OWN_IN_FOLDER[path.name][:2] for f in path.glob(pattern))
    with open(path, "rb") as file:
        head = file.read(64 * 1024)
    if not head:
        return True
    if path.name == "README.md":  # or one that agit wrote before it marked them (its last line, word for word)
        return head.startswith(README_MARK.encode()) or (head.startswith(b"# Run `")
                                                          and b"Files: `config.json` (every setting)" in head)
    try:
        content = json.loads(head.split(b"\n")[0] if path.suffix == ".jsonl" else path.read_bytes())
    except ValueError:
        return False
    return isinstance(content, dict) and all(k in content for k in JSON_FIELDS[path.name])


def _first_line(err: BaseException) -> str:
    """The error's first line; for torch's weights-only refusal, what its unpickler found."""
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    if found:
        return found.group(1).strip()
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _unsupported(err: BaseException) -> str:
    """What torch's weights-only unpickler refused, e.g. 'GLOBAL posix.system'."""
    found = re.search(r"GLOBAL (\S+?)\.?(\s|$)", str(err))
    return f"GLOBAL {found.group(1)}" if found else "an object torch does not allow"
