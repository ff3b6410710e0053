"""The explorer's logic without a browser: τ follows the chosen run until moved, the
attention-sharing line, and every control redraws the panel (tests/test_browser.py checks
the same in JupyterLab)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from agit import reproduce

widgets = pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    threads = torch.get_num_threads()
    base = tmp_path_factory.mktemp("explore")
    ctx = reproduce.context("ci", base / "out", base / "data")
    ctx.ensure_runs(["ours", "tau_0.5", "cyclegan", "cycle"], evaluate=False)
    torch.set_num_threads(threads)
    return ctx


def pixels(fig) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return np.asarray(Image.open(buffer))


def test_attention_twins_are_the_forks_after_the_switch(ctx):
    from agit.explore import attention_twins, trained_runs

    runs = trained_runs(ctx)
    assert set(runs) == {"ci/ours", "ci/tau_0.5", "ci/cyclegan", "ci/cycle"}
    assert attention_twins(runs, "ci/ours") == ["ci/tau_0.5"]  # forked at the switch, attention frozen
    assert attention_twins(runs, "ci/cyclegan") == []  # no attention nets at all


def test_tau_follows_the_run_until_moved_and_every_control_redraws(ctx):
    from agit.explore import Explorer

    ex = Explorer(ctx, "ours")
    assert ex.tau_box.value == pytest.approx(0.1) and not ex.tau_moved
    assert "τ = 0.5" in ex.note.value and "Same attention as Ours" in ex.note.value
    shown = pixels(ex.figure)

    def redrawn():
        nonlocal shown
        now = pixels(ex.figure)
        changed = now.shape != shown.shape or (now != shown).any()
        shown = now
        return changed

    ex.tau_box.value = 0.09999999999999998  # what JupyterLab's slider sends back on display: not a move
    assert not ex.tau_moved
    ex.run_box.value = "ci/tau_0.5"
    assert ex.tau_box.value == pytest.approx(0.5) and redrawn() and "including this one" in ex.note.value
    ex.run_box.value = "ci/ours"
    assert ex.tau_box.value == pytest.approx(0.1) and redrawn()
    ex.tau_box.value = 0.6
    assert ex.tau_moved and redrawn()
    ex.image_box.value = ex.image_box.max
    assert redrawn()
    ex.direction_box.value = "t2s"
    assert redrawn() and ex.state["direction"] == "t2s"
    ex.run_box.value = "ci/tau_0.5"  # moved by hand: τ stays
    assert ex.tau_box.value == pytest.approx(0.6)


def test_unknown_or_untrained_run_is_a_clear_error(ctx):
    from agit.explore import Explorer

    with pytest.raises(FileNotFoundError, match="ci/switch_2.*train it first"):
        Explorer(ctx, "switch_2")
    with pytest.raises(KeyError, match="no run 'ci/nope'"):
        Explorer(ctx, "nope")
