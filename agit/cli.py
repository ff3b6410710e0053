"""`agit …`: the command-line face of the package (notebooks are the other; both call the same functions).

Exit status: 0 done; 2 an error, told in one line; 75 (EX_TEMPFAIL) `agit train` stopped by
SIGINT, SIGTERM, SIGUSR1 or SIGUSR2 (SLURM's and submitit's warnings) after writing a checkpoint:
interrupted, resumable with --resume; 75 too for any command stopped by one of them elsewhere
(at start-up, in translate): run it again.
"""

from __future__ import annotations

import argparse
import functools
import sys
import textwrap
import warnings
from pathlib import Path

from . import __version__
from .config import METHODS, PRESETS, VARIANTS, parse_override, preset
from .signals import Stopped, stop_now, stop_signals

EXIT_ERROR = 2
EXIT_INTERRUPTED = 75  # sysexits.h EX_TEMPFAIL: "try again later" — with --resume
KID_HELP = ("KID features. auto: scene-cnn on agit's synthetic data, else inception if its weights file is on "
            "this machine, else domain-cnn; inception: the paper's (torch-fidelity's weights file); offline: "
            "scene-cnn (object and background labels of agit's synthetic data), domain-cnn (a classifier of the "
            "dataset's two domains, any pair of folders; comparable only within that dataset)")


OVERWRITE_DATASET = ("replace a dataset of that name made otherwise (without it, refused); files of "
                     "yours in it are kept")


def default_run_dir(cfg) -> Path:
    return Path("results") / "runs" / f"{Path(cfg.data).name}-{cfg.preset}-{cfg.run_name}"


def cmd_train(args):
    from .train import Trainer

    overrides = dict(parse_override(kv) for kv in args.set)
    for key, value in (("data", args.data), ("method", args.method), ("variant", args.variant),
                       ("epochs", args.epochs), ("switch_epoch", args.switch_epoch)):
        if value is not None:
            overrides[key] = value
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite deletes it: choose one")
    if args.resume:
        if not args.out:
            raise SystemExit("agit: error: --resume needs --out RUN (the run to continue)")
        if args.preset:  # compared with the run's like any other setting
            overrides["preset"] = args.preset
        trainer = Trainer.resume(args.out, args.device, **overrides)
    else:
        cfg = preset(args.preset or "quick", **overrides)
        trainer = Trainer(cfg, args.out or default_run_dir(cfg), args.device, overwrite=args.overwrite)
    say = print if trainer.is_main_rank else (lambda *a: None)  # one voice under torchrun
    ranks = f", {trainer.world} ranks" if trainer.world > 1 else ""
    say(f"training {trainer.cfg.preset}/{trainer.cfg.run_name} on {trainer.cfg.data} "
        f"({trainer.device}{ranks}) -> {trainer.run}")
    trainer.fit()
    say(f"done: {trainer.run}")


def cmd_import_tf(args):
    from .import_tf import import_checkpoint
    from .released import source_domain

    run = import_checkpoint(args.checkpoint, args.out, args.overwrite, args.swap_domains,
                            **dict(parse_override(kv) for kv in args.set))
    print(f"imported {args.checkpoint} -> {run} (preset official; its domain {source_domain(args.swap_domains)} is "
          f"the source, s2t its "
          f"{'B->A' if args.swap_domains else 'A->B'} generator; agit translate / evaluate / info work on it)")


def cmd_translate(args) -> int:
    from .run import Run
    from .translate import translate_folder

    model = Run(args.run).load_model(args.checkpoint, args.device)
    tally = translate_folder(model, args.input, args.direction, args.out, args.size, args.recursive,
                             args.grid, args.overlay, progress=True)
    kinds = ["images", "attention"] + ["grid"] * args.grid + ["overlay"] * args.overlay
    scale = f"shorter side {args.size} px" if args.size else "each at its own size"
    print(f"{tally.summary()}\n({args.direction}, {scale}) -> {args.out}/{{{','.join(kinds)}}}")
    if tally.stopped:
        print(f"agit: interrupted by {tally.stopped} after {len(tally.translated)} images, "
              f"{len(tally.not_reached)} not reached; run the same command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if tally.failed else 0


def cmd_info(args):
    from .info import run_summary

    print(run_summary(args.run))


def cmd_evaluate(args):
    from .evaluate import evaluate_run, format_table

    result = evaluate_run(args.run, args.data, args.kid, args.device, kid_subsets=args.kid_subsets,
                          kid_subset_size=args.kid_subset_size)
    if result["kid_note"]:
        print(result["kid_note"])
    print(format_table(result))
    print(f"{result['seconds']} s -> {args.run}/metrics.json")


def cmd_kid(args):
    from .evaluate import folder_kid

    r = folder_kid(args.a_dir, args.b_dir, args.kid, args.data, args.kid_subsets, args.kid_subset_size,
                   args.device or "cpu")
    if r["kid_note"]:
        print(r["kid_note"])
    print(f"KID {r['kid']:.5f} ± {r['kid_std']:.5f} (x100, as the paper: {100 * r['kid']:.3f} ± "
          f"{100 * r['kid_std']:.3f}); {r['kid_extractor']} features, {r['kid_subsets']} subsets of "
          f"{r['kid_subset_size']}, {r['counts'][0]} and {r['counts'][1]} images")
    if r["kid"] < 0:
        print("(below 0: the unbiased estimator's noise around 0; the two sets are indistinguishable to these features)")


def cmd_data(args):
    from . import data, synthetic

    if args.action == "synth" and args.like:
        path = synthetic.make_stand_in(args.root, args.like, args.size or data.CYCLEGAN_SIZE, args.fraction,
                                       args.n_train, args.n_test, args.seed)
    elif args.action == "synth":
        path = synthetic.make_synthetic(args.root, args.name, args.size or PRESETS["quick"]["size"],
                                        args.n_train or 400, args.n_test or 100, args.seed, args.background,
                                        args.empty_fraction, args.overlap, args.style, args.overwrite)
    elif args.action == "download":
        path = data.download(args.name, args.root, args.url)
    else:
        path = data.import_folders(args.a, args.b, args.name, args.root, args.test_fraction, args.seed,
                                   args.overwrite)
        for domain, source in zip("AB", (args.a, args.b)):
            skipped = data.not_images(Path(source))
            print(f"{source}: train{domain} {len(data.list_images(path / f'train{domain}'))}, "
                  f"test{domain} {len(data.list_images(path / f'test{domain}'))} images"
                  + (f"; {len(skipped)} entries skipped, not images ({', '.join(skipped[:3])}"
                     f"{', …' if len(skipped) > 3 else ''})" if skipped else ""))
    print(path)


def cmd_reproduce(args):
    from .profiles import profile_preset, resolve_profile
    from .reproduce import reproduce

    if args.size and not args.smoke:
        raise ValueError("--size sets the preflight's image size: it needs --smoke")
    smoke = (args.size or profile_preset(resolve_profile(args.profile)).size) if args.smoke else 0
    reproduce(args.profile, args.stages, args.out, args.data, args.jobs, args.device, executor=args.executor,
              smoke=smoke, runs=args.runs)


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default after its help unless the help names it; long tokens (an
    --executor example) kept whole on their own line rather than broken mid-word."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                and "default" not in text:
            text += " (default: %(default)s)"
        return text

    def _split_lines(self, text, width):
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width,
                             break_long_words=False, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """agit's parser; its sub-commands' parsers are of this class too, so they share the formatter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=HelpFormatter, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="agit", description=__doc__)
    p.add_argument("--version", action="version", version=f"agit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train AGGAN (or a variant, or a baseline) on a dataset folder",
                       description="Train AGGAN, one of its Table 2 variants, or a Table 1 baseline on a "
                                   "folder with trainA/ and trainB/ (agit data synth/import/download makes "
                                   "one). The run folder gets config.json, log.jsonl, samples/ and "
                                   "checkpoints/; the schedule is checked before anything is trained.")
    t.add_argument("--data", help="dataset root with trainA/ trainB/ (default: the preset's)")
    t.add_argument("--preset", choices=list(PRESETS),
                   help="official (the released code), paper (its text), quick (CPU minutes), ci (seconds); "
                        "default quick")
    t.add_argument("--method", choices=METHODS,
                   help="aggan (default) or a Table 1 baseline, with its own loss settings over the preset's "
                        "(--method cyclegan is --variant cyclegan)")
    t.add_argument("--variant", choices=VARIANTS, help="an AGGAN ablation (Table 2); default ours")
    t.add_argument("--epochs", type=int,
                   help="default: the preset's; shorter than the preset's schedule is refused, naming the "
                        "fields to shorten with it; with --resume: may differ from the run's (e.g. more)")
    t.add_argument("--switch-epoch", type=int,
                   help="epochs of stage 1 before stage 2 (attention frozen, D sees attended pixels); "
                        "default: the preset's")
    t.add_argument("--out", help="run folder (default results/runs/<data>-<preset>-<variant or method>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out; settings that change what is learned must be the run's")
    t.add_argument("--overwrite", action="store_true",
                   help="start over in --out, deleting the run there (without it, such a folder is refused)")
    t.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any config field, typed like its default (none where the default is none); "
                        "several: --set lr=1e-4 batch_size=2")
    t.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser(
        "translate", help="translate images (a folder or one file) with a trained run, each at its own size",
        description="Translate every image of --input at its own size and aspect ratio. Per input NAME: "
                    "OUT/images/NAME.png (the translation) and OUT/attention/NAME.png (where it was applied), "
                    "both at the input's size; NAME keeps its extension, so photo.jpg and photo.png stay apart. "
                    "Exit status 1 if an image failed (the others are still written).")
    r.add_argument("--run", required=True, help="a run folder (agit train --out)")
    r.add_argument("--input", required=True, help="a folder of images, or one image file")
    r.add_argument("--direction", default="s2t", choices=["s2t", "t2s"],
                   help="s2t: source (A) to target (B); t2s: back")
    r.add_argument("--out", required=True, help="output folder (created; files there are replaced)")
    r.add_argument("--size", type=int, metavar="N",
                   help="resize each image so that its shorter side is N px before translating (aspect kept; "
                        "outputs come back at the input's size, the input's own pixels kept where attention "
                        "is 0). The networks learned objects at the scale of the training images (e.g. 256 px): "
                        "a photo much larger or smaller than that shows them objects far larger or smaller than "
                        "they learned, and a large one needs memory in proportion to its pixels. Start with the "
                        "run's training size (agit info RUN shows it). Default: each image at its own size")
    r.add_argument("--recursive", action="store_true", help="also the images in sub-folders (mirrored in OUT)")
    r.add_argument("--grid", action="store_true", help="also OUT/grid/NAME.png: input | attention | output")
    r.add_argument("--overlay", action="store_true", help="also OUT/overlay/NAME.png: the attention over the input")
    r.add_argument("--checkpoint", help="a checkpoint file (default RUN/checkpoints/latest.pt)")
    r.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    r.set_defaults(func=cmd_translate)

    it = sub.add_parser("import-tf", help="a checkpoint of the authors' released TensorFlow code as an agit run "
                                          "(needs TensorFlow: pip install 'agit[crosscheck]')")
    it.add_argument("checkpoint", help="AGGAN-N (prefix), its .index or .data-* file, or the folder holding it")
    it.add_argument("--out", required=True, help="the run folder to write")
    it.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override official's fields (e.g. size); the widths must be the checkpoint's")
    it.add_argument("--overwrite", action="store_true", help="replace the run files in --out")
    it.add_argument("--swap-domains", action="store_true",
                    help="make the checkpoint's domain B (input_b) the source, its B->A generator s2t (default: A is "
                         "the source); the authors' horse2zebra model was trained with input_a = zebra")
    it.set_defaults(func=cmd_import_tf)

    n = sub.add_parser("info", help="what a run is: method, preset, data, schedule done, seed, metrics, version")
    n.add_argument("run", help="a run folder (agit train --out)")
    n.set_defaults(func=cmd_info)

    e = sub.add_parser("evaluate", help="KID (paper protocol) and ground-truth metrics of a run")
    e.add_argument("--run", required=True, help="a run folder (agit train --out)")
    e.add_argument("--data", help="dataset root (default: the run's)")
    e.add_argument("--kid", default="auto", choices=["auto", "inception", "scene-cnn", "domain-cnn", "none"],
                   help=KID_HELP + "; none: no KID, the metrics that need no features (default: auto)")
    e.add_argument("--kid-subsets", type=int, default=10, help="random subsets KID is averaged over (paper: 10)")
    e.add_argument("--kid-subset-size", type=int, default=50,
                   help="images per subset (paper: 50); smaller test sets use all their images, and say so")
    e.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    e.set_defaults(func=cmd_evaluate)

    k = sub.add_parser("kid", help="KID between two folders of images (as torch-fidelity's fidelity --kid)",
                       description="KID (Binkowski et al.) between the images of two folders, e.g. translations "
                                   "against the real target images: the lower, the closer the two sets.")
    k.add_argument("a_dir", help="a folder of images (e.g. agit translate's OUT/images)")
    k.add_argument("b_dir", help="another folder of images (e.g. the target domain's test images)")
    k.add_argument("--kid", default="auto", choices=["auto", "inception", "scene-cnn", "domain-cnn"],
                   help=KID_HELP + " (default: auto)")
    k.add_argument("--data", help="dataset (trainA/ trainB/) that the offline domain-cnn or scene-cnn features "
                                  "are learned on; needed without the Inception weights (default: none)")
    k.add_argument("--kid-subsets", type=int, default=10, help="random subsets KID is averaged over")
    k.add_argument("--kid-subset-size", type=int, default=50,
                   help="images per subset; smaller folders use all their images, and say so")
    k.add_argument("--device", help="cuda, cuda:1, cpu (default: cpu)")
    k.set_defaults(func=cmd_kid)

    d = sub.add_parser("data", help="make, fetch or import a dataset")
    dsub = d.add_subparsers(dest="action", required=True)
    s = dsub.add_parser("synth", help="an embedded synthetic pair of domains, with masks and test counterfactuals")
    s.add_argument("--root", default="data", help="folder the dataset goes into")
    s.add_argument("--name", default="synthetic", help="dataset folder name: ROOT/NAME")
    s.add_argument("--like", choices=["horse2zebra", "apple2orange"],
                   help="a stand-in for this CycleGAN dataset: its name, style and image counts, 256 px; "
                        "marked as a stand-in in its meta.json and in every table and report built on it (default: none, "
                        "the embedded pair)")
    s.add_argument("--fraction", type=float, default=1.0, help="with --like: this share of the real counts")
    s.add_argument("--size", type=int, help=f"image side (default: the quick preset's, {PRESETS['quick']['size']}; "
                                            "256 with --like)")
    s.add_argument("--n-train", type=int, help="images per train folder (default 400; with --like the real counts)")
    s.add_argument("--n-test", type=int,
                   help="images per test folder, with masks (default 100; with --like the real counts)")
    s.add_argument("--seed", type=int, default=0, help="the same seed makes the same images")
    s.add_argument("--background", default="distinct", choices=["distinct", "shared"],
                   help="distinct: each domain its own background (the paper's tension); shared: one for both")
    s.add_argument("--empty-fraction", type=float, default=0.15, help="share of images without an object")
    s.add_argument("--overlap", type=float, default=0.3,
                   help="chance that an image takes the other domain's background (0: fully domain-specific)")
    s.add_argument("--style", default="horse2zebra",
                   help="objects, coats and backgrounds: horse2zebra (default), apple2orange, star2leopard")
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_DATASET)
    g = dsub.add_parser("download", help="a CycleGAN dataset zip")
    from .data import CYCLEGAN_DATASETS

    g.add_argument("name", help=f"one of {', '.join(CYCLEGAN_DATASETS)}")
    g.add_argument("--root", default="data", help="folder the dataset goes into")
    g.add_argument("--url", help="base URL (default $AGIT_DATASET_URL or the efrosgans host)")
    i = dsub.add_parser("import", help="two folders of images into the dataset layout")
    i.add_argument("--a", required=True, help="source-domain images")
    i.add_argument("--b", required=True, help="target-domain images")
    i.add_argument("--name", required=True, help="dataset folder name: ROOT/NAME")
    i.add_argument("--root", default="data", help="folder the dataset goes into")
    i.add_argument("--test-fraction", type=float, default=0.1, help="share of each domain held out as test images")
    i.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    i.add_argument("--overwrite", action="store_true", help=OVERWRITE_DATASET)
    d.set_defaults(func=cmd_data)

    from .profiles import PROFILES, STAGES

    rp = sub.add_parser("reproduce", help="run the notebooks of a profile: every table and figure, one command")
    rp.add_argument("--profile", default="quick", choices=list(PROFILES),
                    help="ci: seconds (tests); quick: CPU minutes on synthetic data; paper: the paper's setting")
    rp.add_argument("--stages", nargs="+", metavar="STAGE",
                    help=f"notebooks to run, by number or name (default: all of the profile's: {' '.join(STAGES)})")
    rp.add_argument("--out", help="output folder (default results/<profile>)")
    rp.add_argument("--data", help="dataset root (default data/)")
    rp.add_argument("--runs", metavar="DIR",
                    help="a folder of existing runs to reuse (e.g. another --out's runs/): finished runs are "
                         "kept, missing ones trained there (default OUT/runs)")
    rp.add_argument("--jobs", type=int, help="independent runs trained in parallel processes (default: the profile's)")
    rp.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    rp.add_argument("--executor", metavar="submitit[:KEY=VALUE,...]",
                    help="train the runs as submitit jobs, e.g. on SLURM: "
                         "submitit:slurm_partition=gpu,gpus_per_node=1,timeout_min=2880 (--jobs: how many at once; "
                         "default: local processes)")
    rp.add_argument("--smoke", action="store_true",
                    help="a preflight: the profile as it is, every run cut to a few iterations (switch and decay at "
                         "scaled epochs), into results/<profile>-smoke; checks the data and weights and estimates "
                         "the full profile's time from the steps it timed")
    rp.add_argument("--size", type=int, metavar="N", help="with --smoke: train at N px (default: the preset's)")
    rp.set_defaults(func=cmd_reproduce)
    for group in (sub, dsub):  # a sub-command without a description of its own shows its help as one
        for pseudo in group._choices_actions:
            group.choices[pseudo.dest].description = group.choices[pseudo.dest].description or pseudo.help
    return p


def stoppable(command):
    """Stop signals, from the first line on, end `command` with exit status 75 and one line:
    where nothing is in progress that could be finished first (start-up: imports, building the
    model), they stop it at once (signals.stop_now); train and translate finish an iteration or
    an image first, with handlers of their own."""
    @functools.wraps(command)
    def run(argv=None) -> int:
        with stop_signals(stop_now):
            try:
                return command(argv)
            except Stopped as stop:
                print(f"agit: interrupted by {stop}; run the same command again", file=sys.stderr)
                return EXIT_INTERRUPTED
    return run


@stoppable
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda message, *rest, **kw: f"agit: warning: {message}\n"  # one line, no source
    from .data import DataError
    from .train import Interrupted, TrainingDiverged

    try:
        status = args.func(args)
    except Interrupted as stop:
        print(f"agit: interrupted, resumable: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DataError, KeyError, ValueError, OSError, TrainingDiverged, RuntimeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"agit: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
