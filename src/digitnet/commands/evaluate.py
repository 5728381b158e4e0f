"""``digitnet evaluate MODEL``: accuracy, confusion matrix and per-class scores on the test set;
with ``--robustness``, the accuracy as the test digits are rotated, shifted, scaled, thickened,
blurred, made noisy, covered or inverted (a table, ``robustness.json`` and a figure)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .common import (
    add_data_option,
    add_dataset_option,
    add_model_argument,
    load_model,
    load_test_data,
    model_path,
)

NAME = "evaluate"
ROBUSTNESS_FILE, ROBUSTNESS_FIGURE = "robustness.json", "robustness.png"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="accuracy, confusion matrix, per-class scores (and robustness) of a model",
                       description="Evaluate a model on the test images of the classes it knows, from "
                                   "the dataset it was trained on (or --dataset).")
    add_model_argument(p)
    add_dataset_option(p)
    add_data_option(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--robustness", action="store_true",
                   help="also measure accuracy under rotation, shift, scale, stroke thickness, blur, noise, "
                        "occlusion and inversion; writes robustness.json and robustness.png")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="with --robustness: where to write them (default: the run directory, or the model "
                        "file's directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics import classification_report, format_report

    clf = load_model(args.model)
    x, y = load_test_data(clf, args.data, args.dataset)
    classes = np.asarray(clf.classes)
    report = classification_report(np.searchsorted(classes, y), np.searchsorted(classes, clf.predict(x)),
                                   num_classes=len(classes), class_names=clf.class_names)
    results = None
    if args.robustness:
        from ..robustness import format_table, robustness

        results = robustness(clf.predict, x, y)
        out = Path(args.out) if args.out else model_path(args.model).parent
        written = write_robustness(out, results)
    if args.json:
        print(json.dumps({**report, "robustness": results} if results else report, indent=2))
        return 0
    print(format_report(report))
    if results is not None:
        print()
        print(format_table(results))
        print("written: " + ", ".join(str(p) for p in written))
    return 0


def write_robustness(directory: Path, results: dict) -> list[Path]:
    """``robustness.json`` and, when matplotlib is there, ``robustness.png`` in ``directory``."""
    from ..runs import write_json

    written = [write_json(directory / ROBUSTNESS_FILE, results)]
    try:
        from .. import plots
    except ImportError:  # the figure needs the plots extra; the numbers do not
        return written
    plots.plot_robustness([(directory.name or "model", results)], directory / ROBUSTNESS_FIGURE)
    return [*written, directory / ROBUSTNESS_FIGURE]
