"""The command line as a user meets it: the schedule check, progress in a file and a terminal,
--set, --version, complete help, the README's commands, KID on two folders of ordinary images."""

import contextlib
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import agit
from agit import preset
from agit.cli import build_parser, main
from agit.config import PRESETS, check_schedule, parse_override

README = Path(__file__).resolve().parent.parent / "README.md"


# --------------------------------------------------------------------------- the schedule


def test_a_shortened_quick_run_is_refused_and_the_offered_schedule_trains_its_attention(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--data", str(tiny_data), "--epochs", "2", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "att_warmup_epochs 3" in err and "the attention would never train" in err
    assert not run.exists()
    offered = re.search(r"--set (.*)$", err.strip()).group(1).split()
    assert "--epochs 8" in err and offered == ["att_warmup_epochs=0", "switch_epoch=1", "decay_epoch=2"]
    cfg = preset("quick", epochs=2, **dict(map(parse_override, offered)))
    check_schedule(cfg)
    assert [cfg.stage(e).attention_frozen for e in range(2)] == [False, True]  # trained, then frozen


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_shortened_preset_is_refused_or_trains_its_attention_and_the_offer_fits(name):
    for epochs in range(1, PRESETS[name].get("epochs", 100) + 1):
        cfg = preset(name, epochs=epochs)
        try:
            check_schedule(cfg)
        except ValueError as refused:
            fixed = preset(name, epochs=epochs, **dict(map(parse_override, str(refused).split("--set ")[1].split())))
            check_schedule(fixed)
            cfg = fixed
        assert not all(cfg.stage(e).attention_frozen for e in range(epochs)), (name, epochs)
        assert max(cfg.att_warmup_epochs, cfg.switch_epoch, cfg.decay_epoch) <= epochs


# --------------------------------------------------------------------------- progress and --set


def _train_to_file(tiny_data, run, log, *more):
    with open(log, "w") as file, contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
        return main(["train", "--preset", "ci", "--data", str(tiny_data), "--out", str(run),
                     "--set", "n_samples=1", "seed=3", "--set", "iters_per_epoch=4", *more])


def test_a_run_written_to_a_file_has_one_line_per_epoch_and_no_carriage_returns(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr("agit.progress.LINE_EVERY", 3)  # a line every 3 iterations of the 4
    assert _train_to_file(tiny_data, tmp_path / "run", tmp_path / "log.txt") == 0
    text = (tmp_path / "log.txt").read_bytes().decode()  # read_text would turn \r into \n
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split("  ")[0] for line in lines if re.match(r"epoch \d/2 stage \d  ", line)] == \
        ["epoch 1/2 stage 1", "epoch 2/2 stage 2"]
    assert [line.split(",")[0] for line in lines if re.match(r"epoch \d/2 stage \d: ", line)] == \
        ["epoch 1/2 stage 1: 3/4 it", "epoch 2/2 stage 2: 3/4 it"]
    summary = next(line for line in lines if line.startswith("epoch 1/2 stage 1  "))
    assert re.search(r"  attention [\d.]+/[\d.]+  adv [\d.]+/[\d.]+ cyc [\d.]+/[\d.]+ d [\d.]+/[\d.]+$", summary)
    assert len(lines) == 7 and lines[1].startswith("schedule: 2 epochs × 4 iterations")  # + start, done
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["n_samples"], saved["seed"], saved["iters_per_epoch"]) == (1, 3, 4)  # --set, several pairs


def test_in_a_terminal_a_live_bar_and_the_epoch_lines_are_kept(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr("agit.progress.interactive", lambda: True)
    monkeypatch.setattr("shutil.get_terminal_size", lambda: os.terminal_size((80, 24)))
    assert _train_to_file(tiny_data, tmp_path / "run", tmp_path / "log.txt", "--epochs", "1") == 0
    text = (tmp_path / "log.txt").read_bytes().decode()  # read_text would turn \r into \n
    assert "\r" in text and re.search(r"\d/4 \[[\d:]+<[\d:?]+, +[\d.?]+(it/s|s/it)", text)  # the bar: rate, ETA
    # the epoch's line stays after the bar; at 80 columns its losses go on a line of their own
    assert re.search(r"(^|\r)epoch 1/1 stage 1  [\d.]+ s \(4 it\)  attention [\d.]+/[\d.]+\n  adv ", text, re.M)


@pytest.mark.parametrize("pair, said", [
    ("size=abc", "--set size: expects an integer, got 'abc'"),
    ("lr=fast", "--set lr: expects a number, got 'fast'"),
    ("epochs=none", "--set epochs: cannot be none (default 100)"),
    ("size=none", "--set size: cannot be none (default 256)"),
    ("shuffle=maybe", "--set shuffle: expects true or false, got 'maybe'"),
    ("nosuchkey=1", "unknown config key 'nosuchkey'"),
])
def test_a_bad_set_value_is_one_line_naming_its_key(tiny_data, tmp_path, capsys, pair, said):
    assert main(["train", "--preset", "ci", "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--set",
                 "seed=1", pair]) == 2
    assert capsys.readouterr().err == f"agit: error: {said}\n"
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- help and the README


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"agit {agit.__version__}\n"


def _parsers(parser, name="agit"):
    yield name, parser
    for action in parser._actions:
        for sub_name, sub in getattr(action, "choices", None).items() if hasattr(action, "_name_parser_map") else ():
            yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_and_every_command_a_description(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            assert action.help or hasattr(action, "_name_parser_map"), (name, action.dest)
            if action.option_strings and not action.required and action.default is None:
                assert "default" in action.help.lower(), (name, action.dest)  # else the formatter shows it
        assert parser.description or name == "agit data", name
    reproduce = dict(_parsers(build_parser()))["agit reproduce"].format_help()
    assert "submitit:slurm_partition=gpu,gpus_per_node=1,timeout_min=2880" in reproduce  # not broken mid-word
    train = dict(_parsers(build_parser()))["agit train"].format_help()
    assert "(default: [])" not in train and "(default: 2)" not in train


def _readme_commands() -> list[str]:
    """Every `agit …` command of the README's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("  #")[0].split(" # ")[0].strip() for line in text.splitlines()
            if line.strip().startswith("agit ")]


def _concrete(synopsis: str) -> tuple[list[str], dict[str, str]]:
    """A synopsis as arguments (optional parts included, the first of a|b, N -> 2) and its
    bracketed examples [--opt VALUE], which must show the parser's default where it has one."""
    shown = dict(re.findall(r"\[(--[\w-]+) ([^\]\s|]+)\]", synopsis))
    text = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split(" | ")[0], synopsis).replace("…", "")
    words = [w.split("|")[0] if not w.startswith("submitit") else w for w in shlex.split(text)[1:]]
    return [("2" if w == "N" else w) for w in words], shown


def test_the_readme_commands_parse_and_show_the_defaults():
    parsers = dict(_parsers(build_parser()))
    seen = set()
    for command in _readme_commands():
        argv, shown = _concrete(command)
        if argv == ["--version"]:  # exits; test_version runs it
            continue
        assert build_parser().parse_args(argv).func  # an unknown option or a bad value exits here, naming it
        name = "agit " + " ".join(argv[:2] if argv[0] == "data" else argv[:1])
        seen.add(name)
        for option, value in shown.items():
            default = next(a.default for a in parsers[name]._actions if option in a.option_strings)
            assert default is None or str(default) == value, (command, option, default)
    commands = {n for n in parsers if n.count(" ") == 1 and n != "agit data" or n.startswith("agit data ")}
    assert commands <= seen, f"missing from the README: {commands - seen}"


def test_every_module_is_in_the_module_map():
    """agit/README.md's module table is where a reader looks first: a module missing from it is hidden."""
    text = (Path(agit.__file__).parent / "README.md").read_text()
    table = text.split("## The modules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+)\.py`", table))
    modules = {p.stem for p in Path(agit.__file__).parent.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= named, f"not in agit/README.md's module map: {sorted(modules - named)}"


# --------------------------------------------------------------------------- KID on your own folders


@pytest.fixture(scope="module")
def ordinary_folders(tmp_path_factory):
    """Two folders of plain JPEGs of mixed sizes, no masks: warm-toned blobs vs cool-toned stripes."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for name, kind in (("warm", 0), ("cool", 1)):
        (root / name).mkdir()
        for i in range(14):
            h, w = rng.integers(28, 48, 2)
            y, x = np.mgrid[:h, :w]
            base = np.stack([np.full((h, w), c) for c in ((200, 120, 60) if kind == 0 else (60, 120, 200))], -1)
            pattern = (np.sin(x / 2 + i) > 0) if kind else ((y - h / 2) ** 2 + (x - w / 2) ** 2 < (h / 3) ** 2)
            image = base * (0.6 + 0.4 * pattern[..., None]) + rng.normal(0, 8, (h, w, 3))
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / name / f"{i:02d}.jpg")
    return root


def test_kid_of_two_folders_offline_and_evaluate_on_an_imported_pair(ordinary_folders, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AGIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))  # no Inception weights
    warm, cool = ordinary_folders / "warm", ordinary_folders / "cool"
    assert main(["kid", str(warm), str(cool)]) == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and "--data DATASET" in err and "domain-cnn" in err

    data = tmp_path / "data"
    assert main(["data", "import", "--a", str(warm), "--b", str(cool), "--name", "pair", "--root", str(data),
                 "--test-fraction", "0.3"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [f"{warm}: trainA 10, testA 4 images",
                                                         f"{cool}: trainB 10, testB 4 images"]
    kids = {}
    for b in (warm, cool):
        assert main(["kid", str(warm), str(b), "--data", str(data / "pair"), "--kid-subsets", "3"]) == 0
        out = capsys.readouterr().out
        assert "KID features: domain-cnn" in out and "KID on subsets of 14, not 50" in out
        kids[b.name] = float(re.search(r"^KID (-?[\d.]+) ±", out, re.M).group(1))
    assert abs(kids["warm"]) < 0.1 * kids["cool"]  # a folder against itself ~0, against the other far above

    run = tmp_path / "run"
    assert main(["train", "--preset", "ci", "--data", str(data / "pair"), "--out", str(run), "--epochs", "1",
                 "--set", "iters_per_epoch=1", "n_samples=1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run)]) == 0  # default features on a pair without masks or meta.json
    out = capsys.readouterr().out
    assert "KID features: domain-cnn" in out and re.search(r"KID on subsets of \d, not 50", out)
    assert re.search(r"^kid +-?[\d.e+-]+ +-?[\d.e+-]+", out, re.M) and re.search(r"^changed +[\d.]+", out, re.M)
    assert main(["evaluate", "--run", str(run), "--kid", "none"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and re.search(r"^att_mean +[\d.]+ +[\d.]+", out, re.M) and "n/a (need" in out


def test_notebooks_and_reproduce_take_a_folder_of_existing_runs(tmp_path):
    import nbformat

    from agit.profiles import context

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    for path in sorted(notebooks.glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        params = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
        assert "\nruns = " in params and "runs=runs or None" in "".join(c.source for c in cells), path.name
        assert all(line.count("=") <= 1 for line in params.splitlines()), path.name  # papermill skips others
    ctx = context("ci", tmp_path / "out", tmp_path / "data", runs=tmp_path / "kept")
    assert ctx.runs_dir == tmp_path / "kept" and ctx.out == tmp_path / "out"
    assert str(ctx.run_dir(next(iter(ctx.specs)))).startswith(str(tmp_path / "kept"))
    assert build_parser().parse_args(["reproduce", "--runs", "old/runs"]).runs == "old/runs"


def test_the_overlay_shows_on_red_and_orange_objects():
    import torch

    from agit.translate import overlay

    attention = torch.full((1, 4, 4), 255, dtype=torch.uint8)
    for rgb in ((220, 30, 30), (240, 140, 20)):  # a red apple, an orange
        image = torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, 4, 4)
        shown = overlay(image, attention)[:, 0, 0].float()
        assert (shown - image[:, 0, 0].float()).norm() > 150  # the fixed red moved them by 33 and 85
    assert torch.equal(overlay(image, torch.zeros_like(attention)), image)


def test_a_warning_is_one_line_without_source(tmp_path, monkeypatch, capsys):
    import warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    assert main(["info", str(tmp_path)]) == 2  # any command installs agit's format
    assert capsys.readouterr().err == f"agit: error: {tmp_path} is not a run folder: it has no config.json " \
                                      f"(agit train --out makes one)\n"
    assert warnings.formatwarning("cannot lock x", UserWarning, "/site/agit/locks.py", 48) == \
        "agit: warning: cannot lock x\n"
