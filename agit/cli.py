"""`agit …`: the command-line face of the package (notebooks are the other; both call the same functions).

Exit status: 0 done; 2 an error, told in one line; 75 (EX_TEMPFAIL) `agit train` stopped by
SIGINT, SIGTERM or SIGUSR1 after writing a checkpoint: interrupted, resumable with --resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import METHODS, PRESETS, VARIANTS, parse_override, preset

EXIT_ERROR = 2
EXIT_INTERRUPTED = 75  # sysexits.h EX_TEMPFAIL: "try again later" — with --resume


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

    run = import_checkpoint(args.checkpoint, args.out, args.overwrite, **dict(parse_override(kv) for kv in args.set))
    print(f"imported {args.checkpoint} -> {run} (preset official; agit translate / evaluate / info work on it)")


def cmd_translate(args) -> int:
    from .run import Run
    from .translate import translate_folder

    model = Run(args.run).load_model(args.checkpoint, args.device)
    tally = translate_folder(model, args.input, args.direction, args.out, args.size, args.recursive,
                             args.grid, args.overlay, progress=True)
    kinds = ["images", "attention"] + ["grid"] * args.grid + ["overlay"] * args.overlay
    scale = f"shorter side {args.size} px" if args.size else "each at its own size"
    print(f"{tally.summary()}\n({args.direction}, {scale}) -> {args.out}/{{{','.join(kinds)}}}")
    return 1 if tally.failed else 0


def cmd_info(args):
    from .info import run_summary

    print(run_summary(args.run))


def cmd_evaluate(args):
    from .evaluate import evaluate_run, format_table

    result = evaluate_run(args.run, args.data, args.kid, args.device, kid_subsets=args.kid_subsets,
                          kid_subset_size=args.kid_subset_size)
    print(format_table(result))
    print(f"{result['seconds']} s -> {args.run}/metrics.json")


def cmd_data(args):
    from . import data, synthetic

    if args.action == "synth":
        path = synthetic.make_synthetic(args.root, args.name, args.size, args.n_train, args.n_test,
                                        args.seed, args.background, args.empty_fraction, args.overlap,
                                        args.style)
    elif args.action == "download":
        path = data.download(args.name, args.root, args.url)
    else:
        path = data.import_folders(args.a, args.b, args.name, args.root, args.test_fraction, args.seed)
    print(path)


def cmd_reproduce(args):
    from .reproduce import reproduce

    reproduce(args.profile, args.stages, args.out, args.data, args.jobs, args.device, executor=args.executor)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train AGGAN (or a variant, or a baseline) on a dataset folder")
    t.add_argument("--data", help="dataset root with trainA/ trainB/ (default: the preset's)")
    t.add_argument("--preset", choices=list(PRESETS), help="default quick")
    t.add_argument("--method", choices=METHODS,
                   help="aggan (default) or a Table 1 baseline, with its own loss settings over the preset's "
                        "(--method cyclegan is --variant cyclegan)")
    t.add_argument("--variant", choices=VARIANTS, help="an AGGAN ablation (Table 2)")
    t.add_argument("--epochs", type=int, help="with --resume: may differ from the run's (e.g. more)")
    t.add_argument("--switch-epoch", type=int, help="first epoch of stage 2")
    t.add_argument("--out", help="run folder (default results/runs/<data>-<preset>-<variant or method>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out; settings that change what is learned must be the run's")
    t.add_argument("--overwrite", action="store_true",
                   help="start over in --out, deleting the run there (without it, such a folder is refused)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field")
    t.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser(
        "translate", help="translate images (a folder or one file) with a trained run, each at its own size",
        description="Translate every image of --input at its own size and aspect ratio. Per input NAME: "
                    "OUT/images/NAME.png (the translation) and OUT/attention/NAME.png (where it was applied), "
                    "both at the input's size; NAME keeps its extension, so photo.jpg and photo.png stay apart. "
                    "Exit status 1 if an image failed (the others are still written).")
    r.add_argument("--run", required=True)
    r.add_argument("--input", required=True, help="a folder of images, or one image file")
    r.add_argument("--direction", default="s2t", choices=["s2t", "t2s"],
                   help="s2t: source (A) to target (B); t2s: back")
    r.add_argument("--out", required=True)
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
    it.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override official's fields (e.g. size); the widths must be the checkpoint's")
    it.add_argument("--overwrite", action="store_true", help="replace the run files in --out")
    it.set_defaults(func=cmd_import_tf)

    n = sub.add_parser("info", help="what a run is: method, preset, data, schedule done, seed, metrics, version")
    n.add_argument("run")
    n.set_defaults(func=cmd_info)

    e = sub.add_parser("evaluate", help="KID (paper protocol) and ground-truth metrics of a run")
    e.add_argument("--run", required=True)
    e.add_argument("--data", help="dataset root (default: the run's)")
    e.add_argument("--kid", default="scene-cnn", choices=["inception", "scene-cnn", "domain-cnn", "none"],
                   help="feature extractor for KID: Inception (needs its weights file); offline: scene-cnn "
                        "(object and background labels, agit's synthetic data) or domain-cnn (any two folders)")
    e.add_argument("--kid-subsets", type=int, default=10)
    e.add_argument("--kid-subset-size", type=int, default=50)
    e.add_argument("--device")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("data", help="make, fetch or import a dataset")
    dsub = d.add_subparsers(dest="action", required=True)
    s = dsub.add_parser("synth", help="an embedded synthetic pair of domains, with masks and test counterfactuals")
    s.add_argument("--root", default="data")
    s.add_argument("--name", default="synthetic")
    s.add_argument("--size", type=int, default=PRESETS["quick"]["size"], help="image side (default: the quick preset's)")
    s.add_argument("--n-train", type=int, default=400)
    s.add_argument("--n-test", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--background", default="distinct", choices=["distinct", "shared"])
    s.add_argument("--empty-fraction", type=float, default=0.15)
    s.add_argument("--overlap", type=float, default=0.3,
                   help="chance that an image takes the other domain's background (0: fully domain-specific)")
    s.add_argument("--style", default="horse2zebra",
                   help="objects, coats and backgrounds: horse2zebra (default), apple2orange, star2leopard")
    g = dsub.add_parser("download", help="a CycleGAN dataset zip")
    g.add_argument("name")
    g.add_argument("--root", default="data")
    g.add_argument("--url", help="base URL (default $AGIT_DATASET_URL or the efrosgans host)")
    i = dsub.add_parser("import", help="two folders of images into the dataset layout")
    i.add_argument("--a", required=True, help="source-domain images")
    i.add_argument("--b", required=True, help="target-domain images")
    i.add_argument("--name", required=True)
    i.add_argument("--root", default="data")
    i.add_argument("--test-fraction", type=float, default=0.1)
    i.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_data)

    from .profiles import PROFILES, STAGES

    rp = sub.add_parser("reproduce", help="run the notebooks of a profile: every table and figure, one command")
    rp.add_argument("--profile", default="quick", choices=list(PROFILES),
                    help="ci: seconds (tests); quick: CPU minutes on synthetic data; paper: the paper's setting")
    rp.add_argument("--stages", nargs="+", metavar="STAGE",
                    help=f"notebooks to run, by number or name (default: all of the profile's: {' '.join(STAGES)})")
    rp.add_argument("--out", help="output folder (default results/<profile>)")
    rp.add_argument("--data", help="dataset root (default data/)")
    rp.add_argument("--jobs", type=int, help="independent runs trained in parallel processes")
    rp.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")
    rp.add_argument("--executor", metavar="submitit[:KEY=VALUE,...]",
                    help="train the runs as submitit jobs, e.g. on SLURM: "
                         "submitit:slurm_partition=gpu,gpus_per_node=1,timeout_min=2880 (--jobs: how many at once)")
    rp.set_defaults(func=cmd_reproduce)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
