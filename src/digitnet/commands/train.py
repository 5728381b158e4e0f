"""``digitnet train``: train a network from a run spec and write a run directory.

The spec comes from the defaults (the default recipe), ``--recipe NAME``, or ``--config
FILE`` (a TOML recipe or a run's own ``config.json``), with any setting flags on top.
``--resume RUN_DIR`` continues an unfinished run with its own settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError, add_data_option, add_spec_flags, given_spec_flags

NAME = "train"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="train a network and write a run directory",
        description="Train a network on MNIST (or --dataset NAME) and write a run directory (model.npz, "
                    "config.json, "
                    "metrics.json). With no options: the default recipe (784-256-10 ReLU, Adam, "
                    "cosine schedule, 10 epochs). Every setting flag sets the run-spec setting of the "
                    "same name (see --config).")
    source = p.add_argument_group("where the settings come from")
    source.add_argument("--config", metavar="FILE", default=None,
                        help="a run spec: a TOML recipe file, or a run's config.json to replay it; "
                             "setting flags override it")
    source.add_argument("--recipe", metavar="NAME", default=None,
                        help="a built-in recipe (see `digitnet reproduce --list`); flags override it")
    source.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the unfinished run bound for RUN_DIR (what --out was) from its "
                             "last checkpoint, with its own settings")
    add_spec_flags(p)
    out = p.add_argument_group("output")
    add_data_option(out)
    out.add_argument("--out", metavar="DIR", default=None,
                     help="run directory to write (default: runs/<timestamp>)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing run at --out (whole), or start an unfinished one again")
    out.add_argument("--no-checkpoint", action="store_true",
                     help="do not write the resumable checkpoint after every epoch")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar; one line per epoch instead (also the default when stderr "
                          "is not a terminal)")
    out.add_argument("--report", action="store_true",
                     help="also write figures and report.html into the run directory (digitnet report)")
    p.set_defaults(func=run)


def _spec_from(args: argparse.Namespace):
    from ..errors import SpecError
    from ..recipes import load_recipe
    from ..spec import RunSpec, load_spec

    flags = given_spec_flags(args)
    if args.resume is not None:
        extra = [f"--{k.replace('_', '-')}" for k in flags] + [
            opt for opt, given in (("--config", args.config), ("--recipe", args.recipe), ("--out", args.out))
            if given is not None]
        if extra:
            raise CommandError(f"--resume continues a run with its own settings and directory; "
                               f"drop {', '.join(extra)}")
        from ..runs import partial_path, start_run

        start_run(args.resume, resume=True)  # a clear error if there is nothing to resume
        spec, _ = load_spec(partial_path(args.resume) / "config.json")
        return spec
    if args.config is not None and args.recipe is not None:
        raise CommandError("give --config FILE or --recipe NAME, not both")
    if args.config is not None:
        spec, _ = load_spec(args.config)
    elif args.recipe is not None:
        spec = load_recipe(args.recipe).faithful
    else:
        spec = RunSpec()
    try:
        return spec.replace(**flags) if flags else spec
    except SpecError as exc:  # name the flag the user typed, not the spec's key
        table, _, name = str(getattr(exc, "key", "")).partition(".")
        if name in flags:
            problem = str(exc).split(": ", 1)[-1]
            raise CommandError(f"--{name.replace('_', '-')}: {problem}") from None
        raise


def run(args: argparse.Namespace) -> int:
    from ..experiment import run_training

    spec = _spec_from(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_training(spec, out=args.resume or args.out, data_dir=args.data, overwrite=args.overwrite,
                          resume=args.resume is not None, checkpoint=not args.no_checkpoint,
                          progress=False if args.no_progress else None, log=log)
    m = result.metrics
    accuracy = "n/a (no test split)" if m["test_accuracy"] is None else f"{m['test_accuracy']:.4f}"
    print(f"test accuracy: {accuracy}  ({m['epochs']} epochs, {m['train_seconds']:.1f} s of training)")
    print(f"run directory: {result.run_dir}")
    if args.report:
        from .report import run_report

        run_report(Path(result.run_dir), args.data)
    return 0
