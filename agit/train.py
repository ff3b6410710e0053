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
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import signal
import time
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
from .model import AGGAN, DIRECTIONS, REVERSE


class TrainingDiverged(RuntimeError):
    pass


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit name is honoured (and checked)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for, but CUDA is not available here")
    return device


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
        n = cfg.iters_per_epoch * cfg.batch_size if cfg.iters_per_epoch else len(domain_a)
        pairs, rep = [], 0
        while len(pairs) < n:  # an epoch longer than the source set draws further orders
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

    def __init__(self, cfg: Config, run_dir: str | Path, device: str | None = None):
        self.cfg = cfg
        self.run = Path(run_dir)
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
            DomainFolder(d, cfg.size, cfg.load_size, augment=True, cache=cfg.cache_images) for d in (dir_a, dir_b))
        self.probe = self._probe_batch(root)
        self._stop = False

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
        return self.cfg.iters_per_epoch or len(self.domains[0]) // self.cfg.batch_size

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
        """Train until `epochs` (default cfg.epochs); returns the run folder."""
        cfg, end = self.cfg, epochs or self.cfg.epochs
        if self.main:
            self.run.mkdir(parents=True, exist_ok=True)
            (self.run / "config.json").write_text(cfg.to_json())
        previous = signal.signal(signal.SIGINT, self._request_stop)
        try:
            while self.epoch < end:
                self.enter_stage()
                if not self._run_epoch(progress and self.main):
                    path = self.save(tag=None)
                    if self.main:
                        print(f"interrupted: checkpoint written to {path}; continue with --resume")
                    return self.run
                self.end_epoch()
        finally:
            signal.signal(signal.SIGINT, previous)
        return self.run

    def _request_stop(self, *_):
        """Ctrl-C: finish the current iteration, then checkpoint and stop (never a half-updated state)."""
        self._stop = True

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
                          generator=torch.Generator().manual_seed(cfg.seed + self.epoch))

    def _run_epoch(self, progress: bool) -> bool:
        cfg = self.cfg
        loader = self.epoch_batches()
        stage = 2 if self.stage2 else 1
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs} stage {stage}",
                   disable=not progress, leave=False, total=self.step + len(loader), initial=self.step)
        with open(self.run / "log.jsonl", "a") if self.main else contextlib.nullcontext() as log:
            for s, t in bar:
                s, t = s.to(self.device, non_blocking=True), t.to(self.device, non_blocking=True)
                losses, stop = distributed.reduce_step(self.train_step(s, t), self._stop, self.device)
                self._check_finite(losses)
                self.step += 1
                if log:
                    log.write(json.dumps({"kind": "iter", "epoch": self.epoch, "step": self.step, "stage": stage,
                                          "lr": next(iter(self.sched.values())).get_last_lr()[0], **losses}) + "\n")
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                if stop:
                    return False
        return True

    def _check_finite(self, losses):
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            last = self.run / "checkpoints" / "latest.pt"
            kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch {self.epoch + 1}, "
                f"iteration {self.step}; stopping ({kept}). Try a lower --set lr=…")

    def end_epoch(self):
        """Close the epoch as fit() does: lr schedule, per-epoch attention log and samples, checkpoint."""
        for sch in self.sched.values():
            sch.step()
        if self.main:
            self.run.mkdir(parents=True, exist_ok=True)  # a hand-written loop may not have called fit()
            with open(self.run / "log.jsonl", "a") as log:
                log.write(json.dumps({"kind": "epoch", "epoch": self.epoch, "stage": 2 if self.stage2 else 1,
                                      "time": time.time(), **self.attention_stats()}) + "\n")
            if self.cfg.sample_every and (self.epoch + 1) % self.cfg.sample_every == 0:
                self.save_samples()
        self.epoch, self.step = self.epoch + 1, 0
        if self.cfg.checkpoint_every and (self.epoch % self.cfg.checkpoint_every == 0
                                          or self.epoch == self.cfg.epochs):
            self.save(tag=f"epoch_{self.epoch:04d}")

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
        folder = self.run / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for d, batch in self.probe.items():
            tr = self.model.translate(batch["image"], d)
            for x, a, y in zip(batch["image"], tr.attention, tr.image):
                rows += [x, a.expand(3, -1, -1) * 2 - 1, y]
        grid = make_grid(torch.stack(rows), nrow=3, normalize=True, value_range=(-1, 1))
        save_image(grid, folder / f"epoch_{self.epoch + 1:04d}.png")

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

    def save(self, tag: str | None) -> Path:
        """Write latest.pt (and epoch_NNNN.pt when tagged) atomically: a crash never leaves half a file."""
        folder = self.run / "checkpoints"
        targets = [folder / "latest.pt"] + ([folder / f"{tag}.pt"] if tag else [])
        if not self.main:
            return targets[-1]
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        for path in targets:
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, path)
        return targets[-1]

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
        self.enter_stage()

    @classmethod
    def resume(cls, run_dir, device=None, **overrides) -> "Trainer":
        """Continue a run from RUN/checkpoints/latest.pt with its saved config."""
        path = Path(run_dir) / "checkpoints" / "latest.pt"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=False)
        cfg = Config.from_dict({**state["config"], **overrides})
        trainer = cls(cfg, run_dir, device)
        trainer.load_state_dict(state)
        return trainer


def load_model(run_dir, checkpoint: str | Path | None = None, device=None) -> AGGAN:
    """The trained model of a run (AGGAN or a baseline; latest checkpoint by default), in eval mode."""
    path = Path(checkpoint) if checkpoint else Path(run_dir) / "checkpoints" / "latest.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train the run first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(Config.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(pick_device(device)).eval()
