"""``digitnet evaluate MODEL``: accuracy, confusion matrix and per-class scores on the test set."""

from __future__ import annotations

import argparse
import json

import numpy as np

from .common import add_data_option, add_dataset_option, add_model_argument, load_model, load_test_data

NAME = "evaluate"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="accuracy, confusion matrix and per-class scores of a model",
                       description="Evaluate a model on the test images of the classes it knows, from "
                                   "the dataset it was trained on (or --dataset).")
    add_model_argument(p)
    add_dataset_option(p)
    add_data_option(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics import classification_report, format_report

    clf = load_model(args.model)
    x, y = load_test_data(clf, args.data, args.dataset)
    classes = np.asarray(clf.classes)
    report = classification_report(np.searchsorted(classes, y), np.searchsorted(classes, clf.predict(x)),
                                   num_classes=len(classes), class_names=clf.class_names)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
