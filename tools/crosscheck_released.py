"""Run the authors' released TensorFlow code beside agit's `official` preset and compare, number for number.

    python tools/crosscheck_released.py /path/to/clone [--set key=value ...] [--out results/crosscheck]
    (make crosscheck RELEASED=/path/to/clone)

The clone is the user's (https://github.com/AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation);
nothing of it is copied here. Its modules are imported under TensorFlow 2's `compat.v1`
(`pip install -e '.[crosscheck]'`) with the smallest shim they need (`released_modules`), its
graph is built by `main.py`'s own `CycleGAN.model_setup` and `compute_losses` (the networks of
`model.get_outputs`, the losses of `losses.py`, the one Adam and its six `minimize` ops), and
the same weights (TF's initialisation, copied into agit by `agit.released.load_released`, the
mapping `agit import-tf` uses) and the same inputs go into both. Compared:

* every network output (F, A, D in both directions, the cycle) in stage 1 and in stage 2
  (D's instance norm off, its inputs masked at [A >= tau]), at 256 px and one other size;
* every loss term of one iteration in both stages;
* one iteration of the released update order (`train()`'s four `sess.run`s: G_A, D_B, G_B, D_A,
  with its history pool) against agit's, parameter by parameter, in both stages; then 1, 10
  and 100 iterations (3 draws of weights and images each) with and without the shared Adam
  step count (`adam_shared_counter`), beside two controls: agit against itself with its weights moved by one ulp (how far rounding
  alone carries two trainings apart) and the released graph trained twice (TF's own noise);
* 300-iteration trainings from the same weights on agit's synthetic pair at 4 seeds: what the
  trained models do to its test images (attention and change on the objects and on the
  background, cycle error), released against official in distribution, over the seeds;
* the data path (decode, resize to 286, crop at fixed offsets, scale) on 500x375 and 1024x683 photos;
* a checkpoint saved by the released graph, converted by `agit import-tf`, translated by agit.

Writes results/crosscheck/crosscheck.{md,json}; exits 1 when a tolerance is broken (`--set
tf_same_padding=false` shows it), 2 on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from agit import AGGAN, preset
from agit.claims import REPRODUCED, verdict
from agit.config import parse_override
from agit.data import resize_square
from agit.released import ROLES, is_network_variable, load_released, released_variables
from agit.step import Updates, iteration_phases

# max |difference| allowed, and why that much: float32 arithmetic in two libraries' kernels
TOLERANCES = {
    # images in [-1, 1], attention in [0, 1], D scores O(1): float32 rounding through ~30 layers of two
    # libraries' kernels (measured: max 1.2e-5, mean 1.6e-6 on F's output at 256 px); a one-pixel
    # misalignment moves them by ~0.3
    "output": 5e-5,
    "loss": 1e-5,  # loss terms O(0.1-10)
    "pixel": 1e-3,  # data path, on the 0-255 scale before [-1, 1]: float32 rounding of the interpolation weights
}
SIZES = (256, 200)  # the paper's, and one other (multiple of 4, not a power of 2)
ITER_SIZE = 32  # the 1/10/100-iteration runs: official networks on 32-px images (CPU minutes)
ITERATIONS = (1, 10, 100)
ITER_DRAWS = (0, 1, 2)  # draws of weights and images for each length: a spread, not one trajectory
# trainings compared in distribution: official networks on agit's synthetic pair, 32 px (CPU minutes per seed)
TRAINING = {"size": 32, "iterations": 300, "seeds": (0, 1, 2, 3), "n_train": 64, "n_test": 16}
SECTIONS = ("outputs", "iterations", "training", "data", "checkpoint")
LR = 1e-4


# -- the released code under TF2 ----------------------------------------------------------
def released_modules(clone: Path):
    """model, losses, main of the clone, imported under tf.compat.v1 with the shim they need.

    Each shim entry replaces what TF 2 (or SciPy) no longer has; nothing else is changed.
    """
    import tensorflow as real_tf
    import tensorflow.compat.v1 as tf1

    tf1.disable_v2_behavior()

    def pair(v):
        return list(v) if isinstance(v, (list, tuple)) else [v, v]

    def conv2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", activation_fn=None,
               weights_initializer=None, biases_initializer=None):
        # replaces tf.contrib.layers.conv2d (contrib left with TF 1.15): its variable scope 'Conv'
        # and variable names 'weights'/'biases', as the released checkpoints name them
        (kh, kw), (sh, sw) = pair(kernel_size), pair(stride)
        with tf1.variable_scope(None, default_name="Conv"):
            w = tf1.get_variable("weights", [kh, kw, int(inputs.shape[-1]), num_outputs], initializer=weights_initializer)
            b = tf1.get_variable("biases", [num_outputs], initializer=biases_initializer)
            y = tf1.nn.bias_add(tf1.nn.conv2d(inputs, w, [1, sh, sw, 1], padding.upper()), b)
        return activation_fn(y) if activation_fn else y

    def conv2d_transpose(inputs, num_outputs, kernel_size, stride=1, padding="SAME", activation_fn=None,
                         weights_initializer=None, biases_initializer=None):
        # replaces tf.contrib.layers.conv2d_transpose: scope 'Conv2d_transpose', kernel (h, w, out, in),
        # output size in * stride for 'SAME' (the released code only uses 'SAME')
        (kh, kw), (sh, sw) = pair(kernel_size), pair(stride)
        n, h, w_, c = inputs.shape.as_list()
        with tf1.variable_scope(None, default_name="Conv2d_transpose"):
            w = tf1.get_variable("weights", [kh, kw, num_outputs, c], initializer=weights_initializer)
            b = tf1.get_variable("biases", [num_outputs], initializer=biases_initializer)
            out = [n, h * sh, w_ * sw, num_outputs]
            y = tf1.nn.bias_add(tf1.nn.conv2d_transpose(inputs, w, out, [1, sh, sw, 1], padding.upper()), b)
        return activation_fn(y) if activation_fn else y

    shim = types.ModuleType("tensorflow")
    shim.__dict__.update({k: getattr(tf1, k) for k in dir(tf1) if not k.startswith("__")})
    shim.contrib = types.SimpleNamespace(
        layers=types.SimpleNamespace(conv2d=conv2d, conv2d_transpose=conv2d_transpose),
        # main.py: slim = tf.contrib.slim, used for slim.get_or_create_global_step() only
        slim=types.SimpleNamespace(get_or_create_global_step=tf1.train.get_or_create_global_step))
    # scipy.misc.imsave (removed in SciPy 1.2) is imported by main.py for its image dumps, which
    # the cross-check never calls
    misc = types.ModuleType("scipy.misc")
    misc.imsave = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("imsave is not shimmed"))
    saved = {k: sys.modules.get(k) for k in ("tensorflow", "scipy.misc")}
    sys.modules.update({"tensorflow": shim, "scipy.misc": misc})
    sys.path.insert(0, str(clone))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import losses
            import main
            import model
    finally:
        sys.path.remove(str(clone))
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert sys.modules["tensorflow"] is real_tf
    return tf1, model, losses, main


class Released:
    """main.py's CycleGAN graph (model_setup + compute_losses) in a session of its own."""

    def __init__(self, mods, size: int, pool_size: int = 50, ngf: int = 32, ndf: int = 64, seed: int = 0):
        self.tf1, self.model, self.losses, main = mods
        tf1 = self.tf1
        self.model.IMG_HEIGHT = self.model.IMG_WIDTH = size
        self.model.ngf, self.model.ndf = ngf, ndf
        self.graph = tf1.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.gan = main.CycleGAN(pool_size, 10.0, 10.0, tempfile.gettempdir(), False, LR, 100, "pytorch",
                                     "horse2zebra_train", "", False, False, 30, 0.1)
            with contextlib.redirect_stdout(io.StringIO()):
                self.gan.model_setup()
                self.gan.compute_losses()
            g = self.gan
            # the loss terms as compute_losses builds them (it keeps only their summaries)
            self.terms = {
                "cyc_s2t": 10.0 * self.losses.cycle_consistency_loss(g.input_a, g.cycle_images_a),
                "cyc_t2s": 10.0 * self.losses.cycle_consistency_loss(g.input_b, g.cycle_images_b),
                "adv_s2t": self.losses.lsgan_loss_generator(g.prob_fake_b_is_real),
                "adv_t2s": self.losses.lsgan_loss_generator(g.prob_fake_a_is_real),
                # compute_losses' own totals and D losses, read from its summary ops
                "g_loss_A": g.g_A_loss_summ.op.inputs[1], "g_loss_B": g.g_B_loss_summ.op.inputs[1],
                "d_s2t": g.d_B_loss_summ.op.inputs[1], "d_t2s": g.d_A_loss_summ.op.inputs[1],
            }
            self.saver = tf1.train.Saver()
            self.sess = tf1.Session(graph=self.graph, config=tf1.ConfigProto(
                intra_op_parallelism_threads=2, inter_op_parallelism_threads=1))
            self.sess.run(tf1.global_variables_initializer())

    def network_arrays(self) -> dict[str, np.ndarray]:
        with self.graph.as_default():
            variables = self.tf1.global_variables()
        return dict(zip([v.name[:-2] for v in variables], self.sess.run(variables)))

    def assign(self, name: str, value: np.ndarray):
        with self.graph.as_default():
            (var,) = [v for v in self.tf1.global_variables() if v.name[:-2] == name]
            var.load(value, self.sess)

    def feed(self, s, t, stage: int, pool_b=None, pool_a=None, lr=LR):
        """A feed dict: s, t (NHWC), stage 1 (norm on, tau 0) or 2 (norm off, tau 0.1), the pool."""
        g = self.gan
        feed = {g.input_a: s, g.input_b: t, g.learning_rate: lr,
                g.transition_rate: 0.0 if stage == 1 else 0.1, g.donorm: stage == 1}
        for (img, mask), (pi, pm) in ((pool_b or (None, None), (g.fake_pool_B, g.fake_pool_B_mask)),
                                      (pool_a or (None, None), (g.fake_pool_A, g.fake_pool_A_mask))):
            if img is not None:
                feed[pi], feed[pm] = img, mask
        return feed

    def iteration(self, s, t, stage: int, lr=LR):
        """One iteration of train(): its four sess.run calls in order, its fake_image_pool between."""
        g = self.gan
        train_a, train_b = (g.g_A_trainer, g.g_B_trainer) if stage == 1 else (g.g_A_trainer_bis, g.g_B_trainer_bis)
        _, fake_b, mask_a = self.sess.run([train_a, g.fake_images_b, g.masks[0]], self.feed(s, t, stage, lr=lr))
        pooled = g.fake_image_pool(g.num_fake_inputs, fake_b, mask_a, g.fake_images_B)
        self.sess.run(g.d_B_trainer, self.feed(s, t, stage, pool_b=(pooled["im"], pooled["mask"]), lr=lr))
        _, fake_a, mask_b = self.sess.run([train_b, g.fake_images_a, g.masks[1]], self.feed(s, t, stage, lr=lr))
        pooled = g.fake_image_pool(g.num_fake_inputs, fake_a, mask_b, g.fake_images_A)
        self.sess.run(g.d_A_trainer, self.feed(s, t, stage, pool_a=(pooled["im"], pooled["mask"]), lr=lr))
        g.num_fake_inputs += 1


# -- agit beside it ---------------------------------------------------------------------------
def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().transpose(0, 2, 3, 1)


def stage_of(cfg, stage_no: int):
    """agit's Stage for the released code's stage 1 (epoch 0) or 2 (from switch_epoch)."""
    return cfg.stage(0 if stage_no == 1 else cfg.switch_epoch)


def agit_beside(rel: Released, overrides: dict, size: int, **extra) -> AGGAN:
    cfg = preset("official", size=size, ngf=rel.model.ngf, att_ngf=rel.model.ngf, ndf=rel.model.ndf,
                 **{**overrides, **extra})
    model = AGGAN(cfg)
    load_released(model, rel.network_arrays())
    return model


def attention_near_tau(rel: Released, s, t):
    """Spread each attention net's logits (std 2) around tau (0.1), half of the pixels below it.

    At TF's initialisation the attention is 0.5 +- 0.01 everywhere: stage 2's masks would keep
    every pixel and test nothing. Scaled so, the masks cut through the images, and few pixels
    lie within float32 noise (1e-7) of tau, where the two libraries' masks could differ.
    """
    g = rel.gan
    masks = rel.sess.run(g.masks[:2], rel.feed(s, t, 1))
    arrays = rel.network_arrays()
    for scope, mask in zip(("g_A_ae", "g_B_ae"), masks):
        weights, bias = f"Model/{scope}/c6/Conv/weights", f"Model/{scope}/c6/Conv/biases"
        logits = np.log(mask[..., 0] / (1 - mask[..., 0])) - arrays[bias]
        scale = 2.0 / logits.std()
        rel.assign(weights, arrays[weights] * scale)
        rel.assign(bias, np.full_like(arrays[bias], np.log(0.1 / 0.9) - np.median(logits * scale)))


def images(rng, n, size):
    """Smooth random images in [-1, 1] (NHWC): upsampled noise, so the networks see structure."""
    small = rng.uniform(-1, 1, (n, 3, size // 8, size // 8)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(small), size=(size, size), mode="bicubic", align_corners=False)
    return nhwc(big.clamp(-1, 1) + 0.1 * torch.from_numpy(rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)).clamp(-1, 1))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, section, what, released, ours, kind, tolerance="default", note=""):
        """One comparison; `tolerance` None: measured only (no tolerance applies)."""
        diff = np.abs(np.asarray(released, np.float64) - np.asarray(ours, np.float64))
        tol = TOLERANCES[kind] if tolerance == "default" else tolerance
        row = {"section": section, "what": what, "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
               "tolerance": tol, "ok": bool(tol is None or diff.max() <= tol), "note": note}
        self.rows.append(row)
        flag = "ok " if row["ok"] else "FAIL"
        print(f"{flag} {section:<34} {what:<34} max {row['max_abs_diff']:.2e}  mean {row['mean_abs_diff']:.2e}", flush=True)
        return row


def compare_outputs(table, rel, model, size, s, t, pool):
    """Every network output, stage 1 and stage 2, from one sess.run and agit's own functions."""
    g = rel.gan
    for stage_no in (1, 2):
        stage = stage_of(model.cfg, stage_no)
        fetch = {"s'": g.fake_images_b, "t'": g.fake_images_a, "F_ST(s)": g.masked_gen_ims[0],
                 "F_TS(t)": g.masked_gen_ims[1], "A_S(s)": g.masks[0], "A_T(t)": g.masks[1],
                 "A_S(t')": g.masks[2], "A_T(s')": g.masks[3], "s''": g.cycle_images_a, "t''": g.cycle_images_b,
                 "D_S(s)": g.prob_real_a_is_real, "D_T(t)": g.prob_real_b_is_real,
                 "D_T(s')": g.prob_fake_b_is_real, "D_S(t')": g.prob_fake_a_is_real,
                 "D_T(pool)": g.prob_fake_pool_b_is_real, "D_S(pool)": g.prob_fake_pool_a_is_real}
        out = rel.sess.run(fetch, rel.feed(s, t, stage_no, pool_b=pool[0], pool_a=pool[1]))
        S, T = nchw(s), nchw(t)
        # D is judged on the masks TF computed: a pixel whose attention lies within float noise of
        # tau may fall on either side in the two libraries (counted in the mask rows below)
        a_s, a_t = nchw(out["A_S(s)"])[:, :1], nchw(out["A_T(t)"])[:, :1]
        with torch.no_grad():
            cs, ct = model.cycle(S, "s2t"), model.cycle(T, "t2s")
            ours = {"s'": cs.forward.image, "t'": ct.forward.image, "F_ST(s)": cs.forward.raw, "F_TS(t)": ct.forward.raw,
                    "A_S(s)": cs.forward.attention, "A_T(t)": ct.forward.attention,
                    "A_S(t')": model.attention(ct.forward.image, "s2t"), "A_T(s')": model.attention(cs.forward.image, "t2s"),
                    "s''": cs.back, "t''": ct.back,
                    "D_S(s)": model.judge_score("t2s", S, a_s, stage),
                    "D_T(t)": model.judge_score("s2t", T, a_t, stage),
                    "D_T(s')": model.judge_score("s2t", cs.forward.image, a_s, stage),
                    "D_S(t')": model.judge_score("t2s", ct.forward.image, a_t, stage),
                    "D_T(pool)": model.judge_score("s2t", nchw(pool[0][0]), nchw(pool[0][1])[:, :1], stage),
                    "D_S(pool)": model.judge_score("t2s", nchw(pool[1][0]), nchw(pool[1][1])[:, :1], stage)}
        for name, value in out.items():
            ref = value[..., :1] if name.startswith("A_") else value  # TF tiles the attention to 3 channels
            table.add(f"outputs {size} px, stage {stage_no}", name, ref, nhwc(ours[name]), "output")
        if stage_no == 2:  # the masks D sees: [A >= tau], as pixel counts
            for name in ("A_S(s)", "A_T(t)"):
                theirs, mine = out[name][..., 0] >= 0.1, nhwc(ours[name])[..., 0] >= 0.1
                near = np.abs(out[name][..., 0] - 0.1) <= np.abs(out[name] - nhwc(ours[name]))[..., 0].max()
                table.add(f"outputs {size} px, stage {stage_no}", f"[{name} >= tau]: pixels that differ",
                          float((theirs != mine).sum()), 0.0, "output", tolerance=None,
                          note=f"the mask keeps {theirs.mean():.0%} of the pixels; {near.sum()} lie within "
                               f"the attention's max difference of tau")


def compare_losses(table, rel, model, size, s, t):
    g = rel.gan
    for stage_no in (1, 2):
        stage = stage_of(model.cfg, stage_no)
        fakes = rel.sess.run([g.fake_images_b, g.masks[0], g.fake_images_a, g.masks[1]], rel.feed(s, t, stage_no))
        # the pool returns the newest fake while it fills: D's terms on this iteration's fakes
        out = rel.sess.run(rel.terms, rel.feed(s, t, stage_no, pool_b=tuple(fakes[:2]), pool_a=tuple(fakes[2:])))
        with torch.no_grad():
            ours = {k: v.item() for k, v in model.iteration_losses(nchw(s), nchw(t), stage).items()}
        ours["g_loss_A"] = ours["adv_s2t"] + ours["cyc_s2t"] + ours["cyc_t2s"]
        ours["g_loss_B"] = ours["adv_t2s"] + ours["cyc_s2t"] + ours["cyc_t2s"]
        for name, value in out.items():
            table.add(f"losses {size} px, stage {stage_no}", name, value, ours[name], "loss")


def param_diffs(rel: Released, model: AGGAN, stage_no: int) -> dict[str, tuple[float, float]]:
    """(max |released - agit|, share of elements > 1e-6 apart) per network after training both,
    variable by variable (TF names, agit.released's mapping), in three groups:

    * the elements whose gradient (Adam's first moment, read from TF's slot) is at least 1e-3 of
      the largest in their variable;
    * 'near-zero gradients': the others. Adam's first step is lr * g / (|g| + eps'), +-lr for any
      |g| >> 3e-7: where the exact gradient is near 0, float noise picks the sign, and the two
      libraries can step such an element in opposite directions (a difference of 2 lr);
    * 'inert biases': biases of convs an instance norm follows (D's: in stage 1 only). IN removes
      their effect, so their exact gradient is 0: the case above for every element, no output changes.
    """
    arrays = rel.network_arrays()
    out = {}
    for name, (param, kernel) in released_variables(model).items():
        layout = (lambda a: a.transpose(3, 2, 0, 1)) if kernel else (lambda a: a)
        diff = np.abs(layout(arrays[name]) - param.detach().numpy())
        moment = np.abs(layout(arrays[f"{name}/Adam"]))
        scope = name.rsplit("/", 2)[0]
        net = ROLES[name.split("/")[1]]
        normed = f"{scope}/instance_norm/scale" in arrays and not (stage_no == 2 and "/d_" in name)
        if name.endswith("/biases") and normed:
            groups = {f"{net} inert biases": diff}
        else:
            determined = moment >= 1e-3 * moment.max() if moment.max() > 0 else np.ones_like(diff, bool)
            groups = {net: diff[determined], f"{net} near-zero gradients": diff[~determined]}
        for key, d in groups.items():
            if d.size:
                worst, off, n = out.get(key, (0.0, 0, 0))
                out[key] = (max(worst, float(d.max())), off + int((d > 1e-6).sum()), n + d.size)
    return {k: (worst, off / n) for k, (worst, off, n) in out.items()}


def outputs_after(rel: Released, model: AGGAN, s, t, stage_no: int) -> dict[str, tuple]:
    """(released, agit) s', t' and D's scores of the real images: what the trained weights compute."""
    g = rel.gan
    stage = stage_of(model.cfg, stage_no)
    out = rel.sess.run([g.fake_images_b, g.fake_images_a, g.prob_real_a_is_real, g.prob_real_b_is_real],
                       rel.feed(s, t, stage_no))
    S, T = nchw(s), nchw(t)
    with torch.no_grad():
        fs, ft = model.translate(S, "s2t"), model.translate(T, "t2s")
        ours = [fs.image, ft.image, model.judge_score("t2s", S, fs.attention, stage),
                model.judge_score("s2t", T, ft.attention, stage)]
    return {name: (ref, nhwc(o)) for name, ref, o in zip(("s'", "t'", "D_S(s)", "D_T(t)"), out, ours)}


ULP = 2.0 ** -23  # float32's relative spacing: the size of the two libraries' rounding differences
VARIANTS = {  # the agit trainings beside each released one in the 1/10/100-iteration runs
    "shared step count (official)": ({"adam_shared_counter": True}, 0.0),
    "own step counts": ({"adam_shared_counter": False}, 0.0),
    "shared step count, weights moved 1 ulp": ({"adam_shared_counter": True}, ULP),
}


def train_both(mods, overrides, size, iterations, stage_no, variants=None, seed=0, draw=None, pool_size=None):
    """Released and agit from the same weights through `iterations` identical iterations.

    `variants` {label: (config fields, relative weight perturbation)}: the agit models trained
    beside the one released graph (default: `official` as it is). `draw(rng)`: an (s, t) pair
    (default: random images, and the attention spread around tau first). Returns the released
    graph, {label: model} and the first pair drawn (for the outputs after training). The pools
    hold every fake by default (`pool_size` >= iterations: no random draws from them, so the
    two libraries see the same fakes).
    """
    pool_size = pool_size or max(iterations, 50)
    variants = {"official": ({}, 0.0)} if variants is None else variants
    rng = np.random.default_rng(seed)
    rel = Released(mods, size, pool_size=pool_size, seed=seed)
    spread, draw = draw is None, draw or (lambda r: (images(r, 1, size), images(r, 1, size)))
    s0, t0 = draw(rng)
    if spread:
        attention_near_tau(rel, s0, t0)
    models, steps = {}, []
    for label, (fields, perturbation) in variants.items():
        model = models[label] = agit_beside(rel, overrides, size, pool_size=pool_size, lr=LR, **fields)
        nudge(model, perturbation, seed)
        model.train()
        stage = stage_of(model.cfg, stage_no)
        for att in model.attention_nets():  # as Trainer.set_epoch enters the stage
            att.requires_grad_(not stage.attention_frozen)
        steps.append((Updates(model, model.cfg, torch.device("cpu")), model.cfg, stage))
    for i in range(iterations):
        s, t = draw(rng)
        rel.iteration(s, t, stage_no)
        for updates, cfg, stage in steps:
            updates.iteration(nchw(s), nchw(t), iteration_phases(cfg, i), stage)
    return rel, models, (s0, t0)


def nudge(model: AGGAN, perturbation: float, seed: int):
    """Scale every weight by 1 +- `perturbation` (random signs): a difference as small as rounding's."""
    if perturbation:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                signs = torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1
                p.mul_(1 + perturbation * signs)


def apart(deltas) -> tuple[float, float]:
    """(max |difference|, share of the elements more than 1e-6 apart) of per-variable |differences|."""
    deltas = [np.asarray(d) for d in deltas]
    return max(float(d.max()) for d in deltas), sum(int((d > 1e-6).sum()) for d in deltas) / sum(d.size for d in deltas)


def released_s_prime(rel: Released, s, t) -> np.ndarray:
    return rel.sess.run(rel.gan.fake_images_b, rel.feed(s, t, 1))


def agit_s_prime(model: AGGAN, s) -> np.ndarray:
    with torch.no_grad():
        return nhwc(model.translate(nchw(s), "s2t").image)


def compare_iterations(table, mods, overrides, size):
    for stage_no in (1, 2):
        rel, models, (s, t) = train_both(mods, overrides, size, 1, stage_no)
        model = models["official"]
        section = f"1 iteration {size} px, stage {stage_no}"
        for net, (diff, share) in param_diffs(rel, model, stage_no).items():
            table.add(section, f"params {net}", diff, 0.0, "param", tolerance=None,
                      note=f"{share:.3%} of the elements differ by > 1e-6")
        for name, (ref, ours) in outputs_after(rel, model, s, t, stage_no).items():
            table.add(section, f"{name} after it", ref, ours, "output", tolerance=None)
        rel.sess.close()
    for n, draw in ((n, draw) for n in ITERATIONS for draw in ITER_DRAWS):
        section = f"{n} iteration{'s' * (n > 1)} {ITER_SIZE} px, stage 1, draw {draw}"
        t0 = time.time()
        rel, models, (s, t) = train_both(mods, overrides, ITER_SIZE, n, 1, VARIANTS, seed=draw)
        ref = released_s_prime(rel, s, t)
        for label, model in models.items():
            diffs = param_diffs(rel, model, 1)
            share = max(v[1] for k, v in diffs.items() if " " not in k)
            table.add(section, f"params, released vs agit {label}", max(v[0] for v in diffs.values()), 0.0, "param",
                      tolerance=None, note=f"up to {share:.2%} of a network's elements > 1e-6 apart")
            table.add(section, f"s' after them, released vs agit {label}", ref, agit_s_prime(model, s), "output",
                      tolerance=None)
        official = models["shared step count (official)"]
        for label in list(VARIANTS)[1:]:
            agit_against_itself(table, section, official, models[label], s, label)
        if draw == ITER_DRAWS[0]:  # TF's determinism, once per length
            again, _, _ = train_both(mods, overrides, ITER_SIZE, n, 1, {}, seed=draw)
            released_against_itself(table, section, rel, again, s, t, f"({time.time() - t0:.0f} s for this section)")
        else:
            rel.sess.close()


def agit_against_itself(table, section, official, other, s, label):
    """agit (deterministic on CPU) against itself from the same weights and images: what `label` alone changes.

    The step count row isolates the bias correction; the 1-ulp row is the control for the
    released-vs-agit rows: if a rounding-sized change of the weights grows as much within the same
    library, the growth between the libraries is the GAN game amplifying rounding, not a difference.
    """
    worst, share = apart((pa - pb).detach().abs() for pa, pb in zip(official.parameters(), other.parameters()))
    table.add(section, f"params, agit official vs agit {label}", worst, 0.0, "param", tolerance=None,
              note=f"{share:.2%} of the elements > 1e-6 apart")
    table.add(section, f"s' after them, agit official vs agit {label}", agit_s_prime(official, s),
              agit_s_prime(other, s), "output", tolerance=None)


def released_against_itself(table, section, rel, again, s, t, note):
    """The released graph trained twice, same seed, weights and images: TF's run-to-run noise
    (its thread pool may sum in another order)."""
    arrays, arrays_again = rel.network_arrays(), again.network_arrays()
    worst, share = apart(np.abs(arrays[n] - arrays_again[n]) for n in arrays if is_network_variable(n))
    table.add(section, "params, released vs released trained again", worst, 0.0, "param", tolerance=None,
              note=f"{share:.2%} of the elements > 1e-6 apart {note}")
    table.add(section, "s' after them, released vs released trained again", released_s_prime(rel, s, t),
              released_s_prime(again, s, t), "output", tolerance=None)
    for r in (rel, again):
        r.sess.close()


def compare_training(table, mods, overrides, tmp: Path):
    """Both trained from the same weights on the same stream of the synthetic pair, at several seeds:
    what the trained models do to its test images, in distribution (the pool and Python's
    `random` each library's own, seeded), since rounding alone parts two trainings (above)."""
    size, iterations, seeds = TRAINING["size"], TRAINING["iterations"], TRAINING["seeds"]
    pair = synthetic_pair(tmp, size)

    def draw(rng):
        return (pair["trainA"][rng.integers(len(pair["trainA"]))][None],
                pair["trainB"][rng.integers(len(pair["trainB"]))][None])

    per_seed = {"released": [], "official": []}
    for seed in seeds:
        t0 = time.time()
        random.seed(seed)  # the released history pool's draws
        rel, models, _ = train_both(mods, overrides, size, iterations, 1, {"official": ({"seed": seed}, 0.0)},
                                    seed=seed, draw=draw, pool_size=50)
        per_seed["released"].append(behaviour(released_outputs(rel, pair), pair))
        per_seed["official"].append(behaviour(agit_outputs(models["official"], pair), pair))
        rel.sess.close()
        print(f"     training at seed {seed}: {time.time() - t0:.0f} s", flush=True)
    section = f"training {iterations} iterations {size} px, {len(seeds)} seeds"
    for name in per_seed["released"][0]:
        theirs, ours = ([r[name] for r in per_seed[k]] for k in ("released", "official"))
        v = verdict(ours, theirs, "lower", expect="equal")  # the claims' rule: equal within twice the larger std
        table.add(section, name, theirs, ours, "output", tolerance=None,
                  note=f"released {v['other']:.3f} ± {v['other std']:.3f}, official {v['ours']:.3f} ± "
                       f"{v['ours std']:.3f} (mean ± std over seeds): the means differ by "
                       f"{'less' if v['verdict'] == REPRODUCED else 'MORE'} than twice the larger std")


def synthetic_pair(tmp: Path, size: int) -> dict[str, np.ndarray]:
    """agit's synthetic default: train/test images (NHWC in [-1, 1]) and the test masks (bool)."""
    from agit.data import list_images, read_mask, read_rgb
    from agit.synthetic import make_synthetic

    with contextlib.redirect_stderr(io.StringIO()):  # its progress lines
        root = make_synthetic(tmp, "pair", size=size, n_train=TRAINING["n_train"], n_test=TRAINING["n_test"])

    def stack(folder, read):
        return np.stack([read(f).permute(1, 2, 0).numpy() for f in list_images(root / folder)])

    pair = {f: stack(f, read_rgb).astype(np.float32) / 127.5 - 1 for f in ("trainA", "trainB", "testA", "testB")}
    return pair | {f"{f}_mask": stack(f"{f}_mask", read_mask)[..., 0].astype(bool) for f in ("testA", "testB")}


def released_outputs(rel: Released, pair) -> dict[str, list[np.ndarray]]:
    """{direction: [A(x), x', x'']} of the released graph on the test images."""
    g = rel.gan
    fetch = {"s2t": [g.masks[0], g.fake_images_b, g.cycle_images_a], "t2s": [g.masks[1], g.fake_images_a, g.cycle_images_b]}
    runs = [rel.sess.run(fetch, rel.feed(pair["testA"][i:i + 1], pair["testB"][i:i + 1], 1))
            for i in range(len(pair["testA"]))]
    return {d: [np.concatenate([r[d][k] for r in runs]) for k in range(3)] for d in fetch}


def agit_outputs(model: AGGAN, pair) -> dict[str, list[np.ndarray]]:
    with torch.no_grad():
        cycles = {d: model.cycle(nchw(pair[f"test{x}"]), d) for d, x in (("s2t", "A"), ("t2s", "B"))}
    return {d: [nhwc(c.forward.attention), nhwc(c.forward.image), nhwc(c.back)] for d, c in cycles.items()}


def behaviour(outputs, pair) -> dict[str, float]:
    """Per direction: the attention and the change |x' - x| on the objects and on the background, the cycle error."""
    out = {}
    for direction, x in (("s2t", "A"), ("t2s", "B")):
        attention, image, back = outputs[direction]
        source, on_object = pair[f"test{x}"], pair[f"test{x}_mask"]
        attention, change = attention[..., 0], np.abs(image - source).mean(-1)
        out |= {f"{direction} attention on objects": attention[on_object].mean(),
                f"{direction} attention on background": attention[~on_object].mean(),
                f"{direction} change on objects": change[on_object].mean(),
                f"{direction} change on background": change[~on_object].mean(),
                f"{direction} cycle error": np.abs(back - source).mean()}
    return {k: float(v) for k, v in out.items()}


def compare_data(table, tf1, tmp: Path):
    """decode + resize to 286 + crop 256 at fixed offsets + scale, as data_loader.load_data, on photos."""
    from PIL import Image
    from skimage import data as skdata

    from agit.data import read_rgb

    photo = Image.fromarray(skdata.astronaut())
    for w, h in ((500, 375), (1024, 683)):
        path = tmp / f"photo_{w}x{h}.png"  # PNG: the decoders agree exactly; the resize is what is compared
        photo.resize((w, h), Image.LANCZOS).save(path)
        graph = tf1.Graph()
        with graph.as_default():
            decoded = tf1.image.decode_png(tf1.read_file(str(path)), channels=3, dtype=tf1.uint8)
            resized = tf1.image.resize_images(decoded, [286, 286])  # data_loader.load_data's call
            crops = {o: tf1.subtract(tf1.div(tf1.slice(resized, [o[0], o[1], 0], [256, 256, 3]), 127.5), 1)
                     for o in ((0, 0), (15, 30), (30, 30))}
            with tf1.Session(graph=graph) as sess:
                out = sess.run(crops)
        jpeg = path.with_suffix(".jpg")  # the datasets' format: TF's and PIL's JPEG decoders, side by side
        photo.resize((w, h), Image.LANCZOS).save(jpeg, quality=90)
        with tf1.Graph().as_default(), tf1.Session() as sess:
            decoded_jpeg = sess.run(tf1.image.decode_jpeg(tf1.read_file(str(jpeg)), channels=3))
        table.add(f"data path {w}x{h}", "JPEG decode (TF vs PIL), 0-255 levels", decoded_jpeg.astype(np.float64),
                  read_rgb(jpeg).permute(1, 2, 0).numpy(), "pixel", tolerance=None, note="measured only")
        ours_286 = resize_square(read_rgb(path), 286, "tf1_bilinear")
        torchvision_286 = resize_square(read_rgb(path), 286, "bilinear")
        for (top, left), ref in out.items():
            crop = lambda x: (x[:, top:top + 256, left:left + 256] / 127.5 - 1).permute(1, 2, 0).numpy()
            table.add(f"data path {w}x{h}", f"crop at ({top}, {left}), tf1_bilinear", ref, crop(ours_286), "pixel",
                      tolerance=TOLERANCES["pixel"] / 127.5)
            table.add(f"data path {w}x{h}", f"crop at ({top}, {left}), torchvision bilinear", ref,
                      crop(torchvision_286), "pixel", tolerance=None, note="paper/quick's resize, for scale")


def compare_checkpoint(table, mods, overrides, tmp: Path, size: int):
    """A checkpoint saved by the released graph -> agit import-tf -> agit.load -> translate."""
    import agit
    from agit.import_tf import import_checkpoint

    rng = np.random.default_rng(3)
    rel = Released(mods, size, seed=3)
    s, t = images(rng, 1, size), images(rng, 1, size)
    attention_near_tau(rel, s, t)
    rel.iteration(s, t, 1)  # the saved weights are trained ones, Adam slots and all
    prefix = rel.saver.save(rel.sess, str(tmp / "released" / "AGGAN"), global_step=1)
    run = tmp / "imported"
    import_checkpoint(prefix, run, size=size, **overrides)
    model = agit.load(run).model
    g = rel.gan
    ref = rel.sess.run({"s'": g.fake_images_b, "t'": g.fake_images_a, "A_S(s)": g.masks[0]}, rel.feed(s, t, 1))
    with torch.no_grad():
        fs, ft = model.translate(nchw(s), "s2t"), model.translate(nchw(t), "t2s")
    for name, ours in (("s'", fs.image), ("t'", ft.image), ("A_S(s)", fs.attention)):
        table.add(f"import-tf {size} px", f"{name} of the converted run", ref[name][..., :1] if name.startswith("A") else ref[name],
                  nhwc(ours), "output")
    import_checkpoint(prefix, tmp / "swapped", swap=True, size=size, **overrides)
    with torch.no_grad():
        swapped = agit.load(tmp / "swapped").model.translate(nchw(t), "s2t").image
    table.add(f"import-tf {size} px", "t' of the run converted with --swap-domains (its s2t)", ref["t'"], nhwc(swapped),
              "output")


def write_fixture(mods, path: Path, size=32):
    """tests/fixtures/released_tiny.npz: a checkpoint of the released graph at ngf = ndf = 2 (every
    variable as the checkpoint keys it, read back from the saved files) with its inputs and
    outputs, for the CI test of the name mapping without TensorFlow."""
    rng = np.random.default_rng(5)
    rel = Released(mods, size, ngf=2, ndf=2, seed=5)
    s, t = images(rng, 1, size), images(rng, 1, size)
    g = rel.gan
    with tempfile.TemporaryDirectory() as tmp:
        prefix = rel.saver.save(rel.sess, os.path.join(tmp, "AGGAN"), global_step=0)
        reader = rel.tf1.train.load_checkpoint(prefix)
        arrays = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    out = rel.sess.run({"s_prime": g.fake_images_b, "t_prime": g.fake_images_a, "a_s": g.masks[0]}, rel.feed(s, t, 1))
    np.savez_compressed(path, **{f"ckpt:{k}": v for k, v in arrays.items()}, **{f"io:{k}": v for k, v in out.items()},
                        **{"io:s": s, "io:t": t})
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB, {len(arrays)} checkpoint variables)")


def skip_generator_builds(mods) -> str:
    """Whether main.py's --skip=True generator builds at all (it adds the padded input to the output)."""
    tf1, model = mods[0], mods[1]
    model.IMG_HEIGHT = model.IMG_WIDTH = 32
    with tf1.Graph().as_default():
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                model.build_generator_resnet_9blocks(tf1.zeros([1, 32, 32, 3]), "g", skip=True)
        except ValueError as err:
            return f"does not build: {str(err).splitlines()[0][:160]}"
    return "builds"


def write_report(table, out: Path, meta: dict):
    out.mkdir(parents=True, exist_ok=True)
    (out / "crosscheck.json").write_text(json.dumps({**meta, "rows": table.rows}, indent=1))
    lines = ["# Released code vs agit `official`: measured",
             "",
             f"{meta['command']}  ",
             f"TensorFlow {meta['tensorflow']} (compat.v1), PyTorch {meta['torch']}, Python {meta['python']}; "
             f"released clone at commit {meta['released_commit']}; overrides: {meta['overrides'] or 'none'}; "
             f"{meta['seconds']:.0f} s. Tolerances (max |Δ|): " + ", ".join(f"{k} {v:g}" for k, v in TOLERANCES.items())
             + " (pixel: on the 0-255 scale). `--` : measured, no tolerance.",
             "", f"The released `--skip=True` generator: {meta['skip_generator']}.", "",
             "| section | what | max abs diff | mean abs diff | tolerance | ok | note |", "|---|---|---|---|---|---|---|"]
    for r in table.rows:
        tol = "--" if r["tolerance"] is None else f"{r['tolerance']:.1e}"
        lines.append(f"| {r['section']} | {r['what']} | {r['max_abs_diff']:.2e} | {r['mean_abs_diff']:.2e} | {tol} | "
                     f"{'yes' if r['ok'] else '**NO**'} | {r['note']} |")
    (out / "crosscheck.md").write_text("\n".join(lines + iteration_summary(table.rows)) + "\n")


def iteration_summary(rows) -> list[str]:
    """The 1/10/100-iteration rows as one table: s' mean |diff| per comparison, mean +- std over the draws."""
    cells = {}
    for r in rows:
        if ", draw " in r["section"] and r["what"].startswith("s' after them, "):
            length = r["section"].split(" ", 1)[0]
            cells.setdefault(r["what"].removeprefix("s' after them, "), {}).setdefault(length, []).append(r["mean_abs_diff"])
    if not cells:
        return []
    lengths = list(next(iter(cells.values())))
    lines = ["", "## s' after n iterations: mean |diff|, mean ± std over the draws", "",
             "| compared | " + " | ".join(f"after {n}" for n in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for what, by_length in cells.items():
        lines.append(f"| {what} | " + " | ".join(
            f"{np.mean(v):.2g} ± {np.std(v, ddof=1):.1g} ({len(v)})" if len(v) > 1 else f"{v[0]:.2g} (1)"
            for v in (by_length.get(n, [np.nan]) for n in lengths)) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("released", type=Path, help="a local clone of the authors' repository")
    ap.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="override official's fields")
    ap.add_argument("--out", type=Path, default=Path("results/crosscheck"))
    ap.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS, help="what to compare (default: all)")
    ap.add_argument("--write-fixture", type=Path, help="write the CI fixture (see write_fixture) and stop")
    args = ap.parse_args(argv)
    if not (args.released / "model.py").is_file() or not (args.released / "main.py").is_file():
        print(f"crosscheck: error: {args.released} is not a clone of the released code (no model.py / main.py)",
              file=sys.stderr)
        return 2
    try:
        import tensorflow as tf
    except ImportError:
        print("crosscheck: error: needs TensorFlow: pip install -e '.[crosscheck]'", file=sys.stderr)
        return 2
    overrides = dict(parse_override(kv) for kv in args.set)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    mods = released_modules(args.released)
    if args.write_fixture:
        write_fixture(mods, args.write_fixture)
        return 0
    start = time.time()
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES if "outputs" in args.sections else ():
            rng = np.random.default_rng(size)
            rel = Released(mods, size, seed=size)
            s, t = images(rng, 1, size), images(rng, 1, size)
            attention_near_tau(rel, s, t)
            model = agit_beside(rel, overrides, size).eval()
            pool = [(images(rng, 1, size), np.repeat(rng.uniform(0, 0.3, (1, size, size, 1)), 3, -1).astype(np.float32))
                    for _ in range(2)]
            compare_outputs(table, rel, model, size, s, t, pool)
            compare_losses(table, rel, model, size, s, t)
            rel.sess.close()
        if "iterations" in args.sections:
            compare_iterations(table, mods, overrides, 256)
        if "training" in args.sections:
            compare_training(table, mods, overrides, Path(tmp))
        if "data" in args.sections:
            compare_data(table, mods[0], Path(tmp))
        if "checkpoint" in args.sections:
            compare_checkpoint(table, mods, overrides, Path(tmp), 256)
    commit = os.popen(f"git -C '{args.released}' rev-parse --short HEAD 2>/dev/null").read().strip() or "unknown"
    meta = {"tensorflow": tf.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "released_commit": commit, "overrides": overrides, "seconds": time.time() - start,
            "command": "python tools/crosscheck_released.py RELEASED" + "".join(f" --set {kv}" for kv in args.set)
            + ("" if set(args.sections) == set(SECTIONS) else " --sections " + " ".join(args.sections)),
            "tolerances": TOLERANCES,
            "skip_generator": skip_generator_builds(mods)}
    write_report(table, args.out, meta)
    broken = [r for r in table.rows if not r["ok"]]
    print(f"{len(table.rows)} comparisons, {len(broken)} outside tolerance; table: {args.out / 'crosscheck.md'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
