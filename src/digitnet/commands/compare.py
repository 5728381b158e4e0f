"""``digitnet compare RUN_DIR...``: a table of several runs' settings and final metrics, and
one figure overlaying their validation curves. Unfinished runs are skipped with a note."""

from __future__ import annotations

import argparse
import json

from .report import report_module

NAME = "compare"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="overlay several runs' validation curves and tabulate their final metrics",
        description="Print a table of settings and final metrics of each RUN_DIR and write one "
                    "figure overlaying their validation accuracy and loss per epoch. Unfinished "
                    "runs (RUN.partial) are skipped with a note.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories written by `digitnet train`")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="the figure to write: a .png file, or a directory for compare.png "
                        "(default: compare.png in the current directory)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = report_module()
    comparison = report.compare_runs(args.run_dirs, args.out)
    if args.json:
        robust = comparison.robustness_figure
        print(json.dumps({"runs": comparison.rows, "figure": str(comparison.figure),
                          "robustness_figure": None if robust is None else str(robust),
                          "notes": comparison.notes}, indent=2))
        return 0
    for note in comparison.notes:
        print(f"note: {note}")
    print(report.format_table(comparison.rows))
    print(f"figure: {comparison.figure}")
    if comparison.robustness_figure is not None:
        print(f"robustness figure: {comparison.robustness_figure}")
    return 0
