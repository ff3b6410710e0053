"""`agit reproduce`: the notebooks end to end under the ci profile, and the machinery beneath.

The end-to-end test writes into the session's AGIT_RESULTS / AGIT_DATA folders (see the
root conftest.py), so the nbval pass over notebooks/ that `make test` runs next reuses
its trained runs instead of training them again.
"""

import json
import math
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch

from agit import reproduce
from agit.cli import main
from agit.jobs import RunMismatch
from agit.profiles import resolve_profile
from agit.run import Run
from agit.specs import run_specs
from agit.tables import PAPER_TABLE1, PAPER_TABLE2

ROOT = Path(__file__).resolve().parent.parent
FULL_TABLES = ("table1_kid", "table2_ablations", "fig7_switch_sweep", "fig8_tau_sweep")
TABLES = ("claims", *FULL_TABLES, *(f"{t}_{d}" for t in FULL_TABLES for d in ("s2t", "t2s")))
FIGURES = ("data_ci", "losses_ci_ours", "attention_ci_ours", "fig3_attention_maps", "fig4_5_translations",
           "fig7_switch_sweep", "fig8_tau_sweep", "fig10_ablations", "fig17_object_free", "explore_panel",
           "seeds_table1", "seeds_table2", "seeds_fig7_fig8")
VERDICTS = ("reproduced", "contradicted", "not resolved (1 seed)", "not resolved (within 2× spread)",
            "not measured")


@pytest.fixture
def keep_threads():
    """ensure_runs sets the profile's torch thread count; give the rest of the session its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ci_out():
    """One `agit reproduce --profile ci` run, into the session's folders."""
    out, data = Path(os.environ["AGIT_RESULTS"]), Path(os.environ["AGIT_DATA"])
    n = torch.get_num_threads()
    rc = main(["reproduce", "--profile", "ci", "--out", str(out), "--data", str(data)])
    torch.set_num_threads(n)
    assert rc == 0
    return out


def numbers(out, stage):
    return json.loads((out / "notebooks" / f"{stage}.json").read_text())


def test_reproduce_ci_writes_every_notebook_table_figure_and_the_report(ci_out):
    for stage in reproduce.STAGES:
        nb = nbformat.read(ci_out / "notebooks" / f"{stage}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), stage
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], stage
        assert not [o for o in outputs if "PosixPath(" in json.dumps(o)], stage  # paths print as text
        assert numbers(ci_out, stage)["profile"] == "ci"
    for name in TABLES:
        csv, md = ci_out / "tables" / f"{name}.csv", ci_out / "tables" / f"{name}.md"
        assert len(pd.read_csv(csv)) >= 2, name
        assert "|" in md.read_text() and "**" in md.read_text(), name
    for name in FIGURES:
        png = ci_out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (ci_out / "REPORT.md").read_text()
    for name in ("claims", *FULL_TABLES):  # linked; the narrow views inline
        assert f"(tables/{name}.csv)" in report and f"(tables/{name}.md)" in report
    for name in TABLES[len(FULL_TABLES) + 1:]:
        assert (ci_out / "tables" / f"{name}.md").read_text().rstrip() in report
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## The paper's claims", "## Tables, per direction"]
    assert "by `agit reproduce --profile ci`" in report and os.environ["AGIT_DATA"] not in report
    for md in (ci_out / "tables").glob("*.md"):  # one ± a cell, the narrow tables at most 8 columns
        rows = [line for line in md.read_text().splitlines() if line.startswith("|")]
        assert all(c.count("±") <= 1 for line in rows for c in line.split("|")), md.name
        if md.stem.endswith(("_s2t", "_t2s")):
            assert rows[0].count("|") - 1 <= 8, md.name
    for name in FIGURES:
        assert f"(figures/{name}.png)" in report
    for stage in reproduce.STAGES:
        assert f"(notebooks/{stage}.ipynb)" in report and f"(notebooks/{stage}.json)" in report
    assert "Ours–D–A" in report and "scene-cnn" in report and "Failed" not in report


def test_reproduce_ci_records_sane_numbers(ci_out, keep_threads):
    tutorial = numbers(ci_out, "00_tutorial")
    cfg = reproduce.context("ci", ci_out, os.environ["AGIT_DATA"]).tutorial_config()
    assert tutorial["iterations"] == cfg.epochs * cfg.iters_per_epoch and tutorial["train_seconds"] > 0
    assert set(tutorial["metrics"]) == {"Ours", "CycleGAN"}
    quick = numbers(ci_out, "00_quickstart")["metrics"]
    assert quick["kid_extractor"] == "scene-cnn"
    for d in ("s2t", "t2s"):
        for kid in ("kid", "cf_kid"):
            assert math.isfinite(quick[f"{kid}_{d}"]) and quick[f"{kid}_std_{d}"] >= 0
        assert 0 <= quick[f"iou_{d}"] <= 1 and 0 <= quick[f"empty_att_{d}"] <= 1
        assert 0 < quick[f"bg_psnr_{d}"] <= 100 and 0 <= quick[f"object_target_{d}"] <= 1
    data = numbers(ci_out, "01_data")["counts"]
    assert data["ci/trainA"]["images"] == 16 and data["ci/testB"]["masks"] == 12
    train = numbers(ci_out, "02_train")
    assert train["run"] == "ci/ours" and train["iterations"] == 8
    assert all(math.isfinite(v) for v in train["final_losses"].values())
    runs = numbers(ci_out, "03_ablations")["runs"]
    assert {"ci/cycle", "ci/da", "ci/cyclegan", "ci/tau_0.5", "ci/switch_2"} <= set(runs)
    assert "forked from ours" in runs["ci/da"]["schedule"] and "seed 1" in runs["ci/ours_seed1"]["schedule"]
    tables = numbers(ci_out, "04_kid_tables")
    assert tables["extractor"] == "scene-cnn"
    t1, t2 = tables["table1"], tables["table2"]
    assert math.isfinite(t1["Ours"]["H→Z cf_kid"]) and math.isfinite(t1["CycleGAN"]["Z→H kid"])
    assert t1["Ours"]["seeds"] == t1["CycleGAN"]["seeds"] == 2 and t1["DualGAN"]["seeds"] == 1
    assert t1["Ours"]["H→Z cf_kid seed std"] >= 0 and t1["Ours"]["H→Z cf_kid subset std"] >= 0
    assert t1["Ours"]["H→Z paper KID×100"] == 6.93 and t2["Ours–cycle"]["Z→H paper KID×100"] == 64.55
    assert all(math.isfinite(t2[row]["H→Z kid"]) for row in PAPER_TABLE2)
    assert 0 <= t2["Ours"]["H→Z iou"] <= 1 and t1["CycleGAN"]["H→Z iou"] is None  # no attention
    identity = t1["reference: identity (input unchanged)"]
    assert identity["H→Z bg_psnr"] == 100 and identity["H→Z object_target"] == 0
    assert t1["reference: counterfactual, 2nd rendering"]["Z→H object_target"] > 0.5
    assert set(numbers(ci_out, "05_figures")["figures"]) >= {f for f in FIGURES if f.startswith(("fig", "seeds"))}
    explore = numbers(ci_out, "06_explore")
    assert 0 <= explore["attention_mean"] <= 1 and 0 <= explore["share_above_tau"] <= 1


def test_claims_are_verdicts_computed_from_each_seeds_metrics(ci_out, keep_threads):
    claims = numbers(ci_out, "04_kid_tables")["claims"]
    texts = {c["claim"] for c in claims}
    assert {"Ours beats CycleGAN", "Ours–D–A is worse than Ours", "Without cycle consistency the attention fails",
            "The background is preserved (against CycleGAN)"} <= texts
    assert any(t.startswith("A low τ") for t in texts) and any(t.startswith("A high τ") for t in texts)
    assert any(t.startswith("Training stage 1 only") for t in texts)  # ci's later switch is its last epoch
    assert any(t.startswith("On object-free images DiscoGAN") for t in texts)
    assert {c["verdict"] for c in claims} <= set(VERDICTS)
    ablation = [c for c in claims if c["claim"] == "Ours–cycle is worse than Ours"
                and c["verdict"] != "not measured"]
    assert ablation and all(c["verdict"] == "not resolved (1 seed)" for c in ablation)  # ci: one seed of it
    ctx = reproduce.context("ci", ci_out, os.environ["AGIT_DATA"])
    [bg] = [c for c in claims if c["claim"].startswith("The background") and c["direction"] == "H→Z"]
    seeds = lambda name: [Run(ctx.run_dir(k)).metrics()["bg_psnr_s2t"]  # noqa: E731
                          for k in ctx.seeds_of(ctx.spec(name).key)]
    ours, cyclegan = seeds("ours"), seeds("cyclegan")
    assert len(ours) == len(cyclegan) == 2 and bg["ours seeds"] == 2
    assert math.isclose(bg["ours"], sum(ours) / 2) and math.isclose(bg["other"], sum(cyclegan) / 2)
    spread = max(pd.Series(ours).std(), pd.Series(cyclegan).std())
    expected = ("not resolved (within 2× spread)" if abs(bg["difference"]) <= 2 * spread
                else "reproduced" if bg["difference"] > 0 else "contradicted")
    assert bg["verdict"] == expected


def test_seeds_everywhere_and_other_pairs_resolve_every_row(ci_out, keep_threads, tmp_path, monkeypatch):
    """The full profile's shape on ci data: seeded forks, the never-switched point, another pair's table and
    claims, and ablation rows with a spread (reusing the session's ci runs for seed 0)."""
    from agit import profiles, tables

    shape = {**profiles.PROFILES["ci"], "row_seeds": 2, "pairs": ("ci_fruit",), "never_switch": True,
             "switch_epochs": None, "taus": (0.1, 0.5)}
    shape["datasets"] = {**shape["datasets"], "ci_fruit": {**shape["datasets"]["ci"], "style": "apple2orange"}}
    monkeypatch.setitem(profiles.PROFILES, "ci_full", shape)
    ctx = reproduce.context("ci_full", tmp_path, os.environ["AGIT_DATA"])
    ctx.runs = ci_out / "runs"
    ctx.ensure_runs()
    assert Run(ctx.run_dir("d_seed1")).load_checkpoint()["epoch"] == 2
    saved = tables.save_all(ctx)
    assert {"pair_ci_fruit", "pair_ci_fruit_s2t", "pair_ci_fruit_t2s"} <= set(saved)
    claims = pd.read_csv(saved["claims"]["csv"], keep_default_na=False)
    ablation = claims[claims["claim"] == "Ours–cycle is worse than Ours"]
    assert (ablation["other seeds"] == 2).all() and not ablation["verdict"].str.contains("1 seed").any()
    assert claims["claim"].str.startswith("Training stage 1 only").any()
    fruit = claims[claims["dataset"] == "ci_fruit"]
    assert set(fruit["direction"]) == {"A→O", "O→A"} and (fruit["ours seeds"] == 2).all()


def test_stages_are_quiet(ci_out):
    """No papermill parameter-parsing warning, no kernel transport warning, no stray interrupt."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "agit", "reproduce", "--profile", "ci", "--stages", "02", "--out",
                           str(ci_out), "--data", os.environ["AGIT_DATA"]], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    for noise in ("Unable to parse line", "Passed unknown parameter", "without encryption", "KeyboardInterrupt"):
        assert noise not in said, said


def test_a_report_written_by_one_notebook_says_so_and_links_only_what_exists(tmp_path):
    ctx = reproduce.context("ci", tmp_path / "out", tmp_path / "data")
    ctx.record("05_figures", {"figures": {}})
    report = reproduce.write_report(ctx, by="the notebook `05_figures` run on its own").read_text()
    assert "by the notebook `05_figures` run on its own" in report and "agit reproduce" not in report
    assert "(notebooks/05_figures.json)" in report and "05_figures.ipynb" not in report
    assert str(tmp_path / "data") not in report


def test_rerun_trains_nothing(ci_out, keep_threads, capsys):
    ctx = reproduce.context("ci", ci_out, os.environ["AGIT_DATA"])
    ctx.ensure_runs()
    lines = [line for line in capsys.readouterr().out.splitlines() if ": " in line and "/" in line]
    assert lines and all(": reused, nothing to train" in line for line in lines)


def test_paper_profile_stops_at_the_first_notebook_naming_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGIT_DATASET_URL", "http://127.0.0.1:9")  # refused at once: offline
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights there
    monkeypatch.delenv("AGIT_INCEPTION_WEIGHTS", raising=False)
    rc = main(["reproduce", "--profile", "paper", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{tmp_path / 'out' / 'notebooks' / '01_data.ipynb'}, cell" in err
    assert "DataError" in err and "could not download http://127.0.0.1:9/horse2zebra.zip" in err
    assert "apple2orange" in err and "MissingWeightsError" in err and "weights-inception" in err
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## Failed" in report and "could not download" in report
    assert not (tmp_path / "out" / "notebooks" / "02_train.ipynb").exists()


# ------------------------------------------------------------------ the machinery, without kernels


def test_profiles_are_data_and_derive_their_runs():
    quick = resolve_profile("quick")
    from agit.config import PRESETS

    assert quick["main_dataset"] == Path(PRESETS["quick"]["data"]).name and quick["datasets"][quick["main_dataset"]]["size"] == PRESETS["quick"]["size"]
    specs = run_specs(quick)
    main = quick["main_dataset"]
    cfgs = {k: reproduce.context("quick").config_for(s) for k, s in specs.items()}
    schedule = {(c.epochs, c.iters_per_epoch, c.batch_size, c.switch_epoch) for c in cfgs.values()
                if c.switch_epoch == PRESETS["quick"]["switch_epoch"]}
    assert len(schedule) == 1  # every run sees the same images for as long: none is shortened
    assert [cfgs[f"{main}/ours{s}"].seed for s in ("", "_seed1", "_seed2")] == [0, 1, 2]
    assert {f"{main}/{m}" for m in ("discogan", "ra", "dualgan", "unit")} <= set(specs)
    assert specs[f"{main}/d"].fork == ("ours", PRESETS["quick"]["switch_epoch"])
    assert all(s.fork for k, s in specs.items() if "/tau_" in k or "/switch_" in k)
    assert f"{main}/tau_0.1" not in specs  # the default threshold is the main run
    paper = run_specs(resolve_profile("paper"))
    assert {"horse2zebra/ours", "apple2orange/ours", "apple2orange/cyclegan", "horse2zebra/da"} <= set(paper)
    assert "apple2orange/da" not in paper  # ablations on the main dataset only
    assert reproduce.stage_names(["4", "05_figures", "explore"]) == ["04_kid_tables", "05_figures", "06_explore"]
    with pytest.raises(KeyError, match="unknown stage"):
        reproduce.stage_names(["99"])
    assert PAPER_TABLE1["Ours"]["H→Z"] == (6.93, 0.27) and PAPER_TABLE1["DiscoGAN"]["A→O"] == (18.34, 0.75)


def test_the_full_profile_gives_every_row_and_point_three_seeds_and_fig7_both_sides():
    quick, full = resolve_profile("quick"), resolve_profile("full")
    assert len(run_specs(quick)) == 20 and not [k for k in run_specs(quick) if "_seed" in k  # quick: no more runs
                                                and not k.split("/")[1].startswith(("ours", "cyclegan"))]
    specs, main = run_specs(full), full["main_dataset"]
    early, default, late, never = full["switch_epochs"]
    from agit.config import PRESETS

    assert early < default == PRESETS["quick"]["switch_epoch"] < late < never == PRESETS["quick"]["epochs"]
    for name in ("discogan", "unit", "cycle", "da", f"switch_{early}", f"switch_{never}", "tau_0.5"):
        assert {f"{main}/{name}", f"{main}/{name}_seed1", f"{main}/{name}_seed2"} <= set(specs), name
    assert specs[f"{main}/da_seed2"].fork == ("ours_seed2", default)  # seed N forks from seed N of Ours
    ctx = reproduce.context("full")
    assert ctx.seeds_of(f"{main}/da") == [f"{main}/da", f"{main}/da_seed1", f"{main}/da_seed2"]
    for pair in ("synthetic_fruit", "synthetic_stars", "synthetic_hard"):
        assert pair in full["datasets"] and f"{pair}/cyclegan_seed2" in specs and f"{pair}/cycle" not in specs


def final(run):
    return Run(run).load_checkpoint()


def test_forked_run_equals_training_from_scratch_and_runs_resume(tmp_path, keep_threads, capsys):
    ctx = reproduce.context("ci", tmp_path / "out", tmp_path / "data")
    ctx.prepare_data(check_kid=False)
    spec = ctx.spec("tau_0.3")
    cfg = ctx.config_for(spec)
    from agit.train import Trainer

    Trainer(cfg, tmp_path / "scratch").fit(progress=False)  # tau 0.3 from epoch 0
    ours = ctx.config_for(ctx.spec("ours"))
    Trainer(ours, ctx.run_dir("ours")).fit(epochs=1, progress=False)  # an interrupted main run
    ctx.ensure_runs(["tau_0.3"], evaluate=False)
    out = capsys.readouterr().out
    assert "ci/ours: resumed" in out and "ci/tau_0.3: forked" in out
    a, b = final(tmp_path / "scratch"), final(ctx.run_dir("tau_0.3"))
    assert a["epoch"] == b["epoch"] == cfg.epochs
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    # finished runs keep latest.pt and the checkpoints forks start from, nothing else
    assert sorted(p.name for p in (ctx.run_dir("ours") / "checkpoints").iterdir()) == ["epoch_0001.pt", "latest.pt"]
    assert sorted(p.name for p in (ctx.run_dir("tau_0.3") / "checkpoints").iterdir()) == ["latest.pt"]
    log = [json.loads(line) for line in (ctx.run_dir("tau_0.3") / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "iter" for r in log) == cfg.epochs * cfg.iters_per_epoch  # the shared epoch too
    ctx.ensure_runs(["tau_0.3"], evaluate=False)
    assert "ci/tau_0.3: reused" in capsys.readouterr().out
    (ctx.run_dir("tau_0.3") / "config.json").write_text(json.dumps({**cfg.to_dict(), "lr": 1.0}))
    with pytest.raises(RunMismatch, match="lr=1.0"):
        ctx.ensure_runs(["tau_0.3"], evaluate=False)


def test_cli_reproduce_rejects_unknown_stage(capsys):
    assert main(["reproduce", "--profile", "ci", "--stages", "nope"]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err


def test_notebooks_are_committed_stripped_with_a_parameters_cell():
    for stage in reproduce.STAGES:
        nb = nbformat.read(ROOT / "notebooks" / f"{stage}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"], stage
        assert 'os.environ.get("AGIT_PROFILE", "quick")' in code[0].source
        assert all(not c.outputs and c.execution_count is None for c in code), stage


def test_notebooks_match_their_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert set(gen.NOTEBOOKS) == set(reproduce.STAGES)
    for name, nb in gen.NOTEBOOKS.items():
        committed = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert nbformat.writes(nb) + "\n" == committed or nbformat.writes(nb) == committed, \
            f"notebooks/{name}.ipynb differs from tools/make_notebooks.py: run python tools/make_notebooks.py"


def test_runs_train_as_submitit_jobs(tmp_path, keep_threads):
    """The SLURM path with submitit's local cluster: same pickled job, same scheduler."""
    ctx = reproduce.context("ci", tmp_path / "out", tmp_path / "data", jobs=2,
                            executor="submitit:cluster=local,timeout_min=10")
    paths = ctx.ensure_runs(["ours", "tau_0.3", "cyclegan"], evaluate=False)
    for name, run in paths.items():
        assert final(run)["epoch"] == ctx.config_for(ctx.spec(name)).epochs, name
    assert any((tmp_path / "out" / "submitit").glob("*_log.out"))  # submitit's job logs


def test_bad_executor_is_refused_before_any_training(tmp_path, capsys):
    with pytest.raises(ValueError, match="expected 'submitit' or 'submitit:key=value"):
        reproduce.context("ci", tmp_path / "out", tmp_path / "data", executor="slurm:partition=gpu")
    assert main(["reproduce", "--profile", "ci", "--out", str(tmp_path / "o"), "--executor", "submitit:gpus"]) == 2
    assert "expected 'submitit'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs").exists()
