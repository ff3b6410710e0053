"""The training loop: epochs, the stage switch, checkpoints, resume, logs.

A reader's path: `Trainer.fit` -> `_run_epoch` -> `train_step`, which runs the
iteration's phases (step.py: G and D updates as data) -> the losses of model.py.
The stage switch (Sec. 3.2) is `Config.stage(epoch)`, entered by `set_epoch` once,
when the stage changes. Everything random is derived from (seed, epoch, step) or
saved in the checkpoint, so a resumed CPU run ends bit-identical to an uninterrupted
one (the global torch RNG is left to the model, e.g. UNIT's latent noise; the data
loader draws from its own generator).

The baselines (baselines.py) share this loop: the model names its optimiser
groups and computes its generator loss; the config chooses the optimiser and,
for WGAN, critic steps per generator step and weight clipping.

The run folder (run.py) holds what a run writes; `fit` holds its lock, and SIGINT,
SIGTERM, SIGUSR1 and SIGUSR2 stop it at the end of the current iteration with a checkpoint
(raising Interrupted: the run is resumable).
"""

from __future__ import annotations

import contextlib
import io
import math
import signal
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.utils import make_grid, save_image

from . import distributed
from .baselines import build_model
from .config import Config, check_schedule, describe_changes, schedule_text
from .data import DataError, DomainFolder, dataset_fingerprint, domain_folders, mask_folder_for, pair_indices, \
    test_filter
from .distributed import pick_device
from .files import write_atomically
from .info import write_run_readme
from .metrics import attention_iou
from .model import DIRECTIONS
from .progress import Progress, say
from .run import ResumeMismatch, Run, RunError, resume_config
from .signals import STOP_SIGNALS, stop_signals
from .step import Updates, iteration_phases

class TrainingDiverged(RuntimeError):
    pass


class Interrupted(Exception):
    """Training stopped on request (a signal) after writing a checkpoint: the run is resumable."""


def _ignore_stop_signals(worker_id: int):
    """In DataLoader workers: a signal sent to the whole process group (Ctrl-C in a terminal,
    SLURM, docker) is the training process's to act on; its workers end when it stops."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class EpochPairs(Dataset):
    """One epoch's (s, t) pairs: index order and augmentation seeds fixed by (seed, epoch).

    The item seeds are a plain linear mix of (seed, epoch, k), not data.py's `_mix`
    (pair_indices' order): changing either would change every run's images, and so its results.
    """

    def __init__(self, domain_a: DomainFolder, domain_b: DomainFolder, cfg: Config, epoch: int):
        self.a, self.b = domain_a, domain_b
        n = cfg.iterations_per_epoch(len(domain_a), len(domain_b)) * cfg.batch_size
        pairs, rep = [], 0
        while len(pairs) < n:  # an epoch longer than the data's own draws further orders
            pairs += pair_indices(len(domain_a), len(domain_b), epoch * 1000 + rep, cfg.seed, cfg.shuffle)
            rep += 1
        self.pairs = pairs[:n]
        self.base = (cfg.seed * 1_000_003 + epoch) * 1_000_003

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, k):
        ia, ib = self.pairs[k]
        seed = self.base + k
        return self.a[(ia, seed)]["image"], self.b[(ib, seed + 500_000)]["image"]


def epoch_loader(domains, cfg: Config, epoch: int, step: int = 0, rank: int = 0, world: int = 1,
                 pin_memory: bool = False) -> DataLoader:
    """`epoch`'s (s, t) batches from iteration `step` on: rank `rank`'s shard of `world` (each rank
    takes every world-th pair of the same order); order and augmentation fixed by (seed, epoch)."""
    pairs = EpochPairs(*domains, cfg, epoch)
    subset = torch.utils.data.Subset(pairs, range(step * cfg.batch_size * world, len(pairs)))
    sampler = DistributedSampler(subset, world, rank, shuffle=False, drop_last=True) if world > 1 else None
    return DataLoader(subset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.workers, pin_memory=pin_memory, worker_init_fn=_ignore_stop_signals,
                      generator=torch.Generator().manual_seed(cfg.seed + epoch))


def compile_networks(model: torch.nn.Module):
    """torch.compile each network of the model in place.

    In place (nn.Module.compile), so parameter names stay as they are and a checkpoint
    moves freely between compiled and eager runs; probes and evaluation run eager.
    """
    for net in model.children():
        if isinstance(net, (torch.nn.ModuleDict, torch.nn.ModuleList)):  # containers (UNIT's halves)
            compile_networks(net)
        else:
            net.compile()


class Probe:
    """A fixed handful of (preferably test) images per domain, with masks if present: what the
    run shows after each epoch (attention statistics in the log, a sample grid)."""

    def __init__(self, root: Path, cfg: Config, device: torch.device):
        self.tau = cfg.tau
        split = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
        self.batches = {}
        for direction, folder in zip(DIRECTIONS, domain_folders(root, split)):
            ds = DomainFolder(folder, cfg.size, mask_folder=mask_folder_for(folder),
                              resize_filter=test_filter(cfg.resize_filter))
            items = [ds[i] for i in range(min(cfg.n_samples, len(ds)))]
            self.batches[direction] = {
                "image": torch.stack([it["image"] for it in items]).to(device),
                "mask": (torch.stack([it["mask"] for it in items]).to(device)
                         if all("mask" in it for it in items) else None),
            }

    @torch.no_grad()
    @torch.compiler.set_stance("force_eager")  # probe shapes would each cost a compile
    def attention_stats(self, model) -> dict[str, float]:
        """Mean attention, share above tau, and IoU against true masks where they exist."""
        out = {}
        for d, batch in self.batches.items():
            att = model.attention(batch["image"], d)
            out[f"att_mean_{d}"] = att.mean().item()
            out[f"att_above_tau_{d}"] = (att > self.tau).float().mean().item()
            iou = attention_iou(att, batch["mask"], self.tau) if batch["mask"] is not None else math.nan
            if not math.isnan(iou):  # no object among the probe images: no IoU
                out[f"att_iou_{d}"] = iou
        return out

    @torch.no_grad()
    @torch.compiler.set_stance("force_eager")
    def save_samples(self, model, path: Path):
        """Grid per direction: input | attention | output, one row per probe image."""
        rows = []
        for d, batch in self.batches.items():
            tr = model.translate(batch["image"], d)
            for x, a, y in zip(batch["image"], tr.attention, tr.image):
                rows += [x, a.expand(3, -1, -1) * 2 - 1, y]
        png = io.BytesIO()
        save_image(make_grid(torch.stack(rows), nrow=3, normalize=True, value_range=(-1, 1)), png, format="png")
        write_atomically(path, png.getbuffer())


def _announce_start(cfg: Config, domains, per_epoch: int):
    """Say what the data folders skip, and the schedule the run follows."""
    for d in domains:
        if d.not_images:
            shown = ", ".join(d.not_images[:3]) + (", …" if len(d.not_images) > 3 else "")
            print(f"{d.folder}: {len(d)} images; {len(d.not_images)} entries skipped, not images ({shown})")
    say(*f"schedule: {schedule_text(cfg, per_epoch)}; values below: s2t/t2s".split("; "), sep="; ")


def loss_text(losses: dict[str, float], short: bool = False) -> str:
    """Losses for a line: 'adv 0.251/0.263 cyc 3.100/3.020 d 0.260/0.271' (s2t/t2s), or,
    `short` (a live bar's postfix, which has ~20 columns at 80), the sums 'G 6.63 D 0.53'."""
    if short:
        d = sum(v for k, v in losses.items() if k.startswith("d_"))
        return f"G {sum(losses.values()) - d:.2f} D {d:.2f}"
    pairs = {}
    for key, value in losses.items():
        name, _, direction = key.rpartition("_")
        pairs.setdefault(name if direction in DIRECTIONS else key, []).append(f"{value:.3f}")
    return " ".join(f"{name} {'/'.join(v)}" for name, v in pairs.items())


def epoch_line(cfg: Config, record: dict, losses: dict[str, float], iterations: int, seconds: float) -> tuple[str, str]:
    """The kept line of an epoch, in two parts (`say` puts them on two lines in a narrow terminal):
    stage, time and attention mean; the mean losses."""
    attention = "/".join(f"{record[f'att_mean_{d}']:.3f}" for d in DIRECTIONS if f"att_mean_{d}" in record)
    head = f"epoch {record['epoch'] + 1}/{cfg.epochs} stage {record['stage']}  {seconds:.1f} s ({iterations} it)"
    return head + (f"  attention {attention}" if cfg.has_attention else ""), loss_text(losses)


def _check_finite(losses: dict[str, float], run: Run, epoch: int, step: int):
    """TrainingDiverged, naming the losses that are NaN or infinite and the checkpoint that is kept."""
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        kept = f"the last checkpoint, from before it: {run.latest}" if run.latest.exists() \
            else "no checkpoint was written yet"
        # not "--resume --set lr=…": a resume keeps what the run learns with, lr included
        raise TrainingDiverged(f"loss {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch {epoch + 1}, "
                               f"iteration {step}; stopping ({kept}). A resume would diverge again: train "
                               f"a new run with a lower --set lr=… (another --out, or --overwrite)")


def _say_resumed(run: Run, path: Path, state: dict, passed: list[str], changed: dict):
    for why in passed:
        print(f"{why}; resuming from {path} (epoch {state['epoch']}, iteration {state['step']})", file=sys.stderr)
    if changed:
        print(f"resuming {run} with {describe_changes(changed)}")


class StepTimer:
    """Seconds spent in training steps, per epoch, for the log's epoch row: what a preflight
    extrapolates the full schedule's cost from (agit.preflight). A process's first step is left
    out: it pays for warm-up (allocation, cuDNN's autotuning, compiling), not for training."""

    def __init__(self):
        self.seconds, self.steps, self.warm = 0.0, 0, False

    def add(self, seconds: float):
        if self.warm:
            self.seconds, self.steps = self.seconds + seconds, self.steps + 1
        self.warm = True

    def take(self) -> dict:
        """This epoch's sum and count, then zero for the next."""
        row = {"step_seconds": round(self.seconds, 4), "steps_timed": self.steps}
        self.seconds, self.steps = 0.0, 0
        return row


class Trainer:
    """Owns the model, its `Updates` (optimisers, pools: step.py), the epochs and the run folder."""

    def __init__(self, cfg: Config, run_dir: str | Path, device: str | None = None, overwrite: bool = False):
        """`overwrite`: a run already in `run_dir` is deleted when this one starts (else refused)."""
        check_schedule(cfg)
        self.cfg, self.run, self.overwrite = cfg, Run(run_dir), overwrite
        self.device = distributed.local_device(pick_device(device))
        self.rank, self.world = distributed.setup(self.device)
        self.is_main_rank = self.rank == 0  # only rank 0 writes logs, samples and checkpoints
        torch.backends.cudnn.benchmark = self.device.type == "cuda"  # fixed sizes: let cuDNN pick kernels
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).to(self.device)
        distributed.broadcast_parameters(self.model)
        if cfg.compile:
            compile_networks(self.model)
        self.updates = Updates(self.model, cfg, self.device, self.rank)
        self.domains = tuple(DomainFolder(d, cfg.size, cfg.load_size, augment=True, cache=cfg.cache_images,
                                          resize_filter=cfg.resize_filter) for d in domain_folders(cfg.data, "train"))
        self.probe = Probe(Path(cfg.data), cfg, self.device)
        self.data_fingerprint = dataset_fingerprint(cfg.data)  # in every checkpoint; checked before each
        self.stage = None
        self.set_epoch(0)
        self._stop_reason = None  # why a stop was requested (a signal's name); None: none was
        self._resumed = None  # how a resume began: {"from", "passed_over", "changed"} (see `resume`)
        self._opened = False  # whether `fit` has claimed (or checked) the run folder yet
        self._saved_at = None  # (epoch, step) of the last checkpoint written or resumed from
        self._epoch_tally = ({}, 0, 0.0)  # this epoch so far, in this process: mean losses, iterations, seconds
        self.timer = StepTimer()

    def set_epoch(self, epoch: int, step: int = 0):
        """Go to iteration `step` of `epoch` (0-based; the next to run); entering its stage if it differs:
        A_S and A_T frozen or not, and what the Ds see (`Config.stage`, `Stage`)."""
        self.epoch, self.step = epoch, step
        stage = self.cfg.stage(epoch)
        if stage != self.stage:
            self.stage = stage
            for att in self.model.attention_nets():
                att.requires_grad_(not stage.attention_frozen)

    @property
    def iterations_per_epoch(self) -> int:
        return self.cfg.iterations_per_epoch(*map(len, self.domains))

    def train_step(self, s: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
        """One iteration on the batch (s, t): its phases (step.py), in order; the losses by name."""
        phases = iteration_phases(self.cfg, self.epoch * self.iterations_per_epoch + self.step)
        return self.updates.iteration(s, t, phases, self.stage)

    # -- the loop ---------------------------------------------------------------------
    def fit(self, epochs: int | None = None, progress: bool = True) -> Path:
        """Train until `epochs` (default cfg.epochs) holding the run folder's lock; returns the folder.
        A stop signal ends the current iteration, writes a checkpoint and raises Interrupted."""
        end = epochs or self.cfg.epochs
        with self.run.lock() if self.is_main_rank else contextlib.nullcontext(), stop_signals(self._request_stop):
            if self.is_main_rank and not self._opened:
                self._open_run()
            self._opened = True
            while self.epoch < end:
                show = progress and self.is_main_rank
                if not self._run_epoch(show):
                    path = self.save()
                    raise Interrupted(f"{self._stop_reason} at epoch {self.epoch + 1}, iteration {self.step}: "
                                      f"checkpoint {path}; continue with agit train --out {self.run} --resume")
                record = self.end_epoch()
                if show:
                    say(*epoch_line(self.cfg, record, *self._epoch_tally))
            if self._saved_at != (self.epoch, self.step):  # whatever checkpoint_every says: the end is kept
                self.save(epoch_file=True)
            if self.is_main_rank:
                write_run_readme(self.run)  # RUN/README.md: what the run is, for whoever gets the folder
        return self.run.path

    def _open_run(self):
        """Claim the run folder, or find a resumed one as its checkpoint left it (Run.begin); log the data."""
        self.run.begin(self.cfg, self.overwrite, self._resumed, (self.epoch, self.step),
                       skipped_files={d.folder.name: len(d.not_images) for d in self.domains})
        _announce_start(self.cfg, self.domains, self.iterations_per_epoch)

    def _request_stop(self, signum=None, frame=None):
        """A stop signal: finish the current iteration, then checkpoint and stop (never a half-updated
        state). A second one, even during the checkpoint's write, changes nothing."""
        self._stop_reason = signal.Signals(signum).name if signum else "stop requested"

    def epoch_batches(self) -> DataLoader:
        """The rest of the current epoch's (s, t) batches, this rank's shard (`epoch_loader`)."""
        return epoch_loader(self.domains, self.cfg, self.epoch, self.step, self.rank, self.world,
                            pin_memory=self.device.type == "cuda")

    def _run_epoch(self, progress: bool) -> bool:
        """Train the rest of the current epoch; False if a stop signal ended it early."""
        loader = self.epoch_batches()
        bar = Progress(self.step + len(loader), f"epoch {self.epoch + 1}/{self.cfg.epochs} stage {self.stage.number}",
                       initial=self.step, enabled=progress)
        sums, start = {}, time.monotonic()
        with bar, self.run.log_writer() if self.is_main_rank else contextlib.nullcontext() as log:
            for n, (s, t) in enumerate(loader, 1):
                step_start = time.perf_counter()
                s, t = s.to(self.device, non_blocking=True), t.to(self.device, non_blocking=True)
                losses, stop = distributed.reduce_step(self.train_step(s, t), bool(self._stop_reason), self.device)
                self.timer.add(time.perf_counter() - step_start)  # the losses are floats: the device is done
                _check_finite(losses, self.run, self.epoch, self.step)
                self.step += 1
                if log:
                    log({"kind": "iter", "epoch": self.epoch, "step": self.step, "stage": self.stage.number,
                         "lr": self.updates.lr, **losses})
                sums = {k: sums.get(k, 0.0) + v for k, v in losses.items()}
                self._epoch_tally = ({k: v / n for k, v in sums.items()}, n, time.monotonic() - start)
                bar.update(status=loss_text(losses, short=True))
                if stop:
                    self._stop_reason = self._stop_reason or "stop requested on another rank"
                    return False
        return True

    def end_epoch(self) -> dict:
        """Close the epoch as fit() does: lr schedule, attention statistics in the log, samples, checkpoint.
        Returns the epoch's log record (rank 0; other ranks: without attention statistics)."""
        self.updates.end_epoch()
        record = {"kind": "epoch", "epoch": self.epoch, "stage": self.stage.number, "time": time.time()}
        if self.is_main_rank:
            record.update(self.timer.take(), **self.probe.attention_stats(self.model))
            self.run.append_log(record)
            if self.cfg.sample_every and (self.epoch + 1) % self.cfg.sample_every == 0:
                self.probe.save_samples(self.model, self.run.sample_file(self.epoch + 1))
        self.set_epoch(self.epoch + 1)
        if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == self.cfg.epochs:  # validate: >= 1
            self.save(epoch_file=True)
        return record

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a checkpoint holds: the weights, optimisers, pools and RNGs (Updates), where, and the config."""
        return {**self.updates.state_dict(), "epoch": self.epoch, "step": self.step, "config": self.cfg.to_dict(),
                "data_fingerprint": self.data_fingerprint}

    def save(self, epoch_file: bool = False) -> Path:
        """Write latest.pt (and epoch_NNNN.pt) whole or not at all (Run.save_checkpoint); rank 0 writes.
        A dataset replaced while training stops the run instead (DataError): the state mixes two datasets."""
        if not self.is_main_rank:
            self._saved_at = (self.epoch, self.step)
            return self.run.epoch_checkpoint(self.epoch) if epoch_file else self.run.latest
        now = dataset_fingerprint(self.cfg.data)
        if now != self.data_fingerprint:
            kept = (f"{self.run.latest} (epoch {self.run.progress()[0]}) holds training on the old data only"
                    if self.run.latest.exists() else "no checkpoint was written")
            done = f"{self.epoch} epochs" + (f" and {self.step} iterations" if self.step else "")
            raise DataError(f"the dataset {self.cfg.data} changed while training (fingerprint {self.data_fingerprint}, "
                            f"now {now}): stopped with {done} done, without a checkpoint; {kept}. "
                            f"Restore the data and --resume, or train a new run")
        path = self.run.save_checkpoint(self.state_dict(), self.epoch if epoch_file else None)
        self._saved_at = (self.epoch, self.step)
        return path

    def load_state_dict(self, state: dict):
        self.updates.load_state_dict(state, self.device, state["epoch"])
        self.set_epoch(state["epoch"], state["step"])
        self._saved_at = (state["epoch"], state["step"])

    @classmethod
    def resume(cls, run_dir, device=None, **overrides) -> "Trainer":
        """Continue a run from its newest readable checkpoint (latest.pt, else the newest epoch_NNNN.pt).

        `overrides` may change `epochs` and the fields that only change how the run computes
        (config.HOW_KEYS); any other difference from the checkpoint's config is a ResumeMismatch.
        """
        run = Run(run_dir)
        # in use by another process: say so now, not after loading and building (rank 0 locks for all)
        with run.lock() if distributed.launched_rank() == 0 else contextlib.nullcontext():
            point = run.resume_point()
        if point is None:
            raise FileNotFoundError(f"nothing to resume: no checkpoint in {run.checkpoints_dir}")
        path, state, passed = point
        if "optimizers" not in state:
            raise RunError(f"{path} holds weights only (agit import-tf): no training state to resume")
        cfg, changed = resume_config(run, state, overrides)
        saved, now = state.get("data_fingerprint"), dataset_fingerprint(cfg.data)
        if saved and saved != now:  # checkpoints before the fingerprint have none: not checked
            raise ResumeMismatch(f"cannot resume {run}: its dataset {cfg.data} is not the one it trained on "
                                 f"(fingerprint {saved}, now {now}); restore that data, or train a new run "
                                 f"with another --out")
        trainer = cls(cfg, run_dir, device)
        trainer.load_state_dict(state)
        trainer._resumed = {"from": path.name, "passed_over": passed,
                            "changed": {k: list(v) for k, v in changed.items()}}
        if trainer.is_main_rank:
            _say_resumed(run, path, state, passed, changed)
        return trainer
