"""Write notebooks/*.ipynb (outputs stripped) from the cell sources below.

    python tools/make_notebooks.py        # rewrite every notebook

The notebooks are thin: each calls `agit` (reproduce.context, ensure_runs, figures,
tables) and records its key numbers with ctx.record. Edit here, regenerate, commit
the .ipynb files. The first code cell of each is tagged `parameters` for papermill.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent

PARAMETERS = '''\
# Parameters (papermill and `agit reproduce` inject their own values after this cell).
import os

profile = os.environ.get("AGIT_PROFILE", "quick")  # ci | quick | full | paper (agit/profiles.py: PROFILES)
out = os.environ.get("AGIT_RESULTS", "")  # "": results/<profile>-local (agit reproduce: results/<profile>)
data_root = os.environ.get("AGIT_DATA", "")  # "": data/
jobs = 0  # training processes for independent runs; 0: the profile's
device = ""  # "": CUDA if available, else CPU
executor = ""  # "": local processes; "submitit:" and its settings: e.g. SLURM jobs (README: scale-out)
runs = os.environ.get("AGIT_RUNS", "")  # "": <out>/runs; a folder of runs to reuse (trained where missing)
smoke = 0  # a preflight (agit reproduce --smoke): every run cut to a few iterations at this size in px; 0: off'''

SETUP = '''\
%matplotlib inline
import json

from IPython.display import Image, Markdown, display

from agit import figures, reproduce, tables
from agit.run import Run

ctx = reproduce.context(profile, out or None, data_root or None, device=device or None, jobs=jobs or None,
                        executor=executor or None, runs=runs or None, smoke=smoke)
print(f"profile {ctx.name!r}: preset {ctx.profile['preset']!r}, data {ctx.dataset_path()}, results {ctx.out}")'''


def notebook(title: str, cells: list, extra_parameters: str = "") -> nbformat.NotebookNode:
    params = new_code_cell(PARAMETERS + ("\n" + extra_parameters if extra_parameters else ""))
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(title), params, new_code_cell(SETUP)])
    for kind, source in cells:
        nb.cells.append(new_markdown_cell(source) if kind == "md" else new_code_cell(source))
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same files
        cell.id = f"cell-{i:02d}"
    # as JupyterLab writes it, so a notebook saved there is byte-identical once stripped (make lab)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


md = lambda s: ("md", s)  # noqa: E731
code = lambda s: ("code", s)  # noqa: E731

NOTEBOOKS = {
    "00_tutorial": notebook(
        "# 00 · Tutorial: attention-guided translation, step by step\n\n"
        "*Unsupervised Attention-guided Image-to-Image Translation* (Mejjati et al., NeurIPS 2018) gives each "
        "CycleGAN generator an **attention network** that decides *where* to translate, so that the background "
        "survives. This notebook takes the method apart with `agit`'s own functions, cell by cell, on the "
        "synthetic horse-on-meadow ↔ zebra-on-savanna pair (with true masks): the three networks, the "
        "attention at initialisation, Eq. 1, the losses of one iteration, a training loop you can watch, the "
        "stage switch (Eq. 6), and the result beside CycleGAN. About 3 minutes of CPU time (`quick` profile; longer on a busy machine).\n\n"
        "Notation: S is the source domain (horses), T the target (zebras). Direction `s2t` translates S → T "
        "with the generator F_ST and the attention net A_S and is judged by the discriminator D_T; `t2s` "
        "uses F_TS, A_T and D_S.",
        [
            md("## 1 · Data\nThe profile's synthetic pair (made in seconds if missing): two horses, two zebras and "
               "an image of the horse domain without a horse, each with its true mask — the attention we hope A "
               "learns."),
            code('import dataclasses\nimport shutil\nimport time\n\nimport pandas as pd\nimport torch\n\n'
                 'from agit.evaluate import evaluate_run\nfrom agit.model import AGGAN, PAPER_TERMS, compose\n'
                 'from agit.nets import conv_weight_count\nfrom agit.train import Trainer\n\n'
                 'ctx.prepare_data(check_kid=False)\ndata = ctx.dataset_path()\ncfg = ctx.tutorial_config()\n'
                 'horses = figures.examples(data, "A", n=2, size=cfg.size)\n'
                 'zebras = figures.examples(data, "B", n=2, size=cfg.size)\n'
                 'meadow = figures.examples(data, "A", n=1, size=cfg.size, with_object=False)\n'
                 'print(f"{data.name}, {cfg.size} px; preset {cfg.preset!r}: {cfg.epochs} epochs of "\n'
                 '      f"{cfg.iters_per_epoch} iterations, batch {cfg.batch_size}, stage switch after epoch {cfg.switch_epoch}")\n'
                 'examples = [horses, zebras, meadow]\n'
                 'figures.image_grid([[x for e in examples for x in e["image"]], [m for e in examples for m in e["mask"]]],\n'
                 '                   ["horse (S)"] * len(horses["image"]) + ["zebra (T)"] * len(zebras["image"])\n'
                 '                   + ["no horse (S)"] * len(meadow["image"]), ["image", "true mask"])'),
            md("## 2 · The three networks\n`Trainer` builds the model (seeded: a rerun gives the same numbers) and "
               "one Adam optimiser per group: F_ST with A_S, F_TS with A_T, D_T, D_S. Per direction there are a "
               "**generator** F (the translator: a ResNet, Appendix A), an **attention net** A (a small "
               "encoder-decoder ending in a sigmoid: one value in [0, 1] per pixel) and the target domain's "
               "**discriminator** D (a PatchGAN: one realness score per image patch)."),
            code('run = ctx.out / "tutorial" / "ours"\nshutil.rmtree(run, ignore_errors=True)  # a fresh run each time\n'
                 'trainer = Trainer(cfg, run, device=device or None)\nmodel = trainer.model\n'
                 's, t = horses["image"].to(trainer.device), zebras["image"].to(trainer.device)\n'
                 'nets = {"F_ST (generator)": (model.gen_s2t, s), "A_S (attention)": (model.att_s, s),\n'
                 '        "D_T (discriminator)": (model.dis_t, t)}\nrows = {}\nwith torch.no_grad():\n'
                 '    for name, (net, x) in nets.items():\n        y = net(x)\n'
                 '        rows[name] = {"conv weights": conv_weight_count(net), "parameters": sum(p.numel() for p in net.parameters()),\n'
                 '                      "input": "×".join(map(str, x.shape[1:])), "output": "×".join(map(str, y.shape[1:])),\n'
                 '                      "output range": f"{y.min():.2f} … {y.max():.2f}"}\npd.DataFrame(rows).T'),
            md("The `official` preset (the authors' released code) has 2,847,936 / 103,040 / 2,763,776 conv weights; "
               "the tutorial's preset is narrower, to train in minutes on a CPU. F_TS, A_T and D_S are twins of these "
               "for T → S."),
            md("## 3 · The attention at initialisation\nThe bias of A's last layer starts at `att_init_bias`, so at first "
               "A(s) ≈ sigmoid(bias) everywhere: nearly uniform, with no idea where the horse is."),
            code('with torch.no_grad():\n    a0 = model.attention(s, "s2t")\n'
                 'print(f"A_S(s) at initialisation: mean {a0.mean():.3f}, from {a0.min():.3f} to {a0.max():.3f}; "\n'
                 '      f"sigmoid(att_init_bias = {cfg.att_init_bias}) = {torch.sigmoid(torch.tensor(cfg.att_init_bias)):.3f}")\n'
                 'figures.image_grid([list(s), list(a0)], ["horse"] * len(s), ["s", "A_S(s)"])'),
            md("## 4 · Eq. 1: where to translate\n`s′ = s_a ⊙ F_ST(s) + (1 − s_a) ⊙ s` (`agit.model.compose`). With a "
               "hand-made attention map: 0 everywhere gives the input back (the identity), 1 everywhere gives the "
               "generator's output — exactly CycleGAN —, the true mask changes the horse and keeps the meadow. "
               "The untrained generator's output is close to grey; what matters here is *where* it lands."),
            code('with torch.no_grad():\n    raw = model.generator("s2t")(s)  # F_ST(s)\n'
                 '    maps = {"A = 0": torch.zeros_like(a0), "A = 1 (CycleGAN)": torch.ones_like(a0),\n'
                 '            "A = true mask": horses["mask"].to(trainer.device), "A = A_S(s), initial": a0}\n'
                 '    outs = {name: compose(s, raw, a) for name, a in maps.items()}\n'
                 'print("A = 0 gives s back exactly:", torch.equal(outs["A = 0"], s),\n'
                 '      "| A = 1 gives F_ST(s) exactly:", torch.equal(outs["A = 1 (CycleGAN)"], raw),\n'
                 '      "| A_S(s) gives model.translate(s):", torch.equal(outs["A = A_S(s), initial"], model.translate(s, "s2t").image))\n'
                 'figures.image_grid([[s[0], raw[0], *(a[0] for a in maps.values())], [None, None, *(o[0] for o in outs.values())]],\n'
                 '                   ["s", "F_ST(s)", *maps], ["input | attention", "s′ (Eq. 1)"])'),
            md("## 5 · The losses of one iteration\nOne training iteration computes these terms on a pair (s, t). "
               "`AGGAN.iteration_losses` returns them at the current weights, keyed as the training log keys them; "
               "`PAPER_TERMS` says which term of the paper each is. The generators and attention nets minimise "
               "`total` (Eq. 4), each discriminator its own term."),
            code('with torch.no_grad():\n    terms = model.iteration_losses(s, t, cfg.stage(0))  # stage 1\n'
                 'pd.DataFrame({"paper": {k: PAPER_TERMS.get(k, k) for k in terms}, "value": {k: float(v) for k, v in terms.items()}})'),
            md("## 6 · Training, step by step\nThe loop `Trainer.fit` runs, written out. Per epoch: one `train_step` "
               "per batch of (s, t) pairs — an Adam step for the generators and attention nets on Eq. 4, then one "
               "for each discriminator on real images and fakes from a history pool (`agit.step.PHASES`) —, and "
               "`end_epoch` (learning-rate schedule, attention statistics, sample grid, checkpoint), which moves the "
               "trainer to the next epoch with `set_epoch`: at the switch that enters stage 2 (`cfg.stage(epoch)`: "
               "A_S and A_T frozen, D shown [A > τ] only). The plot redraws as it trains: the losses so far, and the attention of "
               "one horse and one zebra. The `quick` preset holds A at its initial value for the first "
               "`att_warmup_epochs` (`cfg.stage(epoch).attention_frozen`), so that F learns to translate before A "
               "may shut it; watch the attention then gather on the animal before the dashed line (the stage switch), "
               "and stay put after it."),
            code('ctx.train_in_kernel()  # torch threads for training here, with no job beside the kernel\n'
                 'probe = {"s2t": s[:1], "t2s": t[:1]}  # one image per direction, redrawn as it trains\n'
                 'total = (cfg.epochs - trainer.epoch) * trainer.iterations_per_epoch\nredraw = max(1, total // 25)\n'
                 'history, live, start = [], display(Markdown("training …"), display_id=True), time.time()\n'
                 'while trainer.epoch < cfg.epochs:\n'
                 '    for s_batch, t_batch in trainer.epoch_batches():  # this epoch\'s (s, t) pairs\n'
                 '        losses = trainer.train_step(s_batch.to(trainer.device), t_batch.to(trainer.device))\n'
                 '        trainer.step += 1  # as fit() counts them: a checkpoint says where in the epoch it stopped\n'
                 '        history.append({"it": len(history) + 1, "stage": trainer.stage.number, **losses})\n'
                 '        if len(history) % redraw == 0 or len(history) == total:\n'
                 '            live.update(figures.training_panel(history, model, probe))\n'
                 '    trainer.end_epoch()  # lr schedule, attention log, samples, checkpoint; the next epoch and its stage\n'
                 'train_seconds = time.time() - start\n'
                 'print(f"{len(history)} iterations of batch {cfg.batch_size} in {train_seconds:.0f} s")'),
            md("## 7 · The stage switch\nAfter epoch `switch_epoch` the attention nets are frozen and the "
               "discriminators see only attended pixels (Eq. 6): D_T is shown the fake where A_S(s) > τ and the real "
               "t where A_T(t) > τ, so the background no longer counts and F has no reason to change it. "
               "`fake_for_d` gives the fake image and its attention, `d_input` applies the threshold, `judge_score` "
               "is D's patch scores (their mean here; 1 means *real*)."),
            code('print("A_S still trainable:", any(p.requires_grad for p in model.att_s.parameters()),\n'
                 '      "| F_ST trainable:", all(p.requires_grad for p in model.gen_s2t.parameters()))\n'
                 'rows, scores = [], {}\nwith torch.no_grad():\n    fwd = model.translate(s, "s2t")\n'
                 '    real_att = model.attention(t, "t2s")  # A_T(t)\n'
                 '    for stage in (cfg.stage(0), cfg.stage(cfg.switch_epoch)):  # what the switch changes: a Stage\n'
                 '        fake, fake_att = model.fake_for_d(fwd, stage)\n'
                 '        rows.append([s[0], fwd.attention[0], model.d_input(fake, fake_att, stage)[0],\n'
                 '                     t[0], real_att[0], model.d_input(t, real_att, stage)[0]])\n'
                 '        scores[f"stage {stage.number}"] = {\n'
                 '            "D_T on the fake": float(model.judge_score("s2t", fake, fake_att, stage).mean()),\n'
                 '            "D_T on the real t": float(model.judge_score("s2t", t, real_att, stage).mean())}\n'
                 'display(figures.image_grid(rows, ["s", "A_S(s)", "D_T is shown: fake", "t", "A_T(t)", "D_T is shown: real"],\n'
                 '                           ["stage 1", f"stage 2, τ = {cfg.tau}"]))\npd.DataFrame(scores)'),
            md("## 8 · Eq. 1 with the learned attention\nThe same horses, and the image without a horse: where A_S "
               "is near 0 the output is the input."),
            code('x = torch.cat([s, meadow["image"].to(trainer.device)])\nwith torch.no_grad():\n'
                 '    fwd = model.translate(x, "s2t")\n'
                 'figures.image_grid([list(x), list(fwd.attention), list(fwd.raw), list(fwd.image)],\n'
                 '                   [p.name for p in horses["paths"] + meadow["paths"]], ["s", "A_S(s)", "F_ST(s)", "s′ (Eq. 1)"])'),
            md("## 9 · The cycle: A_T(s′), or the cycleAtt ablation\nOn the way back, "
               "`s″ = A_T(s′) ⊙ F_TS(s′) + (1 − A_T(s′)) ⊙ s′` (Eq. 3): the attention of the *translated* image, "
               "computed by A_T. The ablation Ours–cycleAtt reuses s_a = A_S(s) instead: below, the same weights "
               "loaded into a model built with `variant='cycleatt'`."),
            code('ablation = AGGAN(dataclasses.replace(cfg, variant="cycleatt")).to(trainer.device)\n'
                 'ablation.load_state_dict(model.state_dict())\nwith torch.no_grad():\n'
                 '    ours, reuse = model.cycle(s, "s2t"), ablation.cycle(s, "s2t")\n'
                 '    back = model.attention(ours.forward.image, "t2s")  # A_T(s′)\n'
                 '    print(f"λ_cyc · L_cyc^s (Eq. 3): with A_T(s′) {model.cycle_loss(s, ours):.4f}, "\n'
                 '          f"cycleAtt {ablation.cycle_loss(s, reuse):.4f}")\n'
                 'figures.image_grid([[s[0], ours.forward.image[0], back[0], ours.back[0]],\n'
                 '                    [s[0], reuse.forward.image[0], reuse.forward.attention[0], reuse.back[0]]],\n'
                 '                   ["s", "s′", "attention on the way back", "s″"], ["Ours: A_T(s′)", "cycleAtt: A_S(s)"])'),
            md("## 10 · Beside CycleGAN\nCycleGAN is the same model with the attention fixed to 1 "
               "(`variant='cyclegan'`). `fit()` trains it with the loop above — same data, schedule and seed — in "
               "one call. Both then translate test images they never saw."),
            code('cyclegan = ctx.out / "tutorial" / "cyclegan"\nshutil.rmtree(cyclegan, ignore_errors=True)\nstart = time.time()\n'
                 'Trainer(ctx.tutorial_config(variant="cyclegan"), cyclegan, device=device or None).fit(progress=False)\n'
                 'print(f"CycleGAN: {len(figures.read_log(cyclegan)[0])} iterations in {time.time() - start:.0f} s")\n'
                 'figures.translation_grid({"Ours": run, "CycleGAN": cyclegan}, data, n=2)'),
            md("On the whole test set, with the true masks (no KID here: see `04_kid_tables`): attention IoU at τ, "
               "background PSNR (higher: background kept), change inside the animal, attention on horse-free images "
               "(ideal 0)."),
            code('metrics = {name: evaluate_run(folder, kid="none") for name, folder in (("Ours", run), ("CycleGAN", cyclegan))}\n'
                 'pd.DataFrame(metrics).apply(pd.to_numeric, errors="coerce").dropna(how="all").round(3)'),
            code('ctx.record("00_tutorial", {"config": cfg.to_dict(), "iterations": len(history), "train_seconds": train_seconds,\n'
                 '                            "final_losses": history[-1], "metrics": metrics});'),
            md("Next: `00_quickstart` trains the profile's full-length runs, `02_train` shows a run's logs, "
               "`06_explore` lets you pick any run, image and τ."),
        ],
    ),
    "00_quickstart": notebook(
        "# 00 · Quickstart: from nothing to a trained model\n\n"
        "*Unsupervised Attention-guided Image-to-Image Translation* (Mejjati et al., NeurIPS 2018) "
        "learns, next to each generator, an attention network that says *where* to translate: "
        "`s' = A_S(s) ⊙ F_ST(s) + (1 − A_S(s)) ⊙ s` (Eq. 1).\n\n"
        "This notebook makes the embedded synthetic data (horses on meadows ↔ zebras on savanna, "
        "with true masks), trains the profile's model (the `quick` preset: a few CPU minutes) and, "
        "side by side, CycleGAN (the same networks with the attention fixed to 1), and shows the "
        "attention maps and what the attention buys. The same from a shell:\n\n"
        "```bash\nagit data synth\nagit train --preset quick --out results/runs/quick\n"
        "agit translate --run results/runs/quick --input data/synthetic/testA --out translations\n```",
        [
            md("## 1 · Data\n`prepare_data` makes the synthetic set (seconds; reused when it exists)."),
            code('paths = ctx.prepare_data(check_kid=False)\ndata = ctx.dataset_path()\n'
                 'print({name: str(p) for name, p in paths.items()})\nfigures.dataset_samples(data, n=6)'),
            md("## 2 · Train\n`ensure_runs` trains the main run `ours` — in code, "
               "`Trainer(preset(...), run_dir).fit()` — and `cyclegan` (in parallel where the profile "
               "allows), or reuses them if they are finished (an unfinished one is resumed). Stage 1 "
               "trains everything on whole images; at the switch the attention nets freeze and the "
               "discriminators see only attended pixels."),
            code('ctx.ensure_runs(["ours", "cyclegan"])\nrun, cyclegan = ctx.run_dir("ours"), ctx.run_dir("cyclegan")\n'
                 'print(run, "—", ctx.schedule("ours"))'),
            md("## 3 · Attention maps\nTop: inputs; below: their attention. The last columns have no animal: "
               "there the attention should stay near zero (the paper's Fig. 3, right)."),
            code("figures.attention_maps(run, data, n=4, n_free=2)"),
            md("## 4 · Translations\nInput, attention and output in both directions, beside CycleGAN's output: "
               "without attention, the background is translated too."),
            code('figures.translation_grid({"Ours": run, "CycleGAN": cyclegan}, data, n=3)'),
            md("## 5 · How good is it?\nKID (×100, lower is better) and the ground-truth metrics the "
               "synthetic masks allow: attention IoU, background PSNR (higher: background kept), "
               "attention on animal-free images (ideal 0), share classified as the target domain."),
            code('from agit.evaluate import format_table\n\n'
                 'metrics, baseline = Run(run).metrics(), Run(cyclegan).metrics()\n'
                 'print("Ours\\n" + format_table(metrics) + "\\n\\nCycleGAN\\n" + format_table(baseline))\n'
                 'ctx.record("00_quickstart", {"run": run, "schedule": ctx.schedule("ours"), "metrics": metrics,\n'
                 '                             "cyclegan_metrics": baseline});'),
            md("## 6 · Your own images\n`agit.load` returns the trained model, in eval mode, on CUDA if available. "
               "Its `translate` takes a path, a PIL image or a tensor and returns the output and the attention "
               "as the same kind, at the input's own size: here a test image cut to a landscape strip, neither "
               "square nor the training size. From a shell: `agit translate --run RUN --input photos/ --out OUT`."),
            code('import tempfile\nfrom pathlib import Path\n\nimport PIL.Image\n\nimport agit\n\n'
                 'model = agit.load(run, device="cpu")\n'
                 'photo = PIL.Image.open(figures.pick_images(data, n=1)[0])\n'
                 'photo = photo.crop((0, photo.height // 6, photo.width, photo.height * 5 // 6 + 1))  # landscape\n'
                 'output, attention = model.translate(photo, direction="s2t")\n'
                 'print(f"input {photo.size}, output {output.size}, attention {attention.size}")\n'
                 'strip = Path(tempfile.mkdtemp()) / "strip.png"\nphoto.save(strip)\n'
                 'figures.native_size(run, strip)'),
        ],
    ),
    "01_data": notebook(
        "# 01 · Data\n\nMakes or fetches every dataset of the profile (the synthetic sets are generated; "
        "horse2zebra and apple2orange are downloaded from the CycleGAN host) and checks that the profile's "
        "KID feature extractor can run — so a profile that cannot finish says so here, before any training.",
        [
            code("paths = ctx.prepare_data()\nprint({name: str(path) for name, path in paths.items()})"),
            md("## Image counts"),
            code('import pandas as pd\n\ncounts = {}\nfor name, root in paths.items():\n'
                 '    meta = root / "meta.json"\n'
                 '    free = json.loads(meta.read_text())["animal_free"] if meta.is_file() else {}\n'
                 '    for folder in ("trainA", "trainB", "testA", "testB"):\n'
                 '        masks = root / f"{folder}_mask"\n'
                 '        counts[f"{name}/{folder}"] = {\n'
                 '            "images": len(list((root / folder).iterdir())),\n'
                 '            "masks": len(list(masks.iterdir())) if masks.is_dir() else 0,\n'
                 '            "object-free": len(free.get(folder, [])),\n'
                 '        }\ncounts = pd.DataFrame.from_dict(counts, orient="index")\ncounts'),
            md("## Samples of both domains (with their masks where the dataset has them)"),
            code('shown = {}\nfor name, root in paths.items():\n    fig = figures.dataset_samples(root, n=6)\n'
                 '    shown[name] = figures.save(fig, ctx.figures_dir / f"data_{name}.png")\n    display(fig)'),
            code('ctx.record("01_data", {"datasets": {k: str(v) for k, v in paths.items()},\n'
                 '                        "counts": counts.to_dict(orient="index"), "figures": shown});'),
        ],
    ),
    "02_train": notebook(
        "# 02 · Train one configuration\n\nTrains (or reuses) one run — by default the profile's main run, "
        "`ours` — and shows what its `log.jsonl` recorded: every loss per iteration and the attention "
        "statistics per epoch, with the stage switch marked. Change `variant`, `preset_name` or `dataset` "
        "to train something else; a combination the profile does not list becomes a run of its own.",
        [
            code('key = ctx.run_for(variant, preset_name or None, dataset or None)\nctx.ensure_runs([key])\n'
                 'run = ctx.run_dir(key)\nprint(key, "—", ctx.schedule(key), "—", run)'),
            md("## Losses\nAdversarial (`adv_*`), cycle (`cyc_*`, ×λ_cyc) and discriminator (`d_*`) losses; "
               "the dashed line is the stage switch (attention frozen, D sees only attended pixels)."),
            code('name = key.replace("/", "_")\nfig = figures.loss_curves(run)\n'
                 'figures.save(fig, ctx.figures_dir / f"losses_{name}.png")\nfig'),
            md("## Attention per epoch\nMean attention, share of pixels above τ and (with masks) IoU "
               "on a fixed set of test images."),
            code('fig = figures.attention_curves(run)\nfigures.save(fig, ctx.figures_dir / f"attention_{name}.png")\nfig'),
            md("## Last sample grid (input | attention | output, both directions)"),
            code('samples = Run(run).samples()\nif samples:\n    display(Image(filename=str(samples[-1])))'),
            code('from agit.evaluate import format_table\n\niters, epochs = figures.read_log(run)\n'
                 'tail = iters.tail(max(1, len(iters) // 10))\n'
                 'losses = {k: float(tail[k].mean()) for k in tail.columns if k not in figures.LOSS_KEYS_SKIP}\n'
                 'metrics = Run(run).metrics()\nprint(format_table(metrics))\n'
                 'ctx.record("02_train", {"run": key, "schedule": ctx.schedule(key), "iterations": len(iters),\n'
                 '                        "final_losses": losses,\n'
                 '                        "last_epoch": epochs.iloc[-1].to_dict() if len(epochs) else {},\n'
                 '                        "metrics": metrics});'),
        ],
        extra_parameters='variant = "ours"  # ours | cycle | cycleatt | as | at | d | da | cyclegan\n'
                         'preset_name = ""  # "": the profile\'s preset\n'
                         'dataset = ""  # "": the profile\'s main dataset',
    ),
    "03_ablations": notebook(
        "# 03 · Ablations, baselines and sweeps\n\nTrains every other run the tables and figures need on the "
        "main dataset: the Table 2 variants, CycleGAN and the baselines of Table 1, the switch-epoch sweep "
        "(Fig. 7), the threshold sweep (Fig. 8) and, where the profile has them, each row's other seeds and Ours and "
        "CycleGAN on other pairs. Runs already finished are reused; `Ours–D`, `Ours–D–A` "
        "and the sweeps start from the main run's checkpoint where they stop being identical to it.",
        [
            code('names = list(ctx.specs)  # every run of the profile\nctx.ensure_runs(names);'),
            md("## What was trained, and how long\nEvery run trains the same schedule (the same images, epochs "
               "and switch); `seed N` runs repeat Ours and CycleGAN with other training seeds; `forked` runs "
               "share the main run's first epochs."),
            code('import pandas as pd\n\nrows = {}\nfor key in names:\n    spec = ctx.specs[key]\n'
                 '    m = Run(ctx.run_dir(key)).metrics()\n'
                 '    rows[key] = {"label": spec.label, "method": spec.method, "variant": spec.variant,\n'
                 '                 "schedule": ctx.schedule(key),\n'
                 '                 **{f"{k}_{d}": m[f"{k}_{d}"] for k in ("cf_kid", "texture", "iou", "bg_psnr", "empty_att")\n'
                 '                    for d in ("s2t", "t2s")}}\nsummary = pd.DataFrame.from_dict(rows, orient="index")\n'
                 'summary'),
            md("## Attention during training, per variant\nMean attention on the probe images per epoch "
               "(dashed: each run's stage switch)."),
            code('for key in ctx.names("table2"):\n    display(figures.attention_curves(ctx.run_dir(key), '
                 'title=f"{ctx.specs[key].label}"))'),
            code('ctx.record("03_ablations", {"runs": summary.to_dict(orient="index")});'),
        ],
    ),
    "04_kid_tables": notebook(
        "# 04 · The claims, Tables 1 and 2, the sweeps\n\nThe paper's claims as verdicts computed from every seed "
        "(`agit.claims`), then per direction the columns that rank: Tables 1 and 2, the sweeps of Figs. 7 and 8 and "
        "the profile's other pairs. The full tables (every column, KID in the paper's protocol beside the published "
        "numbers, the feature extractor named in each header) are written to `tables/` as CSV (numbers) and Markdown.",
        [
            code('ctx.ensure_runs();'),
            md("## The paper's claims, as verdicts"),
            code('saved = tables.save_all(ctx)\ndisplay(Markdown(saved["claims"]["md"].read_text()))'),
            md("## Per direction: the columns that rank"),
            code('for name in [n for n in saved if n.endswith(("_s2t", "_t2s"))]:\n'
                 '    display(Markdown(saved[name]["md"].read_text()))'),
            code('import pandas as pd\n\nnumbers = saved.pop("numbers")\n'
                 'ctx.record("04_kid_tables", {\n    "extractor": ctx.profile["kid"]["extractor"],\n'
                 '    "table1": numbers["table1_kid"].to_dict(orient="index"),\n'
                 '    "table2": numbers["table2_ablations"].to_dict(orient="index"),\n'
                 '    "claims": pd.read_csv(saved["claims"]["csv"]).to_dict(orient="records"),\n'
                 '    "files": saved});'),
        ],
    ),
    "05_figures": notebook(
        "# 05 · Figures\n\nThe paper's qualitative figures, regenerated from the runs: Fig. 3 (attention maps), "
        "Figs. 4/5 (translations with attention, ours vs CycleGAN vs the baselines), Fig. 7 (switch epoch), "
        "Fig. 8 (threshold τ), Fig. 10 (ablations) and Fig. 17 (object-free inputs). PNGs go to `figures/`.",
        [
            code('ctx.ensure_runs(list(dict.fromkeys(ctx.names("main") + ctx.names("baselines") + ctx.names("table2")\n'
                 '                                   + ctx.names("switch") + ctx.names("tau"))))\n'
                 'data, saved = ctx.dataset_path(), {}\n\n'
                 'def runs(group):\n    return {ctx.specs[k].label: ctx.run_dir(k) for k in ctx.names(group)}\n\n'
                 'def show(fig, name):\n    saved[name] = figures.save(fig, ctx.figures_dir / f"{name}.png")\n    display(fig)'),
            md("## Fig. 3 — attention maps"),
            code('show(figures.attention_maps(ctx.run_dir("ours"), data, n=6, n_free=2), "fig3_attention_maps")'),
            md("## Figs. 4/5 — translations"),
            code('show(figures.translation_grid({**runs("main"), **runs("baselines")}, data, n=2), "fig4_5_translations")'),
            md("## Fig. 7 — when to switch\nEach column pair: one switch epoch's attention and output."),
            code('sweep = {f"switch {ctx.config_for(ctx.specs[k]).switch_epoch}": ctx.run_dir(k) for k in ctx.names("switch")}\n'
                 'show(figures.sweep_grid(dict(sorted(sweep.items(), key=lambda kv: int(kv[0].split()[1]))), data,\n'
                 '                        title="Fig. 7 — switch epoch"), "fig7_switch_sweep")'),
            md("## Fig. 8 — the threshold τ\nEach column pair: the mask `[A > τ]` the stage-2 discriminator sees, "
               "and the output."),
            code('sweep = {f"τ = {ctx.config_for(ctx.specs[k]).tau:g}": ctx.run_dir(k) for k in ctx.names("tau")}\n'
                 'show(figures.sweep_grid(dict(sorted(sweep.items(), key=lambda kv: float(kv[0].split()[-1]))), data,\n'
                 '                        show="mask", title="Fig. 8 — threshold τ"), "fig8_tau_sweep")'),
            md("## Fig. 10 — ablations"),
            code('show(figures.ablation_grid({**runs("table2"), **{k: v for k, v in runs("baselines").items() if k == "CycleGAN"}},\n'
                 '                            data, n=2), "fig10_ablations")'),
            md("## Fig. 17 — inputs without the object\nAttention-guided translation should return them unchanged."),
            code('show(figures.object_free({**runs("main"), **runs("baselines")}, data, n=3), "fig17_object_free")'),
            md("## Every seed, per row and metric\nEach dot a training seed, each bar their mean: how far apart the "
               "rows are against how far apart their seeds are — what the claims' verdicts weigh."),
            code('metrics = ("cf_kid", "texture", "object_target", "iou", "bg_psnr", "empty_att", "free_psnr")\n'
                 'for name, group in (("seeds_table1", "table1"), ("seeds_table2", "table2")):\n'
                 '    show(figures.seed_dots(tables.seed_values(ctx, ctx.names(group)), metrics), name)\n'
                 'sweeps = ctx.names("switch") + ctx.names("tau")[1:]\n'
                 'show(figures.seed_dots(tables.seed_values(ctx, sweeps), ("texture", "object_target", "att_recall",\n'
                 '                       "att_precision", "empty_att", "bg_psnr")), "seeds_fig7_fig8")'),
            code('ctx.record("05_figures", {"figures": saved})\n'
                 'print("report:", reproduce.write_report(ctx, by="the notebook `05_figures` run on its own"))'),
        ],
    ),
    "06_explore": notebook(
        "# 06 · Explore a run\n\nPick a run, an image, a direction and a threshold τ: see the input, its attention, "
        "the thresholded mask, what the stage-2 discriminator is shown (Eq. 6) and the output (Eq. 1). τ starts "
        "at the run's own and follows the run you pick until you move it. The widgets need a live kernel "
        "(JupyterLab: `make lab`); executed headless, the panel is drawn once.",
        [
            code('from agit.explore import Explorer\n\nctx.ensure_runs([run_name])\n'
                 'explorer = Explorer(ctx, run_name, image_index, direction, tau)\n'
                 'print(len(explorer.runs), "trained runs")\nexplorer.show()'),
            md("The panel is also saved as `figures/explore_panel.png`."),
            code('print(figures.save(explorer.figure, ctx.figures_dir / "explore_panel.png"))'),
            code('import torch\n\nchosen = explorer.state\n'
                 'x, att, out, raw = figures.translate_files(explorer.runs[chosen["run"]], [explorer.path], chosen["direction"])\n'
                 'a = att if att is not None else torch.ones_like(x[:, :1])\n'
                 'ctx.record("06_explore", chosen | {"attention_mean": float(a.mean()),\n'
                 '                                   "share_above_tau": float((a > chosen["tau"]).float().mean())});'),
        ],
        extra_parameters='run_name = "ours"  # any run of the profile (agit/specs.py: run_specs)\n'
                         'image_index = -1  # -1: the first test image with the object\ndirection = "s2t"\ntau = 0.0  # 0: the run\'s own τ',
    ),
}


def main():
    folder = ROOT / "notebooks"
    folder.mkdir(exist_ok=True)
    for name, nb in NOTEBOOKS.items():
        nbformat.validate(nb)
        nbformat.write(nb, folder / f"{name}.ipynb")
        print(folder / f"{name}.ipynb")


if __name__ == "__main__":
    main()
