"""The plotting the notebooks use: training curves and the paper's figures, from run folders.

Every function returns a matplotlib ``Figure`` built without pyplot (no global state,
safe under the Agg backend and in headless kernels); ``save(fig, path)`` writes a PNG.

* ``loss_curves`` / ``attention_curves`` — from ``RUN/log.jsonl``, the stage switch marked;
* ``attention_maps`` — Fig. 3: inputs and their attention, object-free images on the right;
* ``translation_grid`` — Figs. 4/5: input | attention | output, both directions, per method;
* ``sweep_grid`` — Fig. 7 (switch epoch) and Fig. 8 (threshold τ, with the mask D sees);
* ``ablation_grid`` — Fig. 10: the Table 2 variants side by side;
* ``object_free`` — Fig. 17: images without the object, which should come back unchanged;
* ``native_size`` — one image of any size through a run, at that size (agit translate's default).
* ``image_grid`` — any tensors as a grid of images; ``examples`` — test images with their masks;
* ``training_panel`` — losses so far and the current attention, redrawn live by a training loop;
* ``seed_dots`` — every training seed as a dot, per row and metric: rank and spread at a glance.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .data import DomainFolder, counterfactual_folder_for, domain_folders, list_images, mask_folder_for
from .files import write_atomically
from .run import Run

CELL = 1.25  # inches per image

# --------------------------------------------------------------------------- logs


def read_log(run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(iterations, epochs) of RUN/log.jsonl; iterations carry a global index `it`."""
    rows = Run(run).log()
    iters = pd.DataFrame([r for r in rows if r.get("kind") == "iter"])
    epochs = pd.DataFrame([r for r in rows if r.get("kind") == "epoch"])
    if len(iters):
        iters.insert(0, "it", np.arange(1, len(iters) + 1))
    return iters, epochs


def _switch_iteration(iters: pd.DataFrame):
    if "stage" not in iters or not (iters["stage"] == 2).any():
        return None
    return float(iters.loc[iters["stage"] == 2, "it"].iloc[0]) - 0.5


def _mark_switch(ax, x, label=True):
    if x is not None:
        ax.axvline(x, color="crimson", ls="--", lw=1, label="stage switch" if label else None)


LOSS_KEYS_SKIP = {"it", "kind", "epoch", "step", "stage", "lr", "time"}


def _loss_groups(iters: pd.DataFrame) -> dict[str, list[str]]:
    """Logged losses by term (`adv`, `cyc`, `d`, …), each with its two directions."""
    keys = [k for k in iters.columns if k not in LOSS_KEYS_SKIP and pd.api.types.is_numeric_dtype(iters[k])]
    return {name: [k for k in keys if k.rsplit("_", 1)[0] == name] for name in sorted({k.rsplit("_", 1)[0] for k in keys})}


def _plot_losses(axes, iters: pd.DataFrame, groups: dict, smooth: int | None = None):
    window = smooth or max(1, len(iters) // 40)
    switch = _switch_iteration(iters)
    for ax, (name, keys) in zip(axes, groups.items()):
        for i, k in enumerate(keys):
            ax.plot(iters["it"], iters[k], alpha=0.2, lw=0.6, color=f"C{i}")
            ax.plot(iters["it"], iters[k].rolling(window, min_periods=1).mean(), lw=1.2, color=f"C{i}", label=k)
        _mark_switch(ax, switch)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)


def loss_curves(run, smooth: int | None = None, title: str | None = None) -> Figure:
    """Every logged loss against the iteration, smoothed; the stage switch marked on each."""
    iters, _ = read_log(run)
    groups = _loss_groups(iters)
    fig = Figure(figsize=(3.2 * max(1, len(groups)), 2.6), layout="constrained")
    _plot_losses(fig.subplots(1, max(1, len(groups)), squeeze=False)[0], iters, groups, smooth)
    fig.suptitle(title or f"losses — {Path(run).name}", fontsize=10)
    return fig


@torch.no_grad()
def training_panel(history: list[dict], model, probe: dict) -> Figure:
    """A training loop's progress: its losses so far (`history`: one dict per iteration with
    `it`, `stage` and the step's losses) beside the current attention of the `probe` images
    ({direction: N×3×H×W}), for a loop to redraw as it trains."""
    iters = pd.DataFrame(history)
    groups = _loss_groups(iters)
    n_img = sum(len(x) for x in probe.values())
    fig = Figure(figsize=(2.6 * len(groups) + CELL * n_img, 2.2 + CELL), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.6 * len(groups), CELL * n_img])
    _plot_losses(left.subplots(1, len(groups), squeeze=False)[0], iters, groups)
    axes = right.subplots(2, n_img, squeeze=False)
    col = 0
    for direction, x in probe.items():
        attention = model.attention(x, direction)
        for k in range(len(x)):
            _show(axes[0, col], x[k], "input")
            _show(axes[1, col], attention[k], f"A_{'S' if direction == 's2t' else 'T'}, mean {attention[k].mean():.2f}")
            col += 1
    stage = int(iters["stage"].iloc[-1]) if "stage" in iters else 1
    fig.suptitle(f"iteration {int(iters['it'].iloc[-1])}, stage {stage}"
                 + (" (attention frozen, D sees [A > τ])" if stage == 2 else ""), fontsize=10)
    return fig


def attention_curves(run, title: str | None = None) -> Figure:
    """Per-epoch attention statistics on the probe images (mean, share above τ, IoU); switch marked."""
    _, epochs = read_log(run)
    groups = [g for g in ("att_mean", "att_above_tau", "att_iou") if any(c.startswith(g) for c in epochs.columns)]
    fig = Figure(figsize=(3.2 * max(1, len(groups)), 2.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)[0]
    if not groups:
        axes[0].text(0.5, 0.5, "no attention statistics (no attention nets)", ha="center", va="center")
        axes[0].set_axis_off()
        return fig
    x = epochs["epoch"] + 1
    switch = (float(epochs.loc[epochs["stage"] == 2, "epoch"].iloc[0]) + 0.5) if (epochs["stage"] == 2).any() else None
    for ax, g in zip(axes, groups):
        for d in ("s2t", "t2s"):
            if f"{g}_{d}" in epochs:
                ax.plot(x, epochs[f"{g}_{d}"], marker="o", ms=3, label={"s2t": "A_S", "t2s": "A_T"}[d])
        _mark_switch(ax, switch)
        ax.set_title(g)
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle(title or f"attention per epoch — {Path(run).name}", fontsize=10)
    return fig


# --------------------------------------------------------------------------- images

_MODELS: dict = {}


def model_of(run):
    """The run's trained model (cached per checkpoint), on CPU, in eval mode."""
    folder = Run(run)
    key = (str(folder.path.resolve()), folder.latest.stat().st_mtime if folder.latest.exists() else None)
    if key not in _MODELS:
        while len(_MODELS) >= 8:  # a handful of models at a time; a figure needs a few
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = folder.load_model(device="cpu")
    return _MODELS[key]


def pick_images(data, split: str = "test", domain: str = "A", n: int = 3, with_object: bool = True) -> list[Path]:
    """n image files of a domain; on synthetic data with or without the animal (meta.json)."""
    folder = domain_folders(data, split)["AB".index(domain)]
    files = list_images(folder)
    meta = Path(data) / "meta.json"
    if meta.is_file():
        free = set(json.loads(meta.read_text())["animal_free"].get(folder.name, []))
        files = [p for p in files if (p.name in free) != with_object]
    elif not with_object:
        return []
    return files[:n]


def load_images(paths, size: int) -> torch.Tensor:
    """The image files `paths` as the networks take them at `size` (DomainFolder, no augmentation), stacked."""
    if not paths:
        return torch.zeros(0, 3, size, size)
    by_folder = {}
    for p in paths:
        by_folder.setdefault(Path(p).parent, []).append(Path(p))
    images = {}
    for folder, files in by_folder.items():
        ds = DomainFolder(folder, size)
        index = {q: i for i, q in enumerate(ds.paths)}
        for p in files:
            images[p] = ds[index[p]]["image"]
    return torch.stack([images[Path(p)] for p in paths])


@torch.no_grad()
def translate_files(run, paths, direction: str):
    """(inputs, attention or None, outputs, raw generator output) for image files."""
    model = model_of(run)
    x = load_images(paths, model.cfg.size)
    tr = model.translate(x, direction)
    net = getattr(model, "attention_net", lambda d: None)(direction)
    return x, (tr.attention if net is not None else None), tr.image, tr.raw


def _show(ax, img, title=None, cmap="gray", fontsize=7):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():  # a thin frame: an all-white mask stays visible
        s.set_linewidth(0.5)
        s.set_color("0.7")
    if img is None:
        ax.text(0.5, 0.5, "—", ha="center", va="center", transform=ax.transAxes, color="grey")
    elif img.shape[0] == 1:
        ax.imshow(img[0].cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
    else:
        ax.imshow(((img.permute(1, 2, 0).cpu().numpy() + 1) / 2).clip(0, 1))
    if title:
        ax.set_title(title, fontsize=fontsize)


def image_grid(cells, col_titles, row_titles=None, title=None, cell: float = CELL) -> Figure:
    """cells: rows of images (3×H×W in [-1, 1], 1×H×W in [0, 1], or None); `cell` inches a tile."""
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    font = 7 * max(1.0, cell / CELL) ** 0.5
    fig = Figure(figsize=(cell * n_cols + 0.4, cell * n_rows + 0.5), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(cells):
        for j in range(n_cols):
            _show(axes[i, j], row[j] if j < len(row) else None, col_titles[j] if i == 0 else None, fontsize=font)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=font)
    if title:
        fig.suptitle(title, fontsize=font + 2)
    return fig


def _dir_label(data, direction):
    from .tables import direction_labels

    return dict(zip(("s2t", "t2s"), direction_labels(data)))[direction]


def dataset_samples(data, n: int = 5, split: str = "train") -> Figure:
    """n images of each domain, each above its ground-truth mask where the dataset has masks."""
    rows, titles = [], []
    for folder in domain_folders(data, split):
        masks = Path(str(folder) + "_mask")
        ds = DomainFolder(folder, 64, mask_folder=masks if masks.is_dir() else None)
        items = [ds[i] for i in range(min(n, len(ds)))]
        rows.append([it["image"] for it in items])
        titles.append(folder.name)
        if all("mask" in it for it in items):
            rows.append([it["mask"] for it in items])
            titles.append(f"{folder.name} mask")
    return image_grid(rows, [""] * n, titles, f"{Path(data).name}: samples of both domains")


def attention_maps(run, data, n: int = 4, n_free: int = 2) -> Figure:
    """Fig. 3: inputs (top) and attention (bottom): A_S on source images, A_T on target ones,
    then object-free images of both domains, where the attention should be ~0."""
    cols, inputs, atts = [], [], []
    per_domain = {"A": (n + 1) // 2, "B": n // 2}
    for domain, direction, name in (("A", "s2t", "A_S"), ("B", "t2s", "A_T")):
        for free in (False, True):
            files = pick_images(data, domain=domain, n=n_free if free else per_domain[domain],
                                with_object=not free)
            if not files:
                continue
            x, att, _, _ = translate_files(run, files, direction)
            for k in range(len(files)):
                inputs.append(x[k])
                atts.append(att[k] if att is not None else None)
                cols.append(f"{name}{' (no object)' if free else ''}")
    order = [k for k, c in enumerate(cols) if "no object" not in c] + [k for k, c in enumerate(cols) if "no object" in c]
    return image_grid([[inputs[k] for k in order], [atts[k] for k in order]], [cols[k] for k in order],
                      ["input", "attention"], f"Fig. 3 — attention maps ({Path(run).name})")


def counterfactuals_of(paths, size: int) -> torch.Tensor | None:
    """The true translations of test image files (`<folder>_counterfactual/`, same names), or None."""
    folders = [counterfactual_folder_for(Path(p).parent) for p in paths]
    if not paths or None in folders:
        return None
    found = [folder / Path(p).name for folder, p in zip(folders, paths)]
    return load_images(found, size) if all(p.is_file() for p in found) else None


def _method_rows(per_method: dict, n: int, counterfactual: torch.Tensor | None = None) -> tuple[list, list]:
    """One row per input image: the input, its counterfactual (where the data have one), then per
    method its attention (if it has one) and output."""
    rows, titles = [], ["input"] + ["counterfactual (true translation)"] * (counterfactual is not None)
    for label, (_, att, _, _) in per_method.items():
        titles += [f"{label}: attention"] * (att is not None) + [f"{label}: output"]
    for k in range(n):
        row = [next(iter(per_method.values()))[0][k]] + ([counterfactual[k]] if counterfactual is not None else [])
        for _, att, out, _ in per_method.values():
            row += ([att[k]] if att is not None else []) + [out[k]]
        rows.append(row)
    return rows, titles


def _translated_rows(runs: dict, files, direction: str) -> tuple[list, list]:
    per_method = {label: translate_files(run, files, direction) for label, run in runs.items()}
    size = next(iter(per_method.values()))[0].shape[-1]
    return _method_rows(per_method, len(files), counterfactuals_of(files, size))


def translation_grid(runs: dict, data, n: int = 2, directions=("s2t", "t2s")) -> Figure:
    """Figs. 4/5: per row an input (and its counterfactual); per method its attention (if any) and output."""
    rows, row_titles, col_titles = [], [], None
    for direction in directions:
        files = pick_images(data, domain="A" if direction == "s2t" else "B", n=n)
        block, titles = _translated_rows(runs, files, direction)
        rows += block
        row_titles += [_dir_label(data, direction)] * len(block)
        col_titles = col_titles or titles
    return image_grid(rows, col_titles, row_titles, "Figs. 4/5 — translations with attention")


def sweep_grid(runs: dict, data, show: str = "attention", n: int = 2, title: str = "") -> Figure:
    """Figs. 7/8: columns per run (its attention, or with show='mask' the thresholded mask
    of Eq. 6 that the stage-2 discriminator sees, then its output); rows: images, both directions."""
    rows, row_titles, col_titles = [], [], ["input"]
    for label in runs:
        col_titles += [f"{label}: {'A' if show == 'attention' else 'mask (Eq. 6)'}", f"{label}: output"]
    for direction in ("s2t", "t2s"):
        files = pick_images(data, domain="A" if direction == "s2t" else "B", n=n)
        results = {}
        for label, run in runs.items():
            x, att, out, _ = translate_files(run, files, direction)
            if att is not None and show == "mask":
                att = model_of(run).d_mask(att)
            results[label] = (x, att, out)
        for k in range(len(files)):
            row = [next(iter(results.values()))[0][k]]
            for x, att, out in results.values():
                row += [att[k] if att is not None else None, out[k]]
            rows.append(row)
            row_titles.append(_dir_label(data, direction))
    return image_grid(rows, col_titles, row_titles, title)


def ablation_grid(runs: dict, data, n: int = 2) -> Figure:
    """Fig. 10: one input per row, each variant's output per column."""
    rows, row_titles = [], []
    for direction in ("s2t", "t2s"):
        files = pick_images(data, domain="A" if direction == "s2t" else "B", n=n)
        outs = {label: translate_files(run, files, direction) for label, run in runs.items()}
        for k in range(len(files)):
            rows.append([next(iter(outs.values()))[0][k]] + [o[2][k] for o in outs.values()])
            row_titles.append(_dir_label(data, direction))
    return image_grid(rows, ["input", *runs], row_titles, "Fig. 10 — ablations (outputs)")


def object_free(runs: dict, data, n: int = 3) -> Figure:
    """Fig. 17: source images without the object; attention methods should leave them alone."""
    files = pick_images(data, domain="A", n=n, with_object=False)
    if not files:
        fig = Figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "this dataset lists no object-free images", ha="center")
        return fig
    rows, titles = _translated_rows(runs, files, "s2t")
    return image_grid(rows, titles, [_dir_label(data, "s2t")] * len(rows),
                      "Fig. 17 — object-free inputs (should come back unchanged)")


@torch.no_grad()
def native_size(run, path, direction: str = "s2t", size: int | None = None, height_in: float = 2.0) -> Figure:
    """input | attention | output of one image file through a run, each at the file's own size
    (with `size`, the networks see the shorter side resized to it, as `agit translate --size`)."""
    from .data import read_rgb
    from .translate import translate_image

    model = model_of(run)
    x = read_rgb(path)[None].float() / 127.5 - 1
    tr = translate_image(model, x, direction, size)
    h, w = x.shape[-2:]
    fig = Figure(figsize=(3 * height_in * w / h + 0.3, height_in + 0.6), layout="constrained")
    for ax, img, title in zip(fig.subplots(1, 3), (x[0], tr.attention[0], tr.image[0]),
                              (f"input, {w}×{h} px", "attention", "output (Eq. 1)")):
        _show(ax, img, title)
    seen = f", the networks at shorter side {size} px" if size else ""
    fig.suptitle(f"{Path(run).name} ({direction}), trained on {model.cfg.size}-px crops: "
                 f"one {w}×{h} image at its own size{seen}", fontsize=8)
    return fig


def examples(data, domain: str = "A", n: int = 2, size: int = 64, split: str = "test",
             with_object: bool = True) -> dict:
    """n images of a domain (`pick_images`) as a batch, with their masks where the dataset has
    them: {'image': N×3×H×W in [-1, 1], 'mask': N×1×H×W or None, 'paths': [...]}."""
    folder = domain_folders(data, split)["AB".index(domain)]
    masks = mask_folder_for(folder)
    ds = DomainFolder(folder, size, mask_folder=masks)
    paths = pick_images(data, split, domain, n, with_object)
    items = [ds[ds.paths.index(p)] for p in paths]
    stack = lambda key, c: torch.stack([it[key] for it in items]) if items else torch.zeros(0, c, size, size)  # noqa: E731
    return {"image": stack("image", 3), "mask": stack("mask", 1) if masks else None, "paths": paths}


def seed_dots(values: pd.DataFrame, metrics, title: str = "") -> Figure:
    """A strip plot of `tables.seed_values`' long form: one panel per direction (rows) and metric
    (columns), one line per table row (in its order), every seed a dot, the mean a bar."""
    from .tables import BETTER, SHORT

    metrics = [m for m in metrics if m in set(values["metric"])]
    directions, rows = list(dict.fromkeys(values["direction"])), list(dict.fromkeys(values["row"]))
    fig = Figure(figsize=(1.9 * len(metrics) + 1.6, 0.22 * len(rows) * len(directions) + 1.2), layout="constrained")
    axes = fig.subplots(len(directions), len(metrics), squeeze=False, sharey=True)
    for i, d in enumerate(directions):
        for j, metric in enumerate(metrics):
            ax, here = axes[i, j], values[(values["direction"] == d) & (values["metric"] == metric)]
            for y, row in enumerate(rows):
                v = here.loc[here["row"] == row, "value"].to_numpy()
                if len(v):
                    ax.plot(v, np.full(len(v), y), "o", ms=3.5, alpha=0.7, color="C0" if row.startswith("Ours") else "C1")
                    ax.plot([v.mean()] * 2, [y - 0.3, y + 0.3], color="k", lw=1)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.tick_params(axis="x", labelsize=6)
            ax.grid(axis="x", lw=0.3)
            arrow = "↓" if BETTER[metric] == "lower" else "↑"
            ax.set_title(f"{d} {SHORT.get(metric, metric).rstrip(' ↑↓')} {arrow}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def save(fig: Figure, path, dpi: int = 120) -> Path:
    """Write `fig` as PNG (folders created, whole or not at all); returns the path."""
    png = io.BytesIO()
    fig.savefig(png, dpi=dpi, format="png")
    return write_atomically(path, png.getbuffer())
