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

profile = os.environ.get("AGIT_PROFILE", "quick")  # ci | quick | paper (agit/reproduce.py: PROFILES)
out = os.environ.get("AGIT_RESULTS", "")  # "": results/<profile>
data_root = os.environ.get("AGIT_DATA", "")  # "": data/
jobs = 0  # training processes for independent runs; 0: the profile's
device = ""  # "": CUDA if available, else CPU
executor = ""  # "": local processes; "submitit:key=value,...": e.g. SLURM jobs (README: scale-out)'''

SETUP = '''\
%matplotlib inline
import json

from IPython.display import Image, Markdown, display

from agit import figures, reproduce, tables
from agit.run import Run

ctx = reproduce.context(profile, out or None, data_root or None, device=device or None, jobs=jobs or None,
                        executor=executor or None)
print(f"profile {ctx.name!r}: preset {ctx.profile['preset']!r}, data {ctx.dataset_path()}, results {ctx.out}")'''


def notebook(title: str, cells: list, extra_parameters: str = "") -> nbformat.NotebookNode:
    params = new_code_cell(PARAMETERS + ("\n" + extra_parameters if extra_parameters else ""))
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(title), params, new_code_cell(SETUP)])
    for kind, source in cells:
        nb.cells.append(new_markdown_cell(source) if kind == "md" else new_code_cell(source))
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same files
        cell.id = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


md = lambda s: ("md", s)  # noqa: E731
code = lambda s: ("code", s)  # noqa: E731

NOTEBOOKS = {
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
                 '                             "cyclegan_metrics": baseline})'),
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
            code("paths = ctx.prepare_data()\npaths"),
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
                 '                        "counts": counts.to_dict(orient="index"), "figures": shown})'),
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
                 '                        "metrics": metrics})'),
        ],
        extra_parameters='variant = "ours"  # ours | cycle | cycleatt | as | at | d | da | cyclegan\n'
                         'preset_name = ""  # "": the profile\'s preset\n'
                         'dataset = ""  # "": the profile\'s main dataset',
    ),
    "03_ablations": notebook(
        "# 03 · Ablations, baselines and sweeps\n\nTrains every other run the tables and figures need on the "
        "main dataset: the Table 2 variants, CycleGAN and the baselines of Table 1, the switch-epoch sweep "
        "(Fig. 7) and the threshold sweep (Fig. 8). Runs already finished are reused; `Ours–D`, `Ours–D–A` "
        "and the sweeps start from the main run's checkpoint where they stop being identical to it.",
        [
            code('names = list(dict.fromkeys(ctx.names("table2") + ctx.names("table1") + ctx.names("switch")\n'
                 '                           + ctx.names("tau")))\nctx.ensure_runs(names);'),
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
            code('ctx.record("03_ablations", {"runs": summary.to_dict(orient="index")})'),
        ],
    ),
    "04_kid_tables": notebook(
        "# 04 · Tables 1 and 2\n\nKID×100 ± std×100 per direction in the paper's layout, the published "
        "numbers beside ours, the feature extractor named in each header; on the synthetic data also the "
        "ground-truth columns. Written to `tables/` as CSV (numbers) and Markdown.",
        [
            code('ctx.ensure_runs(list(dict.fromkeys(ctx.names("table1") + ctx.names("table2") + ctx.names("switch")\n'
                 '                                   + ctx.names("tau"))));'),
            md("## Table 1 — methods"),
            code('t1 = tables.table1(ctx)\nsaved = {"table1_kid": tables.save_table(*t1, ctx.tables_dir, "table1_kid")}\n'
                 'display(Markdown(saved["table1_kid"]["md"].read_text()))'),
            md("## Table 2 — ablations"),
            code('t2 = tables.table2(ctx)\nsaved["table2_ablations"] = tables.save_table(*t2, ctx.tables_dir, "table2_ablations")\n'
                 'display(Markdown(saved["table2_ablations"]["md"].read_text()))'),
            md("## What the seed spread allows us to say\nOurs against CycleGAN and the identity, every difference "
               "beside the spread over training seeds."),
            code('saved["comparisons"] = tables.save_table(*tables.comparisons(ctx), ctx.tables_dir, "comparisons")\n'
                 'display(Markdown(saved["comparisons"]["md"].read_text()))'),
            md("## The sweeps of Figs. 7 and 8, as numbers"),
            code('for group, name in (("switch", "fig7_switch_sweep"), ("tau", "fig8_tau_sweep")):\n'
                 '    saved[name] = tables.save_table(*tables.sweep_table(ctx, group), ctx.tables_dir, name)\n'
                 '    display(Markdown(saved[name]["md"].read_text()))'),
            code('ctx.record("04_kid_tables", {\n    "extractor": ctx.profile["kid"]["extractor"],\n'
                 '    "table1": t1[0].to_dict(orient="index"), "table2": t2[0].to_dict(orient="index"),\n'
                 '    "files": saved})'),
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
            code('ctx.record("05_figures", {"figures": saved})\nreproduce.write_report(ctx)'),
        ],
    ),
    "06_explore": notebook(
        "# 06 · Explore a run\n\nPick a run, an image and a threshold τ: see the input, its attention, the "
        "thresholded mask, what the stage-2 discriminator is shown (`F(s)·[A > τ]`, Eq. 6) and the output "
        "(Eq. 1). The widgets need a live kernel; executed headless, the panel is drawn once.",
        [
            code('import ipywidgets as widgets\n\nfrom agit.data import DomainFolder, domain_folders\n\n'
                 'ctx.ensure_runs([run_name])\n'
                 'available = {key: ctx.run_dir(key) for key in ctx.specs\n'
                 '             if Run(ctx.run_dir(key)).latest.is_file()}\n'
                 'key = ctx.spec(run_name).key\nprint(len(available), "trained runs")'),
            code('def files_for(direction):\n'
                 '    """Test images of the source domain of `direction`, from the dataset of the chosen run."""\n'
                 '    data = figures.model_of(available[run_box.value]).cfg.data\n'
                 '    return DomainFolder(domain_folders(data, "test")[int(direction == "t2s")], 8).paths\n\n\n'
                 'run_box = widgets.Dropdown(options=list(available), value=key, description="run")\n'
                 'if image_index < 0:  # the first test image with the object in it\n'
                 '    first = figures.pick_images(figures.model_of(available[key]).cfg.data,\n'
                 '                                domain="A" if direction == "s2t" else "B", n=1)\n'
                 '    image_index = files_for(direction).index(first[0]) if first else 0\n'
                 'direction_box = widgets.ToggleButtons(options=["s2t", "t2s"], value=direction, description="direction")\n'
                 'image_box = widgets.IntSlider(value=image_index, min=0, max=len(files_for(direction)) - 1,\n'
                 '                              description="image")\n'
                 'tau_box = widgets.FloatSlider(value=tau if tau > 0 else ctx.config_for(ctx.specs[key]).tau,\n'
                 '                              min=0.0, max=0.95, step=0.01, description="τ")\n'
                 'state = {}\n\n\n'
                 'def update(*_):\n    files = files_for(direction_box.value)\n'
                 '    image_box.max = len(files) - 1\n'
                 '    path = files[min(image_box.value, len(files) - 1)]\n'
                 '    fig = figures.explore_panel(available[run_box.value], path, direction_box.value, tau_box.value)\n'
                 '    state.update(run=run_box.value, image=path.name, direction=direction_box.value, tau=tau_box.value,\n'
                 '                 figure=fig, path=path)\n'
                 '    if "panel" in state:\n        state["panel"].update(fig)  # redraw in place (no Output widget: '
                 'headless runners can hang on its captures)\n\n\n'
                 'for box in (run_box, direction_box, image_box, tau_box):\n    box.observe(update, names="value")\n'
                 'display(widgets.VBox([widgets.HBox([run_box, direction_box]), widgets.HBox([image_box, tau_box])]))\n'
                 'update()  # draw once: headless runs (papermill, nbval) stop here\n'
                 'state["panel"] = display(state["figure"], display_id=True)'),
            md("The panel is also saved as `figures/explore_panel.png`."),
            code('figures.save(state["figure"], ctx.figures_dir / "explore_panel.png")'),
            code('import torch\n\nx, att, out, raw = figures.translate_files(available[state["run"]], [state["path"]], state["direction"])\n'
                 'a = att if att is not None else torch.ones_like(x[:, :1])\n'
                 'ctx.record("06_explore", {k: state[k] for k in ("run", "image", "direction", "tau")} | {\n'
                 '    "attention_mean": float(a.mean()), "share_above_tau": float((a > state["tau"]).float().mean())})'),
        ],
        extra_parameters='run_name = "ours"  # any run of the profile (agit/reproduce.py: run_specs)\n'
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
