"""The training loop: two stages, lr schedule, history pool, checkpoints, resume, logs.

Stage 1 (epoch < switch_epoch): D sees whole images; F, A and D all train.
Stage 2: A is frozen and D sees only attended pixels (Eq. 6-7), with its
instance norm switched off. Everything random is derived from (seed, epoch,
step) or saved in the checkpoint, so a resumed CPU run ends bit-identical to
an uninterrupted one (the global torch RNG is left to the model, e.g. UNIT's
latent noise; the data loader draws from its own generator).

The baselines (baselines.py) share this loop: the model names its optimiser
groups and computes its generator loss; the config chooses the optimiser and,
for WGAN, critic steps per generator step and weight clipping.

The run folder (run.py) holds what a run writes; `fit` holds its lock, and SIGINT,
SIGTERM and SIGUSR1 stop it at the end of the current iteration with a checkpoint
(raising Interrupted: the run is resumable).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from .baselines import build_model
from . import distributed
from .config import Config
from .data import DomainFolder, domain_folders, mask_folder_for, pair_indices
from .distributed import pick_device
from .info import write_run_readme
from .model import DIRECTIONS, REVERSE
from .run import Run, RunError, describe_changes, resume_config

# SIGINT: Ctrl-C. SIGTERM: kill, docker stop, a scheduler's time limit or preemption.
# SIGUSR1: what SLURM sends ahead of the time limit when asked to (sbatch --signal=USR1@120).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class TrainingDiverged(RuntimeError):
    pass


class Interrupted(Exception):
    """Training stopped on request (a signal) after writing a checkpoint: the run is resumable."""


@contextmanager
def stop_signals(handler):
    """STOP_SIGNALS call `handler` inside the block (their previous handlers come back after)."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _ignore_stop_signals(worker_id: int):
    """In DataLoader workers: a signal sent to the whole process group (Ctrl-C in a terminal,
    SLURM, docker) is the training process's to act on; its workers end when it stops."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class ImagePool:
    """History of generated (image, mask) pairs shown to D (Shrivastava et al.; CycleGAN).

    Until full, a new fake is stored and returned; then, with probability 1/2,
    an old pair is returned and replaced by the new one. The mask travels with
    its image because stage 2 masks the pooled fake by *its own* attention.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.items: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor, masks: torch.Tensor):
        if self.size == 0:
            return images, masks
        out_i, out_m = [], []
        for image, mask in zip(images, masks):
            pair = (image.detach().clone(), mask.detach().clone())
            if len(self.items) < self.size:
                self.items.append(pair)
            elif self.rng.random() > 0.5:
                k = self.rng.randrange(self.size)
                self.items[k], pair = pair, self.items[k]
            out_i.append(pair[0])
            out_m.append(pair[1])
        return torch.stack(out_i), torch.stack(out_m)

    def state_dict(self):
        return {"items": [(i.cpu(), m.cpu()) for i, m in self.items], "rng": self.rng.getstate()}

    def load_state_dict(self, state, device):
        self.items = [(i.to(device), m.to(device)) for i, m in state["items"]]
        self.rng.setstate(state["rng"])


class EpochPairs(Dataset):
    """One epoch's (s, t) pairs: index order and augmentation seeds fixed by (seed, epoch)."""

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


@contextmanager
def frozen(*modules):
    """No parameter gradients for `modules` inside the block (D during a G update)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


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


def mixed_precision(precision: str, device: torch.device):
    """(autocast context factory, grad scaler) for cfg.precision.

    bf16 keeps float32's exponent range, so its gradients need no scaling; fp16's
    small gradients would underflow without the scaler. For 'fp32' and 'bf16' the
    scaler is disabled: it passes losses and optimiser steps through unchanged.
    """
    if precision == "fp32":
        autocast = contextlib.nullcontext
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = functools.partial(torch.autocast, device.type, dtype=dtype)
    return autocast, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """Adam(beta1, beta2) as the paper, or RMSProp (DualGAN; decay 0.9 as its released code)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def lr_factor(cfg: Config, epoch: int) -> float:
    """Constant until decay_epoch, then linear towards 0 at the last epoch (released code)."""
    if epoch < cfg.decay_epoch:
        return 1.0
    return max(0.0, (cfg.epochs - epoch) / max(1, cfg.epochs - cfg.decay_epoch))


class Trainer:
    """Owns the model, an optimiser per param group (AGGAN: G_ST+A_S, G_TS+A_T, D_T, D_S), pools, the run folder."""

    def __init__(self, cfg: Config, run_dir: str | Path, device: str | None = None, overwrite: bool = False):
        """`overwrite`: a run already in `run_dir` is deleted when this one starts (else refused)."""
        self.cfg = cfg
        self.run = Run(run_dir)
        self.overwrite = overwrite
        self.device = distributed.local_device(pick_device(device))
        self.rank, self.world = distributed.setup(self.device)
        self.main = self.rank == 0  # only rank 0 writes logs, samples and checkpoints
        torch.backends.cudnn.benchmark = self.device.type == "cuda"  # fixed sizes: let cuDNN pick kernels
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).to(self.device)
        distributed.broadcast_parameters(self.model)
        if cfg.compile:
            compile_networks(self.model)
        self.autocast, self.scaler = mixed_precision(cfg.precision, self.device)
        self.opt = {
            name: make_optimizer(cfg, list(dict.fromkeys(
                p for mod in mods if mod is not None for p in mod.parameters())))
            for name, mods in self.model.param_groups().items()
        }
        for direction in DIRECTIONS:
            self._clip_critic(direction)
        self.sched = {
            name: torch.optim.lr_scheduler.LambdaLR(o, lambda e, c=cfg: lr_factor(c, e))
            for name, o in self.opt.items()
        }
        self.pools = {d: ImagePool(cfg.pool_size, cfg.seed + i + 2 * self.rank) for i, d in enumerate(DIRECTIONS)}
        self.epoch, self.step = 0, 0  # next epoch to run, steps done in it
        root = Path(cfg.data)
        dir_a, dir_b = domain_folders(root, "train")
        self.domains = tuple(
            DomainFolder(d, cfg.size, cfg.load_size, augment=True, cache=cfg.cache_images,
                         resize_filter=cfg.resize_filter) for d in (dir_a, dir_b))
        self.probe = self._probe_batch(root)
        self._stop, self._stop_reason = False, None
        self._resumed = None  # how a resume began: {"from", "passed_over", "changed"} (see `resume`)
        self._opened = False  # whether `fit` has claimed (or checked) the run folder yet

    # -- stages -----------------------------------------------------------------
    @property
    def stage2(self) -> bool:
        return self.epoch >= self.cfg.switch_epoch

    def enter_stage(self):
        """At the switch, freeze A_S and A_T (all variants but 'Ours-D-A')."""
        if self.stage2 and self.cfg.freeze_attention:
            for att in self.model.attention_nets():
                att.requires_grad_(False)

    # -- one iteration ------------------------------------------------------------
    @property
    def iterations_per_epoch(self) -> int:
        return self.cfg.iterations_per_epoch(*map(len, self.domains))

    def generator_turn(self) -> bool:
        """G steps on every n_critic-th iteration of the run (always, but for WGAN); D on every one."""
        return (self.epoch * self.iterations_per_epoch + self.step + 1) % self.cfg.n_critic == 0

    def train_step(self, s: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
        losses = self._updates(s, t)
        self.scaler.update()  # once per iteration, after every optimiser of it stepped
        return losses

    def _updates(self, s, t):
        if not self.generator_turn():  # a critic-only iteration (WGAN): D sees fresh fakes of the current G
            with torch.no_grad(), self.autocast():
                fakes = {"s2t": self.model.translate(s, "s2t"), "t2s": self.model.translate(t, "t2s")}
            losses = {}
        elif self.cfg.update_order == "joint":
            losses, fakes = self._update_generators(s, t, DIRECTIONS)
        else:  # released code: G_ST, D_T, G_TS, D_S, each G step on a fresh forward pass
            losses, fakes = self._update_generators(s, t, ("s2t",))
            losses.update(self._update_discriminator("s2t", s, t, fakes))
            more, fakes = self._update_generators(s, t, ("t2s",))
            losses.update(more)
            losses.update(self._update_discriminator("t2s", s, t, fakes))
            return losses
        for direction in DIRECTIONS:
            losses.update(self._update_discriminator(direction, s, t, fakes))
        return losses

    def _update_generators(self, s, t, directions):
        """Eq. 4 (Eq. 7 in stage 2) for the generators (and attention nets) of `directions`."""
        m = self.model
        with frozen(m.dis_s, m.dis_t), self.autocast():
            loss, terms, fakes = m.generator_loss(s, t, directions, self.stage2)
        opts = [self.opt[name] for name in dict.fromkeys(m.generator_group(d) for d in directions)]
        params = [p for o in opts for g in o.param_groups for p in g["params"] if p.requires_grad]
        for o in opts:
            o.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(inputs=params)
        distributed.average_gradients(params)
        for o in opts:
            self.scaler.step(o)
        return {k: v.item() for k, v in terms.items()}, fakes

    def _update_discriminator(self, direction, s, t, fakes):
        """D of the direction's target: real target images vs pooled fakes (Eq. 2 / Eq. 7)."""
        m, stage2 = self.model, self.stage2
        real = t if direction == "s2t" else s
        real_att = fakes[REVERSE[direction]].attention.detach()  # A_T(t): computed once, reused
        fake, mask = m.fake_for_d(fakes[direction], stage2)
        # the pool keeps float32 whatever the autocast precision
        fake, mask = self.pools[direction].query(fake.detach().float(), mask.detach().float())
        with self.autocast():
            loss = m.discriminator_loss(direction, real, real_att, fake, mask, stage2)
        opt = self.opt["d_t" if direction == "s2t" else "d_s"]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        distributed.average_gradients(opt.param_groups[0]["params"])
        self.scaler.step(opt)
        self._clip_critic(direction)
        return {f"d_{direction}": loss.item()}

    @torch.no_grad()
    def _clip_critic(self, direction):
        """WGAN's Lipschitz constraint (DualGAN): every learned critic parameter within [-clip, clip]."""
        if self.cfg.clip:
            for p in self.model.judge(direction).parameters():
                if p.requires_grad:
                    p.clamp_(-self.cfg.clip, self.cfg.clip)

    # -- the loop ---------------------------------------------------------------
    def fit(self, epochs: int | None = None, progress: bool = True) -> Path:
        """Train until `epochs` (default cfg.epochs) holding the run folder's lock; returns the folder.

        A stop signal ends the current iteration, writes a checkpoint and raises Interrupted.
        """
        end = epochs or self.cfg.epochs
        with self.run.lock() if self.main else contextlib.nullcontext(), stop_signals(self._request_stop):
            if self.main and not self._opened:
                self._open_run()
            self._opened = True
            while self.epoch < end:
                self.enter_stage()
                if not self._run_epoch(progress and self.main):
                    path = self.save()
                    raise Interrupted(f"{self._stop_reason} at epoch {self.epoch + 1}, iteration {self.step}: "
                                      f"checkpoint {path}; continue with agit train --out {self.run} --resume")
                self.end_epoch()
            if self.main:
                write_run_readme(self.run.path)  # RUN/README.md: what the run is, for whoever gets the folder
        return self.run.path

    def _open_run(self):
        """A new run claims its folder (Run.start); a resumed one trims the log to its checkpoint.
        Both log what they start from: the data, and what a resume changed."""
        if self._resumed is None:
            self.run.start(self.cfg, self.overwrite)
        else:
            if self.run.progress() != (self.epoch, self.step):
                raise RunError(f"{self.run} moved on since this resume loaded it (another process trained "
                               f"it meanwhile); resume again")
            self.run.write_config(self.cfg)
            self.run.trim_log(self.epoch, self.step)
        self.run.append_log({"kind": "start" if self._resumed is None else "resume", "epoch": self.epoch,
                             "step": self.step, "time": time.time(), **(self._resumed or {}),
                             "skipped_files": {d.folder.name: len(d.not_images) for d in self.domains}})
        for d in self.domains:
            if d.not_images:
                shown = ", ".join(d.not_images[:3]) + (", …" if len(d.not_images) > 3 else "")
                print(f"{d.folder}: {len(d)} images; {len(d.not_images)} entries skipped, not images ({shown})")
        if self.cfg.switch_epoch >= self.cfg.epochs and self.cfg.variant != "cyclegan":
            warnings.warn(f"switch_epoch {self.cfg.switch_epoch} is not before the last epoch "
                          f"(epochs {self.cfg.epochs}): no stage 2, so the attention is never frozen and "
                          f"D never sees attended regions only", stacklevel=3)

    def _request_stop(self, signum=None, frame=None):
        """A stop signal: finish the current iteration, then checkpoint and stop (never a half-updated
        state). A second one, even during the checkpoint's write, changes nothing."""
        self._stop = True
        self._stop_reason = signal.Signals(signum).name if signum else "stop requested"

    def epoch_batches(self) -> DataLoader:
        """The current epoch's (s, t) batches still to train (from step `self.step` on), in
        the order fit() sees them: this rank's shard, order and augmentation fixed by (seed, epoch)."""
        cfg = self.cfg
        pairs = EpochPairs(*self.domains, cfg, self.epoch)
        per_step = cfg.batch_size * self.world
        subset = torch.utils.data.Subset(pairs, range(self.step * per_step, len(pairs)))
        # Each rank takes every world-th pair of the same epoch order: disjoint shards.
        sampler = (DistributedSampler(subset, self.world, self.rank, shuffle=False, drop_last=True)
                   if self.world > 1 else None)
        return DataLoader(subset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                          num_workers=cfg.workers, pin_memory=self.device.type == "cuda",
                          worker_init_fn=_ignore_stop_signals,
                          generator=torch.Generator().manual_seed(cfg.seed + self.epoch))

    def _run_epoch(self, progress: bool) -> bool:
        cfg = self.cfg
        loader = self.epoch_batches()
        stage = 2 if self.stage2 else 1
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs} stage {stage}",
                   disable=not progress, leave=False, total=self.step + len(loader), initial=self.step)
        with self.run.log_writer() if self.main else contextlib.nullcontext() as log:
            for s, t in bar:
                s, t = s.to(self.device, non_blocking=True), t.to(self.device, non_blocking=True)
                losses, stop = distributed.reduce_step(self.train_step(s, t), self._stop, self.device)
                self._check_finite(losses)
                self.step += 1
                if log:
                    log({"kind": "iter", "epoch": self.epoch, "step": self.step, "stage": stage,
                         "lr": next(iter(self.opt.values())).param_groups[0]["lr"], **losses})
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                if stop:
                    self._stop_reason = self._stop_reason or "stop requested on another rank"
                    return False
        return True

    def _check_finite(self, losses):
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            last = self.run.latest
            kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch {self.epoch + 1}, "
                f"iteration {self.step}; stopping ({kept}). Try a lower --set lr=…")

    def end_epoch(self):
        """Close the epoch as fit() does: lr schedule, per-epoch attention log and samples, checkpoint."""
        for sch in self.sched.values():
            sch.step()
        if self.main:
            self.run.append_log({"kind": "epoch", "epoch": self.epoch, "stage": 2 if self.stage2 else 1,
                                 "time": time.time(), **self.attention_stats()})
            if self.cfg.sample_every and (self.epoch + 1) % self.cfg.sample_every == 0:
                self.save_samples()
        self.epoch, self.step = self.epoch + 1, 0
        if self.cfg.checkpoint_every and (self.epoch % self.cfg.checkpoint_every == 0
                                          or self.epoch == self.cfg.epochs):
            self.save(epoch_file=True)

    # -- what the run shows ----------------------------------------------------------
    def _probe_batch(self, root: Path) -> dict:
        """A fixed handful of (preferably test) images per domain, with masks if present."""
        split = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
        probe = {}
        for direction, folder in zip(DIRECTIONS, domain_folders(root, split)):
            ds = DomainFolder(folder, self.cfg.size, mask_folder=mask_folder_for(folder))
            items = [ds[i] for i in range(min(self.cfg.n_samples, len(ds)))]
            probe[direction] = {
                "image": torch.stack([it["image"] for it in items]).to(self.device),
                "mask": (torch.stack([it["mask"] for it in items]).to(self.device)
                         if all("mask" in it for it in items) else None),
            }
        return probe

    @torch.no_grad()
    @torch.compiler.set_stance("force_eager")  # probe shapes would each cost a compile
    def attention_stats(self) -> dict[str, float]:
        """Mean attention, share above tau, and IoU against true masks where they exist."""
        out = {}
        for d, batch in self.probe.items():
            att = self.model.attention(batch["image"], d)
            out[f"att_mean_{d}"] = att.mean().item()
            out[f"att_above_tau_{d}"] = (att > self.cfg.tau).float().mean().item()
            if batch["mask"] is not None:
                pred, true = att > self.cfg.tau, batch["mask"] > 0.5
                inter = (pred & true).flatten(1).sum(1).float()
                union = (pred | true).flatten(1).sum(1).float()
                has = true.flatten(1).any(1)
                if has.any():
                    out[f"att_iou_{d}"] = (inter[has] / union[has]).mean().item()
        return out

    @torch.no_grad()
    @torch.compiler.set_stance("force_eager")
    def save_samples(self):
        """Grid per direction: input | attention | output, one row per probe image."""
        self.run.samples_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for d, batch in self.probe.items():
            tr = self.model.translate(batch["image"], d)
            for x, a, y in zip(batch["image"], tr.attention, tr.image):
                rows += [x, a.expand(3, -1, -1) * 2 - 1, y]
        grid = make_grid(torch.stack(rows), nrow=3, normalize=True, value_range=(-1, 1))
        save_image(grid, self.run.sample_file(self.epoch + 1))

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
            "schedulers": {k: s.state_dict() for k, s in self.sched.items()},
            "pools": {k: p.state_dict() for k, p in self.pools.items()},
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "epoch": self.epoch,
            "step": self.step,
            "config": self.cfg.to_dict(),
        }

    def save(self, epoch_file: bool = False) -> Path:
        """Write latest.pt (and epoch_NNNN.pt) whole or not at all (Run.save_checkpoint); rank 0 writes."""
        if not self.main:
            return self.run.epoch_checkpoint(self.epoch) if epoch_file else self.run.latest
        return self.run.save_checkpoint(self.state_dict(), self.epoch if epoch_file else None)

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.sched.items():
            s.load_state_dict(state["schedulers"][k])
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], self.device)
        if state.get("scaler"):  # fp16 runs only; older checkpoints have none
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.epoch, self.step = state["epoch"], state["step"]
        self._apply_lr_schedule()
        self.enter_stage()

    def _apply_lr_schedule(self):
        """Each optimiser's lr for the current epoch from this trainer's config: a resume with more
        epochs goes on along the longer schedule, not at the lr the shorter one had reached (0 at its end)."""
        for opt, sched in zip(self.opt.values(), self.sched.values()):
            for group, base in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base * lr_factor(self.cfg, self.epoch)

    @classmethod
    def resume(cls, run_dir, device=None, **overrides) -> "Trainer":
        """Continue a run from its newest readable checkpoint (latest.pt, else the newest epoch_NNNN.pt).

        `overrides` may change `epochs` and the fields that only change how the run computes
        (run.HOW_KEYS); any other difference from the checkpoint's config is a ResumeMismatch.
        """
        run = Run(run_dir)
        # in use by another process: say so now, not after loading and building (rank 0 locks for all)
        with run.lock() if distributed.launched_rank() == 0 else contextlib.nullcontext():
            point = run.resume_point()
        if point is None:
            raise FileNotFoundError(f"nothing to resume: no checkpoint in {run.checkpoints_dir}")
        path, state, passed = point
        cfg, changed = resume_config(run, state, overrides)
        trainer = cls(cfg, run_dir, device)
        trainer.load_state_dict(state)
        trainer._resumed = {"from": path.name, "passed_over": passed,
                            "changed": {k: list(v) for k, v in changed.items()}}
        if trainer.main:
            for why in passed:
                print(f"{why}; resuming from {path} (epoch {state['epoch']}, iteration {state['step']})",
                      file=sys.stderr)
            if changed:
                print(f"resuming {run} with {describe_changes(changed)}")
        return trainer
