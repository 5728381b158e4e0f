"""``digitnet export MODEL --onnx FILE``: the model as an ONNX graph from raw 0-255 pixels to
labels and probabilities, checked in onnxruntime before it is written.

The ``onnx`` package is imported when the command runs (the ``onnx`` extra)."""

from __future__ import annotations

import argparse

import numpy as np

from .common import add_model_argument, load_model, positive_int

NAME = "export"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="write a model as ONNX (raw pixels in; labels and probabilities out)",
        description="Write MODEL as an ONNX graph that includes its input scaling: it takes raw "
                    "0-255 pixels (float32, n x 784) and gives 'label' (int64) and 'probabilities'; "
                    "the class labels are in its metadata. Before writing, the graph is run in "
                    "onnxruntime (when installed) on random images and compared with digitnet.")
    add_model_argument(p)
    p.add_argument("--onnx", metavar="FILE", required=True, help="the ONNX file to write, e.g. model.onnx")
    p.add_argument("--check-images", metavar="N", type=positive_int, default=1000,
                   help="random images to compare onnxruntime and digitnet on (default: 1000)")
    p.add_argument("--no-check", action="store_true", help="write without running onnxruntime")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import write_bytes
    from ..errors import ExportError
    from ..export import onnx_module

    exporter = onnx_module()
    clf = load_model(args.model)
    graph = exporter.to_onnx(clf)
    check = None
    if not args.no_check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("note: not checked: onnxruntime is not installed (pip install 'digitnet[onnx]')")
        else:
            pixels = np.random.default_rng(0).integers(0, 256, size=(args.check_images, clf.n_features))
            check = exporter.check_with_onnxruntime(graph, clf, pixels.astype(np.uint8))
            if check["label_mismatches"] or check["max_probability_difference"] > 1e-4:
                raise ExportError(f"onnxruntime disagrees with digitnet on {check['images']} random images "
                                  f"({check['label_mismatches']} labels differ, probabilities by up to "
                                  f"{check['max_probability_difference']:.2g}); {args.onnx} not written")
    data = graph.SerializeToString()
    path = write_bytes(args.onnx, data)
    sample = ", ".join(map(str, clf.model.input_shape))
    print(f"wrote {path} ({len(data) / 1e6:.2f} MB): input 'pixels' float32 (n, {sample}), raw 0-255; "
          f"outputs 'label' int64 (n,) and 'probabilities' (n, {len(clf.classes)}); "
          f"classes {dict(clf.facts())['classes']} (in its metadata)")
    if check is not None:
        print(f"checked in onnxruntime {check['onnxruntime']} on {check['images']:,} random images: "
              f"same labels, probabilities within {check['max_probability_difference']:.1e} of digitnet's")
    return 0
