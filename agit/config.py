"""Configuration: one dataclass, named presets, and the Table 2 variants.

Every point where the paper's text and the authors' released TensorFlow code
disagree is a named field here, so the two presets differ only in data:

* ``official`` follows the released code (what produced the paper's numbers);
* ``paper`` follows the paper's text where it is explicit, the code where it is silent;
* ``quick`` is the CPU-minutes default on the embedded synthetic data;
* ``ci`` is seconds with tiny networks, for tests.

The method (``aggan`` or a Table 1 baseline, see baselines.py) is a field of its
own, orthogonal to the preset: ``preset(name, method=...)`` lays the method's
own settings (``METHOD_DEFAULTS``) over the preset's, and explicit overrides
over both. ``Config(...)`` built directly takes every field as given.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields

# Table 2 ablations plus CycleGAN (attention identically 1).
VARIANTS = ("ours", "cycle", "cycleatt", "as", "at", "d", "da", "cyclegan")
# AGGAN and the Table 1 baselines (baselines.py). Method 'cyclegan' is variant 'cyclegan'.
METHODS = ("aggan", "cyclegan", "discogan", "dualgan", "ra", "unit")
GAN_LOSSES = ("lsgan", "gan", "wgan")
PRECISIONS = ("fp32", "bf16", "fp16")


def load_size_for(size: int) -> int:
    """The resize before the random crop, in CycleGAN's ratio 286/256 (64 -> 72, 256 -> 286)."""
    return round(size * 286 / 256)


def run_name(variant: str, method: str = "aggan") -> str:
    """A run's short name: AGGAN's is its variant (Table 2), a baseline's its method (Table 1)."""
    return variant if method == "aggan" else method


@dataclass(frozen=True)
class Stage:
    """Everything the stage switch changes (Sec. 3.2, Eq. 6-7), in one place: `Config.stage(epoch)`.

    Stage 1 trains F, A and D on whole images (A not in its first `att_warmup_epochs`). Stage 2 (from `switch_epoch` on):

    * `attention_frozen`: A_S and A_T stop learning (every variant but 'Ours-D-A');
    * `d_masked`: each D sees only the pixels where the attention passes tau (Eq. 6),
      real and fake alike (`AGGAN.d_input`), with its instance norm off on the same
      weights (`AGGAN.judge_score`), and the fake is s' or F(s) as `d_fake` says
      (`AGGAN.fake_for_d`); variants without two attention maps or with whole-image Ds keep
      D as in stage 1 (`attention_guided_d`).

    The Trainer enters a stage once, when it changes (`Trainer.set_epoch`).
    """

    number: int
    attention_frozen: bool
    d_masked: bool


@dataclass
class Config:
    preset: str = "official"
    variant: str = "ours"
    method: str = "aggan"
    data: str = "data/horse2zebra"

    # images: resize to load_size (square), random crop to size, random flip
    size: int = 256
    load_size: int | None = None  # None: CycleGAN's 286/256 ratio
    shuffle: bool = False  # released code: fixed pairs (a_{i mod |A|}, b_{i mod |B|}), max(|A|, |B|) an epoch
    # training resize; 'bilinear' and 'bicubic' are torchvision's (half-pixel centres, antialiased,
    # rounded to uint8; CycleGAN's PyTorch code: bicubic). 'tf1_bilinear': the released code's
    # tf.image.resize_images of TF1 (no half-pixel centres, no antialiasing, float result), also
    # for the test images; the others resize test images bicubically.
    resize_filter: str = "bilinear"

    # generator F (Appendix A; released code where it differs)
    ngf: int = 32
    n_res: int = 9
    gen_padding: str = "zeros"  # released code pads with zeros, CycleGAN reflects
    gen_last_kernel: int = 7  # paper: c3s1-3-T; code: 7x7
    # Stride-2 convs (F and A) and F's transposed convs padded as TF's 'SAME' (nets.tf_same_padding):
    # (0, 1) where PyTorch's padding=1 gives (1, 1). Same weights, outputs one pixel apart otherwise;
    # needed for the released code's outputs and its trained checkpoints (agit import-tf).
    tf_same_padding: bool = False
    # attention net A
    att_ngf: int = 32
    att_up_kernel: int = 1  # paper: 3x3 after each up2; code: effectively 1x1
    att_last_kernel: int = 1  # paper: c7s1-1-S; code: effectively 1x1
    att_init_bias: float = 0.0  # bias of the last conv: sigmoid(b) is the initial attention
    # Epochs at the start of stage 1 in which A_S and A_T are not trained (both papers: 0). F then
    # learns through the initial, uniform attention before A may shut it: see the quick preset.
    att_warmup_epochs: int = 0
    # discriminator D
    ndf: int = 64
    d_layers: int = 3  # stride-2 convs before the two stride-1 convs
    d_pad: int = 2  # released code: 2-px zero pad before each 4x4 valid conv
    d_norm_first: bool = True  # instance norm on D's first layer too

    # objective (Eq. 2-7)
    lambda_cyc: float = 10.0
    tau: float = 0.1
    # Stage 2 (Eq. 6): D sees pixels where the attention passes tau. The released code keeps
    # [A >= tau] (tf.greater_equal); the paper writes [A > tau].
    tau_inclusive: bool = True
    # What a fake shows the stage-2 D (and what the history pool stores for it):
    # 'composite' (released code): s' of Eq. 1 under the mask, so G's adversarial gradient
    #   reaches F_ST scaled by A_S(s) and pixels with A < 1 are judged as blends with s;
    # 'raw' (the paper's Eq. 6): F_ST(s) under the mask, the gradient reaching F_ST unscaled.
    d_fake: str = "composite"
    pool_size: int = 50
    # what the baselines change (METHOD_DEFAULTS sets them per method)
    gan_loss: str = "lsgan"  # 'lsgan' (Eq. 2), 'gan' (sigmoid cross-entropy, non-saturating), 'wgan' (critic)
    cycle_norm: str = "l1"  # distance of the cycle (and UNIT's reconstruction) loss: 'l1' or 'l2'
    lambda_identity: float = 0.0  # CycleGAN's identity term F_ST(t) ~ t, weighted lambda_cyc * lambda_identity
    n_critic: int = 1  # D steps per G step: G trains on every n_critic-th iteration, D on all (WGAN)
    clip: float = 0.0  # after each D step, clip every D parameter to [-clip, clip] (WGAN); 0: off
    lambda_recon: float = 10.0  # UNIT: within-domain VAE reconstruction
    lambda_kl: float = 0.01  # UNIT: KL of the shared latent code, direct and cycle paths

    # schedule
    epochs: int = 100
    switch_epoch: int = 30
    decay_epoch: int = 50  # lr constant until here, then linear to ~0 at `epochs`
    iters_per_epoch: int | None = None  # None: max(|A|, |B|) // batch_size, the released code's epoch
    lr: float = 1e-4
    optimizer: str = "adam"  # 'adam' (beta1, beta2) or 'rmsprop' (DualGAN)
    beta1: float = 0.5
    beta2: float = 0.999
    # TF's AdamOptimizer adds its epsilon (1e-8) to sqrt(v) *before* the bias correction
    # ("epsilon hat", Kingma & Ba Sec. 2); torch's Adam after it (step.AdamEpsilonHat).
    adam_epsilon_hat: bool = False
    # The released code's six `minimize` ops share one Adam, whose bias-correction step count T
    # advances at each of them: 4x an iteration. True: agit's optimisers count one T together.
    adam_shared_counter: bool = False
    weight_decay: float = 0.0
    batch_size: int = 1
    update_order: str = "sequential"  # released code: G_ST, D_T, G_TS, D_S; "joint": Eq. 4 at once
    seed: int = 0

    # how a run computes, not what it learns (the README's "Speed and memory" has the measurements)
    workers: int = 0  # DataLoader worker processes
    recompute_activations: bool = False  # activation checkpointing of F and A: less memory, ~1 more forward
    cache_images: bool = False  # decode and resize each training image once, into <data>/.agit_cache/
    compile: bool = False  # torch.compile the networks: faster steps after a one-off compile (minutes on CPU)
    precision: str = "fp32"  # 'bf16' or 'fp16': autocast for the tensor cores of a GPU (fp16 with a grad scaler)

    # run bookkeeping
    sample_every: int = 1  # epochs between sample grids
    n_samples: int = 4
    checkpoint_every: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        validate(self)
        self._check_method()
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.switch_epoch < 0:
            raise ValueError(f"switch_epoch must be >= 0 (0: stage 2 from the start), got {self.switch_epoch}")
        if self.att_warmup_epochs < 0:
            raise ValueError(f"att_warmup_epochs must be >= 0, got {self.att_warmup_epochs}")
        if self.load_size is None:
            self.load_size = load_size_for(self.size)

    def _check_method(self):
        """Method and variant agree: 'cyclegan' is both a method and a variant (one switch, two
        spellings), and every baseline is attention-free, so its variant reads 'cyclegan'."""
        if self.method == "aggan" and self.variant == "cyclegan":
            self.method = "cyclegan"
        if self.method != "aggan":
            if self.variant not in ("ours", "cyclegan"):
                raise ValueError(f"variant {self.variant!r} ablates AGGAN's attention; "
                                 f"method {self.method!r} has none (use the default variant)")
            self.variant = "cyclegan"

    # -- what each variant switches (the model and loop ask these, never the name) --
    @property
    def attention_s(self) -> bool:
        """Whether A_S is learned; otherwise s_a is fixed to 1 (CycleGAN in S->T)."""
        return self.variant not in ("cyclegan", "at")

    @property
    def attention_t(self) -> bool:
        return self.variant not in ("cyclegan", "as")

    @property
    def attention_guided_d(self) -> bool:
        """Stage 2 shows D only the thresholded attended pixels (Eq. 6-7).

        Needs both attention nets: D_T compares t masked by A_T(t) with s' masked by A_S(s)
        (and D_S the reverse). With one map fixed to 1 ('Ours-As', 'Ours-At', which the
        paper leaves unspecified here), each D would compare a masked image with an
        unmasked one, and black backgrounds alone would tell real from fake; those
        variants keep whole-image discriminators (norm on) and only freeze their one map.
        """
        return self.attention_s and self.attention_t and self.variant not in ("d", "da")

    @property
    def freeze_attention(self) -> bool:
        """Stage 2 stops training A_S and A_T ('Ours-D-A' keeps training them)."""
        return self.variant != "da"

    @property
    def cycle_attention(self) -> str:
        """Which attention composes s'' (Eq. 3): A_T(s') or, for 'Ours-cycleAtt', s_a reused."""
        return "reuse" if self.variant == "cycleatt" else "recompute"

    @property
    def use_cycle(self) -> bool:
        return self.variant != "cycle"

    def stage(self, epoch: int) -> Stage:
        """The stage of training at `epoch` (0-based): stage 2 from `switch_epoch` on."""
        if epoch < self.switch_epoch:
            return Stage(1, attention_frozen=epoch < self.att_warmup_epochs, d_masked=False)
        return Stage(2, attention_frozen=self.freeze_attention, d_masked=self.attention_guided_d)

    @property
    def run_name(self) -> str:
        return run_name(self.variant, self.method)

    @property
    def has_attention(self) -> bool:
        return self.attention_s or self.attention_t

    def iterations_per_epoch(self, n_a: int, n_b: int) -> int:
        """`iters_per_epoch`, else one pass over the larger domain (the released code's epoch)."""
        return self.iters_per_epoch or max(n_a, n_b) // self.batch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return cls(**_checked(d))


def _checked(overrides: dict) -> dict:
    known = {f.name for f in fields(Config)}
    for key in overrides:
        if key not in known:
            raise KeyError(f"unknown config key {key!r}")
    return overrides


# -- what each field allows: `validate` (the schedule's fields: their relations are checked apart) --
def _at_least(low):
    return (lambda v: v >= low), f">= {low}"


def _odd(v):
    return v % 2 == 1


# What agit itself records in `extra` (profiles.Context.config_for): the run's key, its profile, its fork.
EXTRA_KEYS = ("agit_run", "profile", "forked_from")
# Each field's allowed values besides its type: (test, the range in words). The seed's bound:
# an item's augmentation seed is (seed * 1000003 + epoch) * 1000003 + k, which must stay below 2**64.
RANGES = {
    "size": (lambda v: v % 4 == 0, "a multiple of 4 (F and A halve it twice)"),
    "load_size": (lambda v: v is None or v >= 1, "none or >= size"),
    "ngf": _at_least(1), "att_ngf": _at_least(1), "ndf": _at_least(1),
    "n_res": _at_least(0), "d_layers": _at_least(0), "d_pad": _at_least(0),
    "gen_last_kernel": (_odd, "odd (a 'same' convolution)"),
    "att_up_kernel": (_odd, "odd (a 'same' convolution)"),
    "att_last_kernel": (_odd, "odd (a 'same' convolution)"),
    "lambda_cyc": _at_least(0), "lambda_identity": _at_least(0), "lambda_recon": _at_least(0),
    "lambda_kl": _at_least(0), "clip": _at_least(0), "weight_decay": _at_least(0),
    "tau": (lambda v: 0 < v < 1, "in (0, 1)"),
    "pool_size": _at_least(0), "n_critic": _at_least(1),
    "iters_per_epoch": (lambda v: v is None or v >= 1, "none (one pass over the data) or >= 1"),
    "lr": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"), "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "batch_size": _at_least(1), "seed": (lambda v: 0 <= v < 2**24, "in [0, 16777215]"),
    "workers": _at_least(0), "sample_every": _at_least(0), "n_samples": _at_least(1),
    "checkpoint_every": _at_least(1),
    "extra": (lambda v: set(v) <= set(EXTRA_KEYS), f"a dict with keys among {', '.join(EXTRA_KEYS)}"),
}
CHOICES = {"variant": VARIANTS, "method": METHODS, "gan_loss": GAN_LOSSES, "precision": PRECISIONS,
           "optimizer": ("adam", "rmsprop"), "cycle_norm": ("l1", "l2"), "d_fake": ("composite", "raw"),
           "resize_filter": ("bilinear", "bicubic", "tf1_bilinear"), "update_order": ("sequential", "joint"),
           "gen_padding": ("zeros", "reflect")}
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,), "None": (type(None),)}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "dict": "a dict", "None": "none"}


def validate(cfg: Config) -> None:
    """Check every field's type, range and relations to other fields (the schedule's relations
    aside), before anything is built or written; one ValueError, one line, naming each field
    that fails with its value and what it allows."""
    faults = [f"{f.name} must be {' or '.join(_TYPE_WORDS[t] for t in f.type.split(' | '))}, "
              f"got {getattr(cfg, f.name)!r}" for f in fields(cfg) if not _typed(getattr(cfg, f.name), f.type)]
    if not faults:
        faults = [f"{name} must be {words}, got {getattr(cfg, name)!r}"
                  for name, (test, words) in RANGES.items() if not test(getattr(cfg, name))]
        faults += [f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}"
                   for name, allowed in CHOICES.items() if getattr(cfg, name) not in allowed]
    if not faults:
        faults = _relations(cfg)
    if faults:
        raise ValueError("; ".join(faults))


def _typed(value, annotation: str) -> bool:
    """`value` is of the field's type (bools are not numbers; numbers are finite)."""
    kinds = tuple(t for name in annotation.split(" | ") for t in _TYPES[name])
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds) and not (isinstance(value, float) and not math.isfinite(value))


def _relations(cfg: Config) -> list[str]:
    from .nets import smallest_side  # nets builds on Config

    faults = []
    least = smallest_side(cfg)
    if cfg.size < least:
        faults.append(f"size must be >= {least} for these networks (F and A halve it twice; D has d_layers "
                      f"{cfg.d_layers}, d_pad {cfg.d_pad}), got {cfg.size}")
    if cfg.load_size is not None and cfg.load_size < cfg.size:
        faults.append(f"load_size must be none or >= size {cfg.size} (the crop is taken from it), got {cfg.load_size}")
    if cfg.method == "unit" and cfg.update_order != "joint":
        faults.append("method 'unit' needs update_order='joint': both directions share its layers")
    if cfg.method == "unit" and cfg.lambda_identity:
        faults.append("lambda_identity does not apply to 'unit': its within-domain "
                      "reconstruction (lambda_recon) plays that role")
    return faults


PRESETS: dict[str, dict] = {
    # The released code, deviations from the paper's text included, down to TF's own arithmetic.
    "official": dict(tf_same_padding=True, resize_filter="tf1_bilinear", adam_epsilon_hat=True,
                     adam_shared_counter=True),
    # The paper's text where explicit (Appendix A layers), the code where silent.
    "paper": dict(gen_last_kernel=3, att_up_kernel=3, att_last_kernel=7, tau_inclusive=False, d_fake="raw"),
    # CPU minutes on the synthetic default (README: "What is reproduced"; the tuning runs are
    # listed there). Each choice and what it fixed, measured on the default pair (overlap 0.3):
    "quick": dict(
        data="data/synthetic",
        # 48 px: a step costs about half the 64-px one, and at 64 px neither the attention IoU
        # nor the share of translated objects was better, seed for seed.
        # Widths for time (each measured over 3 seeds against the setting before it):
        # * d_layers=2: each of D's patches sees 34 px, 70 % of the image; with 3 layers it saw 70 px,
        #   the whole image (the paper's 70 px are 27 % of its 256). Objects judged
        #   the target 0.97 / 0.83 (was 0.96 / 0.80), KID to the counterfactual 428 / 17 (503 / 58),
        #   IoU alike; a step 10 % cheaper.
        # * ndf=24, n_res=3: another ~15 % off a step; IoU 0.65 / 0.65, objects 0.91 / 0.82.
        size=48, ngf=16, n_res=3, ndf=24, d_layers=2,
        # The paper's attention layers (3x3 after each up2, 7x7 last) instead of the released code's
        # effective 1x1s: the 1x1s upsample a 12x12 map into blocks (IoU 0.59 / 0.52 at 64 px; 0.63 /
        # 0.70 with these) and leave attention on object-free images (0.11 vs 0.004-0.035).
        # 16 wide: the 3x3 conv at full size made A the costliest net; 32 wide gave no better IoU.
        # A 3x3 last conv instead of the 7x7 left attention on object-free images (0.08-0.14).
        att_up_kernel=3, att_last_kernel=7, att_ngf=16,
        # 480 iterations of batch 2 (960 images, 2.4 passes over each domain), attention frozen after
        # 360 (epoch 6 of 8): a later switch left too little stage 2 to translate the object, an
        # earlier one an attention that covers less (Fig. 7). Batch 2 costs 0.15 s a step against 0.24
        # for batch 4 (one thread): 480 of them take 72 s where 400 of batch 4 took 97, with IoU
        # 0.67 / 0.63 and objects 0.95 / 0.85 (batch 4: 0.65 / 0.65, 0.91 / 0.82; batch 2 with only
        # 400 iterations: objects 0.82 / 0.72, one seed 0.65 / 0.58). 320 iterations of batch 4:
        # one seed of 3 translated 55 % of the horses.
        batch_size=2, epochs=8, switch_epoch=6, decay_epoch=7, iters_per_epoch=60,
        lr=5e-4, pool_size=50, shuffle=True, update_order="joint",
        # A starts near identity (sigmoid(-1.5) = 0.18): at 0.5 (bias 0) or 0.32 (-0.75) one seed
        # of two collapsed to A = 0 everywhere, which the sigmoid never leaves.
        att_init_bias=-1.5,
        # A is not trained for the first 3 epochs (measured with 150 iterations of batch 4, before
        # the widths and batch above; now 180 of batch 2, 3 seeds ok). Trained from the start, A falls to
        # ~0.01 in the first epoch while F's output is still noise, and A_S (horse -> zebra) climbed
        # back to only ~0.25 inside the horse: 2 seeds of 3 translated no horse (objects judged
        # zebra 0.91 / 0.00 / 0.00). Held, F first learns to translate through A = 0.18; then, per
        # seed, 0.91 / 0.98 / 0.99 (held 2 epochs: 0.47 / 0.47 / 0.96, IoU ~0.03 higher; held 1:
        # one seed of 3 collapsed to A = 0). On the fruit and stars pairs no seed collapsed either.
        att_warmup_epochs=3, sample_every=1,
    ),
    # Seconds, tiny networks: for tests and the ci profile.
    "ci": dict(
        data="data/ci", size=32, ngf=4, n_res=1, att_ngf=4, ndf=8, d_layers=2,
        epochs=2, switch_epoch=1, decay_epoch=1, iters_per_epoch=4,
        lr=2e-4, pool_size=4, shuffle=True, update_order="joint", n_samples=2,
    ),
}


# Each method's own settings where they differ from AGGAN's (see the class docstrings in
# baselines.py for the papers and the choices). They override the preset, not explicit overrides.
METHOD_DEFAULTS: dict[str, dict] = {
    "aggan": dict(),
    "cyclegan": dict(),  # A = 1, LSGAN, lambda_cyc 10, history pool: AGGAN's own settings
    "ra": dict(),  # CycleGAN's losses around residual-attention generators
    # Standard GAN loss; reconstruction (MSE, as DiscoGAN's code) weighted like the adversarial term.
    "discogan": dict(gan_loss="gan", lambda_cyc=1.0, cycle_norm="l2", pool_size=0),
    # WGAN with weight clipping: RMSProp lr 5e-5, c = 0.01, n_critic 2 (DualGAN's training procedure);
    # lambda 20 on the mean L1 (its released code; the paper quotes 100-1000 for its own norm).
    "dualgan": dict(gan_loss="wgan", n_critic=2, clip=0.01, optimizer="rmsprop", lr=5e-5,
                    lambda_cyc=20.0, pool_size=0),
    # Weights of Liu et al.: GAN 1, reconstruction 10, KL 0.01, cycle 10, cycle KL 0.01;
    # Adam weight decay 1e-4; no history pool; both directions in one step.
    "unit": dict(lambda_cyc=10.0, lambda_recon=10.0, lambda_kl=0.01, weight_decay=1e-4,
                 pool_size=0, update_order="joint"),
}


def preset(name: str, **overrides) -> Config:
    """The named preset, the method's defaults over it, then `overrides` (unknown keys: an error naming the key)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    method = overrides.get("method", PRESETS[name].get("method", "aggan"))
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return Config(**{**PRESETS[name], **METHOD_DEFAULTS[method], "preset": name, **_checked(overrides)})


def check_schedule(cfg: Config):
    """A ValueError naming every schedule field that does not fit the run, with a schedule that does.

    A run must reach what its schedule plans: the end of the attention warm-up, the stage
    switch and the lr decay all at or before `epochs` (equal is allowed: a run may be
    trained up to its switch and resumed with more epochs), and the attention must train in
    at least one epoch. A preset shortened with `--epochs` is refused rather than scaled:
    its schedule was tuned at its own length (the quick preset's 3 held epochs fixed
    collapses that 1 or 2 did not), and a silently scaled copy would be an untested schedule
    under the preset's name. The message offers the scaled schedule to pass explicitly.
    """
    attention = cfg.has_attention
    keys = ("att_warmup_epochs", "switch_epoch", "decay_epoch") if attention else ("decay_epoch",)
    late = [f"{key} {getattr(cfg, key)}" for key in keys if getattr(cfg, key) > cfg.epochs]
    never = attention and all(cfg.stage(e).attention_frozen for e in range(cfg.epochs))
    if not late and not never:
        return
    faults = [f"{', '.join(late)} {'comes' if len(late) == 1 else 'come'} after the last epoch"] if late else []
    if never:
        faults.append(f"the attention would never train (held in the first {cfg.att_warmup_epochs} epochs, "
                      f"frozen from epoch {cfg.switch_epoch + 1} on)")
    full = PRESETS.get(cfg.preset, {}).get("epochs", cfg.epochs)
    scale = min(1.0, cfg.epochs / full)
    fit = {"decay_epoch": min(round(cfg.decay_epoch * scale), cfg.epochs)}
    if attention:
        fit["switch_epoch"] = max(1, min(round(cfg.switch_epoch * scale), cfg.epochs - 1))
        fit["att_warmup_epochs"] = max(0, min(round(cfg.att_warmup_epochs * scale), fit["switch_epoch"] - 1))
    fix = " ".join(f"{key}={fit[key]}" for key in keys if fit[key] != getattr(cfg, key))
    offer = (f"--epochs {full} (the {cfg.preset} preset's), or its schedule scaled to {cfg.epochs} epochs "
             f"(not tuned at that length): --set {fix}" if scale < 1 else f"--set {fix}")
    raise ValueError(f"schedule of {cfg.epochs} epochs: {'; '.join(faults)}. Use {offer}")


def schedule_text(cfg: Config, per_epoch: int | None = None, reached: int | None = None) -> str:
    """The schedule in words, 1-based epochs; with `reached` (epochs done), stages not reached say so."""
    reached = cfg.epochs if reached is None else reached
    parts = [f"{cfg.epochs} epochs" + (f" × {per_epoch} iterations" if per_epoch else "") + f", batch {cfg.batch_size}"]
    if cfg.has_attention and cfg.att_warmup_epochs:
        parts.append(f"attention held in epochs 1-{cfg.att_warmup_epochs}")
    if cfg.has_attention:
        stage2 = f"stage 2 from epoch {cfg.switch_epoch + 1}"
        if cfg.switch_epoch >= reached:
            stage2 += " (not reached)" if reached < cfg.epochs else " (after the last: resume with more --epochs)"
        parts.append(stage2)
    if cfg.decay_epoch < cfg.epochs:
        parts.append(f"lr {cfg.lr:g}, decaying from epoch {cfg.decay_epoch + 1}")
    return "; ".join(parts)


# -- comparing configs: what a resume may change, what reproduce ignores ----------------------
# Fields that change how a run computes or what it records, not what it learns: a resume
# may change them (the log records it), and reproduce ignores them when it compares a
# run's config with the one it wants.
HOW_KEYS = ("extra", "data", "workers", "recompute_activations", "cache_images", "compile",
            "sample_every", "n_samples", "checkpoint_every")
# The one schedule field a resume may change: the number of epochs (e.g. to train longer).
# The lr schedule (step.lr_factor) follows the new value from the resumed epoch on.
RESCHEDULABLE_KEYS = ("epochs",)


def config_changes(saved: dict, wanted: dict) -> dict[str, tuple]:
    """{field: (saved, wanted)} for each field that differs; a field the saved config lacks
    (added to Config after it was written) counts as its default."""
    defaults = {f.name: f.default for f in fields(Config)}
    return {k: (saved.get(k, defaults.get(k)), v) for k, v in wanted.items()
            if saved.get(k, defaults.get(k)) != v}


def describe_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` from the command line, the value typed like the field's default; a value
    that does not parse is a ValueError naming the key and the type it needs."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise ValueError(f"--set expects key=value, got {text!r}")
    kinds = {f.name: f for f in fields(Config)}
    if key not in kinds:
        raise KeyError(f"unknown config key {key!r}")
    default = kinds[key].default
    if raw.lower() in ("none", "null"):
        if default is not None:
            raise ValueError(f"--set {key}: cannot be none (default {default!r})")
        return key, None
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--set {key}: expects true or false, got {raw!r}")
        return key, raw.lower() in ("true", "1")
    kind = int if isinstance(default, int) or key in ("load_size", "iters_per_epoch") else (
        float if isinstance(default, float) else str)
    try:
        return key, kind(raw)
    except ValueError:
        raise ValueError(f"--set {key}: expects {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
