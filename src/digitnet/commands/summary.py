"""``digitnet summary MODEL``: the model's classes, input scaling and loss, then its layers
as a table (output shape and parameter count of each), like Keras' ``summary()``; the same
table a notebook shows for a model."""

from __future__ import annotations

import argparse
import json

from .common import add_model_argument, load_model

NAME = "summary"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="a model's layers, output shapes and parameter counts",
                       description="Print what MODEL is: its classes, input scaling, loss and how it "
                                   "was trained, then a table of its layers with the output shape and "
                                   "parameter count of each.")
    add_model_argument(p)
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    clf = load_model(args.model)
    if args.json:
        layers = [{"layer": brief, "output_shape": shape, "parameters": n}
                  for brief, shape, n in clf.model.layer_table()]
        print(json.dumps({"classes": list(clf.classes), "normalization": clf.normalizer.method,
                          "loss": clf.loss.config(), "dtype": str(clf.model.dtype), "layers": layers,
                          "parameters": clf.model.num_parameters, "spec": clf.metadata.get("spec")},
                         indent=2))
    else:
        print(clf.summary())
    return 0
