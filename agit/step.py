"""One training iteration as data: a list of phases, one optimiser step each (as StyleGAN2-ADA's loop).

    sequential (the released code):   G s2t, D s2t, G t2s, D t2s   each G step on a fresh forward pass
    joint (Eq. 4 at once):            G both, D s2t, D t2s
    critic (WGAN: D steps between G steps): fakes both, D s2t, D t2s   the Ds judge fresh fakes

A G phase takes one step of the generators (and attention nets) of its directions on
Eq. 4 (Eq. 7 in stage 2) and leaves behind the translations it computed; a D phase
steps the discriminator judging its direction on the newest translations (Eq. 2, Eq. 7
in stage 2: real target images against pooled fakes); a fakes phase only translates.
`Updates` owns what the phases step: an optimiser per param group, their lr schedules,
the history pools and the grad scaler.
"""

from __future__ import annotations

import contextlib
import functools
import random
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from . import distributed
from .config import Config, Stage
from .model import DIRECTIONS, Translation, d_inputs


class Phase(NamedTuple):
    networks: str  # 'G': generators and attention nets; 'D': discriminators; 'fakes': none (translate only)
    directions: tuple[str, ...]


G_S2T, G_T2S, G_BOTH = Phase("G", ("s2t",)), Phase("G", ("t2s",)), Phase("G", DIRECTIONS)
D_S2T, D_T2S = Phase("D", ("s2t",)), Phase("D", ("t2s",))  # D_T judges s2t, D_S judges t2s
PHASES = {
    "sequential": (G_S2T, D_S2T, G_T2S, D_T2S),
    "joint": (G_BOTH, D_S2T, D_T2S),
    "critic": (Phase("fakes", DIRECTIONS), D_S2T, D_T2S),
}


def iteration_phases(cfg: Config, iteration: int) -> tuple[Phase, ...]:
    """The phases of the run's `iteration` (0-based, counted over epochs): G steps on every
    n_critic-th iteration (on every one but for WGAN), the Ds on every one."""
    generator_turn = (iteration + 1) % cfg.n_critic == 0
    return PHASES[cfg.update_order if generator_turn else "critic"]


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


def mixed_precision(precision: str, device: torch.device):
    """(autocast context factory, grad scaler) for cfg.precision.

    bf16 keeps float32's exponent range, so its gradients need no scaling; fp16's
    small gradients would underflow without the scaler. For 'fp32' and 'bf16' the
    scaler is disabled: it passes losses and optimiser steps through unchanged. fp16 is
    refused off CUDA: its grad scaler and half-precision arithmetic are for a GPU's units,
    which a CPU emulates (bf16 is the CPU's reduced precision).
    """
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision=fp16 needs a CUDA GPU (this run is on {device.type}); "
                         f"use precision=bf16 or fp32")
    if precision == "fp32":
        autocast = contextlib.nullcontext
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = functools.partial(torch.autocast, device.type, dtype=dtype)
    return autocast, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


class TFAdam(torch.optim.Adam):
    """torch's Adam computing TF1's AdamOptimizer update, which the released code uses.

    TF: lr * sqrt(1-b2^T)/(1-b1^T) * m / (sqrt(v) + eps), where
    * eps is added before the bias correction ("epsilon hat", `epsilon_hat`); torch adds it after;
    * T counts the applications of *one* optimiser instance (`counter`, a one-element list the
      optimisers share): the released code's six `minimize` ops share one, so T advances four
      times an iteration, where each torch optimiser counts its own steps t.
    torch's update is lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps): setting its lr and eps
    for the step about to be taken makes it TF's exactly, so torch's Adam does the arithmetic
    and no update rule is rewritten here. A group's parameters step together (t of any that
    has stepped, +1).
    """

    def __init__(self, params, eps: float = 1e-8, epsilon_hat: bool = True, counter: list | None = None, **kw):
        super().__init__(params, eps=eps, **kw)
        self.tf_eps, self.epsilon_hat, self.counter = eps, epsilon_hat, counter

    @torch.no_grad()
    def step(self, closure=None):
        if self.counter is not None:
            self.counter[0] += 1
        scheduled = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            steps = [self.state[p]["step"] for p in group["params"] if p.grad is not None and "step" in self.state[p]]
            t = int(max(steps)) + 1 if steps else 1
            shared = self.counter[0] if self.counter is not None else t
            b1, b2 = group["betas"]
            eps = self.tf_eps if self.epsilon_hat else self.tf_eps * (1 - b2**shared) ** 0.5
            group["eps"] = eps / (1 - b2**t) ** 0.5
            group["lr"] *= ((1 - b2**shared) ** 0.5 / (1 - b1**shared)) / ((1 - b2**t) ** 0.5 / (1 - b1**t))
        loss = super().step(closure)
        for group, lr in zip(self.param_groups, scheduled):
            group["lr"] = lr
        return loss


def make_optimizer(cfg: Config, params, counter: list | None = None) -> torch.optim.Optimizer:
    """Adam(beta1, beta2) as the paper (TF's, `TFAdam`, with `adam_epsilon_hat` or a shared
    `counter`), or RMSProp (DualGAN; decay 0.9 as its released code)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9, weight_decay=cfg.weight_decay)
    adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if cfg.adam_epsilon_hat or counter is not None:
        return TFAdam(params, epsilon_hat=cfg.adam_epsilon_hat, counter=counter, **adam)
    return torch.optim.Adam(params, **adam)


def lr_factor(cfg: Config, epoch: int) -> float:
    """Constant until decay_epoch, then linear towards 0 at the last epoch (released code)."""
    if epoch < cfg.decay_epoch:
        return 1.0
    return max(0.0, (cfg.epochs - epoch) / max(1, cfg.epochs - cfg.decay_epoch))


Translations = dict[str, Translation]  # by direction: s2t holds s', A_S(s); t2s holds t', A_T(t)


class Updates:
    """The optimisers (AGGAN: G_ST+A_S, G_TS+A_T, D_T, D_S), their lr schedules, the pools, the
    grad scaler, and the phases that step them."""

    def __init__(self, model: nn.Module, cfg: Config, device: torch.device, rank: int = 0):
        self.model, self.cfg = model, cfg
        self.autocast, self.scaler = mixed_precision(cfg.precision, device)
        # the released code's one Adam: its step count, shared by the optimisers (adam_shared_counter)
        self.adam_steps = [0] if cfg.adam_shared_counter else None
        self.opt = {name: make_optimizer(cfg, list(dict.fromkeys(
                        p for mod in mods if mod is not None for p in mod.parameters())), self.adam_steps)
                    for name, mods in model.param_groups().items()}
        for direction in DIRECTIONS:
            self._clip_critic(direction)
        self.sched = {name: torch.optim.lr_scheduler.LambdaLR(o, lambda e, c=cfg: lr_factor(c, e))
                      for name, o in self.opt.items()}
        self.pools = {d: ImagePool(cfg.pool_size, cfg.seed + i + 2 * rank) for i, d in enumerate(DIRECTIONS)}

    def iteration(self, s: torch.Tensor, t: torch.Tensor, phases, stage: Stage) -> dict[str, float]:
        """Run `phases` in order on the batch (s, t); the losses they logged, by name."""
        steps = {"G": self.step_generators, "D": self.step_discriminator, "fakes": self.fresh_translations}
        losses, translations = {}, {}
        for phase in phases:
            logged, translations = steps[phase.networks](phase.directions, s, t, translations, stage)
            losses.update(logged)
        self.scaler.update()  # once per iteration, after every optimiser of it stepped
        return losses

    def step_generators(self, directions, s, t, translations: Translations, stage: Stage):
        """Eq. 4 (Eq. 7 in stage 2) for the generators (and attention nets) of `directions`;
        their forward pass is the newest translations, which the D phases then judge."""
        m = self.model
        with frozen(m.dis_s, m.dis_t), self.autocast():
            loss, terms, translations = m.generator_loss(s, t, directions, stage)
        opts = [self.opt[name] for name in dict.fromkeys(m.generator_group(d) for d in directions)]
        params = [p for o in opts for g in o.param_groups for p in g["params"] if p.requires_grad]
        for o in opts:
            o.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(inputs=params)
        distributed.average_gradients(params)
        for o in opts:
            self.scaler.step(o)
        return {k: v.item() for k, v in terms.items()}, translations

    def fresh_translations(self, directions, s, t, translations: Translations, stage: Stage):
        """s' and t' of the current generators, for Ds that step without a G step before them."""
        sources = {"s2t": s, "t2s": t}
        with torch.no_grad(), self.autocast():
            return {}, {d: self.model.translate(sources[d], d) for d in directions}

    def step_discriminator(self, directions, s, t, translations: Translations, stage: Stage):
        """D of the direction's target (D_T for s2t): real target images against pooled fakes (Eq. 2 / 7)."""
        (direction,) = directions
        m = self.model
        real, real_att, fake, mask = d_inputs(m, direction, s, t, translations, stage)
        # the pool keeps float32 whatever the autocast precision
        fake, mask = self.pools[direction].query(fake.detach().float(), mask.detach().float())
        with self.autocast():
            loss = m.discriminator_loss(direction, real, real_att.detach(), fake, mask, stage)
        opt = self.opt["d_t" if direction == "s2t" else "d_s"]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        distributed.average_gradients(opt.param_groups[0]["params"])
        self.scaler.step(opt)
        self._clip_critic(direction)
        return {f"d_{direction}": loss.item()}, translations

    @torch.no_grad()
    def _clip_critic(self, direction):
        """WGAN's Lipschitz constraint (DualGAN): every learned critic parameter within [-clip, clip]."""
        if self.cfg.clip:
            for p in self.model.judge(direction).parameters():
                if p.requires_grad:
                    p.clamp_(-self.cfg.clip, self.cfg.clip)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The weights and everything the next updates depend on: optimisers, schedules, pools, RNGs."""
        return {"model": self.model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "schedulers": {k: s.state_dict() for k, s in self.sched.items()},
                "pools": {k: p.state_dict() for k, p in self.pools.items()},
                "scaler": self.scaler.state_dict(),
                "adam_steps": self.adam_steps,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def load_state_dict(self, state: dict, device, epoch: int):
        """All of `state_dict` from a checkpoint; each lr for `epoch` from this config."""
        self.model.load_state_dict(state["model"])
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.sched.items():
            s.load_state_dict(state["schedulers"][k])
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], device)
        if state.get("scaler"):  # fp16 runs only; older checkpoints have none
            self.scaler.load_state_dict(state["scaler"])
        if self.adam_steps is not None:
            self.adam_steps[0] = state["adam_steps"][0]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        # a resume with more epochs goes on along the longer schedule, not at the lr the
        # shorter one had reached (0 at its end)
        for opt, sched in zip(self.opt.values(), self.sched.values()):
            for group, base in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base * lr_factor(self.cfg, epoch)

    def end_epoch(self):
        for sched in self.sched.values():
            sched.step()

    @property
    def lr(self) -> float:
        return next(iter(self.opt.values())).param_groups[0]["lr"]
