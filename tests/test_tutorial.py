"""The pieces the step-through tutorial (notebooks/00_tutorial) is built from."""

import dataclasses

import pytest
import torch

from agit import figures
from agit.model import AGGAN, DIRECTIONS, PAPER_TERMS, compose
from agit.run import Run
from agit.train import Trainer


def test_eq1_attention_zero_is_the_identity_one_is_cyclegan(ci_cfg, tiny_data):
    torch.manual_seed(0)
    model = AGGAN(ci_cfg)
    s = figures.examples(tiny_data, "A", n=2, size=ci_cfg.size)["image"]
    with torch.no_grad():
        raw, a = model.generator("s2t")(s), model.attention(s, "s2t")
        assert torch.equal(compose(s, raw, torch.zeros_like(a)), s)
        assert torch.equal(compose(s, raw, torch.ones_like(a)), raw)
        assert torch.equal(compose(s, raw, a), model.translate(s, "s2t").image)


def test_iteration_losses_are_the_training_terms_with_paper_names(ci_cfg, tiny_data):
    torch.manual_seed(0)
    model = AGGAN(ci_cfg)
    s = figures.examples(tiny_data, "A", n=2, size=ci_cfg.size)["image"]
    t = figures.examples(tiny_data, "B", n=2, size=ci_cfg.size)["image"]
    for stage in (ci_cfg.stage(0), ci_cfg.stage(ci_cfg.switch_epoch)):
        with torch.no_grad():
            terms = model.iteration_losses(s, t, stage)
            total, gen_terms, _ = model.generator_loss(s, t, DIRECTIONS, stage)
        assert set(terms) <= set(PAPER_TERMS) and {"d_s2t", "d_t2s", "total"} <= set(terms)
        assert torch.equal(terms["total"], total)
        assert all(torch.equal(terms[k], v) for k, v in gen_terms.items())
    trainer = Trainer(ci_cfg, "unused")
    s_batch, t_batch = next(iter(trainer.epoch_batches()))
    assert set(trainer.train_step(s_batch, t_batch)) == set(terms) - {"total"}  # the log's keys


def test_examples_pick_images_with_and_without_the_object(tiny_data):
    with_object = figures.examples(tiny_data, "A", n=2, size=32)
    assert with_object["image"].shape == (2, 3, 32, 32) and with_object["mask"].shape == (2, 1, 32, 32)
    assert (with_object["mask"].flatten(1).amax(1) > 0).all()
    free = figures.examples(tiny_data, "A", n=1, size=32, with_object=False)
    assert len(free["paths"]) == len(free["image"]) == len(free["mask"])
    assert (free["mask"] == 0).all()


def test_the_tutorials_hand_written_loop_is_fit(ci_cfg, tmp_path):
    """epoch_batches + train_step + end_epoch, as the tutorial writes them, train exactly as fit() does."""
    Trainer(ci_cfg, tmp_path / "fit").fit(progress=False)
    trainer = Trainer(ci_cfg, tmp_path / "loop")
    history = []
    while trainer.epoch < ci_cfg.epochs:
        for s, t in trainer.epoch_batches():
            losses = trainer.train_step(s.to(trainer.device), t.to(trainer.device))
            trainer.step += 1
            history.append({"it": len(history) + 1, "stage": trainer.stage.number, **losses})
        trainer.end_epoch()  # and set_epoch: the next epoch, in its stage
    assert len(history) == ci_cfg.epochs * ci_cfg.iters_per_epoch and history[-1]["stage"] == 2
    a, b = Run(tmp_path / "fit").load_checkpoint(), Run(tmp_path / "loop").load_checkpoint()
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    probe = {d: batch["image"][:1] for d, batch in trainer.probe.batches.items()}
    fig = figures.training_panel(history, trainer.model, probe)
    assert "stage 2" in fig._suptitle.get_text()


def test_tutorial_config_is_the_profiles_preset_with_its_changes(tmp_path):
    from agit import profiles

    threads = torch.get_num_threads()
    ctx = profiles.context("quick", tmp_path / "out", tmp_path / "data")
    torch.set_num_threads(threads)
    cfg = ctx.tutorial_config()
    for key, value in profiles.PROFILES["quick"]["tutorial"].items():
        assert getattr(cfg, key) == value
    assert cfg.data == str(ctx.dataset_path()) and cfg.preset == "quick"
    assert ctx.tutorial_config(variant="cyclegan") == dataclasses.replace(cfg, variant="cyclegan")
    with pytest.raises(KeyError, match="unknown config key"):
        ctx.tutorial_config(nope=1)


def test_the_kernel_trains_on_the_profiles_kernel_threads_jobs_on_threads(tmp_path):
    """context() sets the per-job `threads` (1 on quick); the tutorial, training alone in its kernel,
    takes `kernel_threads` instead; a profile without it leaves torch's setting alone."""
    from agit import profiles

    threads = torch.get_num_threads()
    try:
        ctx = profiles.context("quick", tmp_path / "out", tmp_path / "data")
        assert torch.get_num_threads() == profiles.PROFILES["quick"]["threads"]
        assert ctx.train_in_kernel() == torch.get_num_threads() == profiles.PROFILES["quick"]["kernel_threads"]
        ci = profiles.context("ci", tmp_path / "out_ci", tmp_path / "data")
        torch.set_num_threads(3)
        assert "kernel_threads" not in ci.profile and ci.train_in_kernel() == 3
    finally:
        torch.set_num_threads(threads)
