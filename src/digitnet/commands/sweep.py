"""``digitnet sweep SPEC.toml``: many runs of one spec with some settings varied, on Ray Tune,
locally or on a Ray cluster (``--address``); ``--resume DIR`` continues an interrupted sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError, add_data_option, positive_int

NAME = "sweep"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="try many settings of a run spec on Ray Tune (grid, random or Optuna's TPE)",
        description="Run a hyperparameter sweep: SPEC is a run spec plus a [sweep] table naming the "
                    "settings to vary and how to search them. Every trial is a run directory under "
                    "DIR/trials; DIR/sweep.json records them all, DIR/best_config.json is the best "
                    "trial's spec (digitnet train --config replays it) and DIR/sweep.html plots them. "
                    "Trials are chosen by validation scores, never by the test set.")
    p.add_argument("spec", metavar="SPEC", nargs="?", default=None,
                   help="the sweep file (TOML: [data], [model], [training] and [sweep])")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the interrupted sweep in DIR with its own sweep file")
    p.add_argument("--out", metavar="DIR", default=None, help="sweep directory (default: sweeps/<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace the sweep in --out (whole)")
    ray = p.add_argument_group("Ray")
    ray.add_argument("--address", metavar="HOST:PORT", default=None,
                     help="join this Ray cluster (auto: the one started on this machine); default: start "
                          "a local Ray runtime on this machine's cores, on 127.0.0.1 only")
    ray.add_argument("--node-ip-address", metavar="IP", default=None,
                     help="this machine's address in the cluster (default: Ray's choice; 127.0.0.1 for a "
                          "local runtime or a cluster on a loopback address)")
    ray.add_argument("--cpus", type=positive_int, metavar="N", default=None,
                     help="cores of the local Ray runtime (default: all of them)")
    ray.add_argument("--parallel", type=positive_int, metavar="N", default=None,
                     help="trials at once (overrides [sweep] parallel)")
    add_data_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..sweep import format_table, load_sweep, run_sweep

    if (args.spec is None) == (args.resume is None):
        raise CommandError("give a sweep file SPEC, or --resume DIR to continue a sweep, not both"
                           if args.spec else "give a sweep file SPEC (or --resume DIR)")
    if args.resume is not None and (args.out or args.overwrite or args.parallel):
        given = [flag for flag, value in (("--out", args.out), ("--overwrite", args.overwrite),
                                          ("--parallel", args.parallel)) if value]
        raise CommandError(f"--resume continues a sweep with its own settings and directory; drop "
                           f"{', '.join(given)}")
    if args.resume is not None:
        from ..sweep import SWEEP_FILE, read_state

        read_state(Path(args.resume))  # a clear error if DIR holds no sweep
        sweep = load_sweep(Path(args.resume) / SWEEP_FILE)
    else:
        sweep = load_sweep(args.spec)
    if args.parallel is not None:
        sweep = dataclasses.replace(sweep, parallel=args.parallel)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    where = f"the Ray cluster at {args.address}" if args.address else "a local Ray runtime"
    log(f"sweep: {sweep.trials} trials ({sweep.search} search over {', '.join(p.name for p in sweep.params)})"
        f" on {where}, optimising {sweep.metric}")
    result = run_sweep(sweep, args.resume or args.out, address=args.address,
                       node_ip_address=args.node_ip_address, num_cpus=args.cpus, data_dir=args.data,
                       resume=args.resume is not None, overwrite=args.overwrite, log=log)
    print(format_table(result.rows, sweep))
    for row in result.rows:
        if row.error:
            print(f"{row.trial}: error: {row.error}")
    for note in result.notes:
        print(f"note: {note}")
    if result.best is not None:
        test = "n/a" if result.best_test_accuracy is None else f"{result.best_test_accuracy:.4f}"
        print(f"best trial: {result.best.trial}: {sweep.metric} {result.best.score:.4f}, test accuracy {test}"
              f"  ({result.best.run_dir})")
        print(f"best spec: {result.out / 'best_config.json'}  (digitnet train --config replays it)")
    print(f"sweep: {result.out / 'sweep.json'}" + (f", {result.page}" if result.page else "")
          + f"  ({result.wall_seconds:.0f} s)")
    if not result.finished:
        log(f"digitnet sweep: interrupted; resume with: digitnet sweep --resume {result.out}")
        return 130
    if result.best is None:
        log("digitnet sweep: error: no trial finished (see the errors above)")
        return 1
    return 0
