"""``digitnet report RUN_DIR`` and ``digitnet compare RUN_DIR...`` (and ``train --report``).

Only argument parsing lives here; matplotlib and plotly are imported when a command
runs (see :mod:`digitnet.report`), so building the command line stays light.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli import CommandError, add_data_option, positive_int

PLOTS_MISSING = "needs matplotlib and plotly ({name} is not installed): pip install 'digitnet[plots]'"


def _report_module():
    try:
        from . import report
    except ImportError as exc:
        raise CommandError(PLOTS_MISSING.format(name=exc.name or "a plotting package")) from None
    return report


def run_report(run_dir: str | Path, data_dir: str | None = None, *, mistakes: int = 25,
               pca_points: int = 2000) -> Path:
    """Write a run directory's figures and report.html, printing what was written."""
    result = _report_module().write_report(run_dir, data_dir=data_dir, mistakes=mistakes,
                                           pca_points=pca_points)
    for note in result.notes:
        print(f"note: {note}")
    print("figures: " + ", ".join(p.name for p in result.figures))
    print(f"report: {result.html}")
    return result.html


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="figures and a self-contained report.html for a run directory",
        description="Write PNG figures (training history, confusion matrix, precision/recall, "
                    "confident mistakes, sample digits, first-layer weights) and report.html "
                    "(all figures embedded, configuration and metrics tables, interactive 3-D "
                    "PCA; opens offline) into RUN_DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `digitnet train`")
    add_data_option(p)
    p.add_argument("--mistakes", type=positive_int, default=25, metavar="N",
                   help="how many confidently wrong digits to show (default: %(default)s)")
    p.add_argument("--pca-points", type=positive_int, default=2000, metavar="N",
                   help="test images in the 3-D PCA plots (default: %(default)s)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    run_report(args.run_dir, args.data, mistakes=args.mistakes, pca_points=args.pca_points)
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="overlay several runs' validation curves and tabulate their final metrics",
        description="Print a table of settings and final metrics of each RUN_DIR and write one "
                    "figure overlaying their validation accuracy and loss per epoch.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories written by `digitnet train`")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="the figure to write: a .png file, or a directory for compare.png "
                        "(default: compare.png in the current directory)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    report = _report_module()
    rows, path = report.compare_runs(args.run_dirs, args.out)
    if args.json:
        print(json.dumps({"runs": rows, "figure": str(path)}, indent=2))
    else:
        print(report.format_table(rows))
        print(f"figure: {path}")
    return 0
