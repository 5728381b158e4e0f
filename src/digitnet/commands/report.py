"""``digitnet report RUN_DIR`` (and ``train --report``): figures and a self-contained page.

Only argument parsing lives here; matplotlib and plotly are imported when the command runs
(see :mod:`digitnet.report`), so building the command line stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

from .common import CommandError, add_data_option, add_dataset_option, positive_int

NAME = "report"
PLOTS_MISSING = "needs matplotlib and plotly ({name} is not installed): pip install 'digitnet[plots]'"


def report_module() -> ModuleType:
    """:mod:`digitnet.report`, or a one-line error saying which plotting package is missing."""
    try:
        from .. import report
    except ImportError as exc:
        raise CommandError(PLOTS_MISSING.format(name=exc.name or "a plotting package")) from None
    return report


def run_report(run_dir: str | Path, data_dir: str | None = None, *, mistakes: int = 25,
               pca_points: int = 2000, dataset: str | None = None) -> Path:
    """Write a run directory's figures and report.html, printing what was written."""
    result = report_module().write_report(run_dir, data_dir=data_dir, mistakes=mistakes,
                                          pca_points=pca_points, dataset=dataset)
    for note in result.notes:
        print(f"note: {note}")
    print("figures: " + ", ".join(p.name for p in result.figures))
    print(f"report: {result.html}")
    return result.html


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="figures and a self-contained report.html for a run directory",
        description="Write PNG figures (training history, confusion matrix, precision/recall, "
                    "confident mistakes, sample digits, first-layer weights) and report.html "
                    "(all figures embedded, configuration and metrics tables, interactive 3-D "
                    "PCA; opens offline) into RUN_DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `digitnet train`")
    add_dataset_option(p)
    add_data_option(p)
    p.add_argument("--mistakes", type=positive_int, default=25, metavar="N",
                   help="how many confidently wrong digits to show (default: %(default)s)")
    p.add_argument("--pca-points", type=positive_int, default=2000, metavar="N",
                   help="test images in the 3-D PCA plots (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_report(args.run_dir, args.data, mistakes=args.mistakes, pca_points=args.pca_points,
               dataset=args.dataset)
    return 0
