"""The explore notebook's panel: pick a run, an image, a direction and τ; see Eq. 1 and Eq. 6 at work.

`Explorer` puts ipywidgets controls over `explore_panel` (input | attention |
[A > τ] | what the stage-2 discriminator is shown | output) and redraws the panel in place
when a control moves. τ starts at the chosen run's own threshold and follows the run when
another is picked, until the user moves it. A line under the controls names the runs
whose attention nets are those of `ours` (forks taken after its attention froze): their
attention maps are identical by construction, so only their outputs can differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from . import figures
from .data import domain_folders, list_images
from .run import Run
from .tables import direction_labels


def trained_runs(ctx) -> dict[str, Path]:
    """{run key: folder} of the profile's runs that have a checkpoint."""
    return {key: ctx.run_dir(key) for key in ctx.specs if Run(ctx.run_dir(key)).latest.is_file()}


def _attention_weights(run: Path) -> dict[str, torch.Tensor]:
    state = Run(run).load_checkpoint(mmap=True)
    return {k: v for k, v in state["model"].items() if k.startswith(("att_s.", "att_t."))}


def attention_twins(runs: dict[str, Path], reference: str) -> list[str]:
    """Keys of the runs whose attention nets hold exactly `reference`'s weights (compared
    tensor by tensor): forks taken after the reference's attention froze that never train it."""
    ref = _attention_weights(runs[reference])
    if not ref:
        return []
    twins = []
    for key, run in runs.items():
        if key == reference:
            continue
        weights = _attention_weights(run)
        if weights.keys() == ref.keys() and all(torch.equal(v, ref[k]) for k, v in weights.items()):
            twins.append(key)
    return twins


@torch.no_grad()
def explore_panel(run, path, direction: str = "s2t", tau: float | None = None, cell: float = 2.3) -> Figure:
    """One image through one run: input | attention | Eq. 6's mask | what the stage-2 discriminator
    is shown (the model's own fake_for_d and d_input, at `tau`) | output (Eq. 1). `cell` inches a tile."""
    model = figures.model_of(run)
    tau = model.cfg.tau if tau is None else tau
    x = figures.load_images([path], model.cfg.size)
    tr = model.translate(x, direction)
    a = tr.attention
    stage2 = model.cfg.stage(model.cfg.switch_epoch)
    fake, fake_att = model.fake_for_d(tr, stage2)
    masks = hasattr(model, "d_input")  # UNIT's discriminators always see whole images
    mask = model.d_mask(a, tau) if masks else torch.ones_like(a)
    shown = model.d_input(fake, fake_att, stage2, tau=tau) if masks else fake
    op = "≥" if model.cfg.tau_inclusive else ">"
    fig = figures.image_grid([[x[0], a[0], mask[0], shown[0], tr.image[0]]],
                             ["input", "attention A", f"[A {op} {tau:.2f}]", "stage-2 D input (Eq. 6)", "output (Eq. 1)"],
                             cell=cell)
    fig.suptitle(f"{Path(run).name}, {Path(path).name}, {direction}: mean attention {a.mean():.3f}, "
                 f"{mask.mean():.0%} of pixels in the mask at τ = {tau:.2f}", fontsize=10)
    return fig


class Explorer:
    """Controls and panel for one image through one run; `show()` displays them in a notebook.

    `run`: a run of the profile (name or key); `image`: index among the source domain's test
    images (-1: the first with the object); `tau`: the threshold to start at (0: the run's own).
    """

    def __init__(self, ctx, run: str = "ours", image: int = -1, direction: str = "s2t", tau: float = 0.0):
        import ipywidgets as widgets

        self.ctx = ctx
        self.runs = trained_runs(ctx)
        key = ctx.spec(run).key
        if key not in self.runs:
            raise FileNotFoundError(f"run {key!r} has no checkpoint under {ctx.run_dir(key)}: train it first "
                                    f"(ctx.ensure_runs([{run!r}]))")
        labels = dict(zip(("s2t", "t2s"), direction_labels(ctx.dataset_path(ctx.specs[key].dataset))))
        self.run_box = widgets.Dropdown(options=[(f"{ctx.specs[k].label} ({k})", k) for k in self.runs], value=key,
                                        description="run", layout=widgets.Layout(width="360px"))
        # no description: a label beside buttons lines up above them in ipywidgets 8
        self.direction_box = widgets.ToggleButtons(
            options=[(f"{labels[d]} ({d})", d) for d in ("s2t", "t2s")], value=direction,
            tooltips=["translate source-domain images", "translate target-domain images"],
            style={"button_width": "auto"})
        if image < 0:
            first = figures.pick_images(self.data, domain="A" if direction == "s2t" else "B", n=1)
            image = self.files(direction).index(first[0]) if first else 0
        self.image_box = widgets.IntSlider(value=image, min=0, max=len(self.files(direction)) - 1,
                                           description="image", layout=widgets.Layout(width="360px"))
        self.tau_moved = tau > 0  # a τ given or moved by hand stays when the run changes
        self.tau_box = widgets.FloatSlider(value=tau if tau > 0 else self.run_tau(key), min=0.0, max=0.95, step=0.01,
                                           description="τ", readout_format=".2f", layout=widgets.Layout(width="360px"))
        self.note = widgets.HTML()
        self.controls = widgets.VBox([
            widgets.HBox([self.run_box, self.direction_box]),
            widgets.HBox([self.image_box, self.tau_box]),
            self.note,
        ])
        self._quiet = False  # set while the panel itself moves a control
        self._handle = None
        for box in (self.run_box, self.direction_box, self.image_box, self.tau_box):
            box.observe(self._changed, names="value")
        self._twins = attention_twins(self.runs, ctx.spec("ours").key) if ctx.spec("ours").key in self.runs else []
        self.update()

    # -- what is selected ---------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.ctx.dataset_path(self.ctx.specs[self.run_box.value].dataset)

    def files(self, direction: str) -> list[Path]:
        """Test images of the source domain of `direction`, in the chosen run's dataset."""
        return list_images(domain_folders(self.data, "test")[int(direction == "t2s")])

    def run_tau(self, key: str) -> float:
        return self.ctx.config_for(self.ctx.specs[key]).tau

    @property
    def path(self) -> Path:
        files = self.files(self.direction_box.value)
        return files[min(self.image_box.value, len(files) - 1)]

    @property
    def state(self) -> dict:
        """The selection, as the notebook records it."""
        return {"run": self.run_box.value, "image": self.path.name, "direction": self.direction_box.value,
                "tau": self.tau_box.value}

    # -- reacting ---------------------------------------------------------------------------
    def _changed(self, change):
        if self._quiet:
            return
        if change["owner"] is self.tau_box:
            if abs(change["new"] - change["old"]) < self.tau_box.step / 2:
                return  # the browser's slider rounding the value on display (0.1 -> 0.0999…), not a move
            self.tau_moved = True
        self._quiet = True
        try:
            if change["owner"] is self.run_box and not self.tau_moved:
                self.tau_box.value = self.run_tau(self.run_box.value)
            self.image_box.max = len(self.files(self.direction_box.value)) - 1
        finally:
            self._quiet = False
        self.update()

    def _note(self) -> str:
        specs = self.ctx.specs
        if not self._twins:
            return "No other trained run shares its attention nets with Ours."
        names = ", ".join(specs[k].label for k in self._twins)
        chosen = self.run_box.value
        here = (" — including this one: its attention is Ours's, only its output can differ"
                if chosen in self._twins else "")
        return (f"<b>Same attention as Ours</b> (forked from it after its attention froze; weights identical): "
                f"{names}{here}.")

    def update(self):
        """Redraw the panel for the current selection (in place, once shown)."""
        self.note.value = self._note()
        self.figure = explore_panel(self.runs[self.run_box.value], self.path, self.direction_box.value,
                                            self.tau_box.value)
        if self._handle is not None:
            self._handle.update(self.figure)

    def show(self):
        """Display the controls and the panel. Headless runs (papermill, nbval) draw the panel once;
        in a live kernel every control redraws it. No Output widget: headless runners can hang on
        its captures."""
        from IPython.display import display

        display(self.controls)
        self._handle = display(self.figure, display_id=True)
