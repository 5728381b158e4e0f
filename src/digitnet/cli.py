"""The ``digitnet`` command line.

    digitnet train [options]          train on MNIST, write a run directory
    digitnet evaluate MODEL           accuracy, confusion matrix, per-class scores
    digitnet predict MODEL IMAGE...   your own images: the digit and ten probabilities
    digitnet predict MODEL --index N  an MNIST test image

Errors a user can cause (a bad option, a missing file, no data) print one line
and exit non-zero; only bugs print tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import __version__
from .errors import DigitnetError

EXIT_USAGE = 2
EXIT_ERROR = 1


class CommandError(DigitnetError):
    """An error to report to the user as one line."""


# --------------------------------------------------------------------------- parsing helpers
def int_list(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> ``(256, 128)``; ``""`` or ``"none"`` -> ``()``."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", default=None,
                   help="directory with the four MNIST IDX files (default: $DIGITNET_DATA, "
                        "then the cache, then download)")


# --------------------------------------------------------------------------- commands
def add_train_parser(sub: argparse._SubParsersAction) -> None:
    from .experiment import TrainConfig
    from .nn.model import ACTIVATIONS
    from .nn.optim import OPTIMIZERS, SCHEDULES

    d = TrainConfig()
    p = sub.add_parser("train", help="train a network on MNIST and write a run directory",
                       description="Train a network on MNIST. With no options: the default "
                                   "recipe (784-256-10 ReLU, Adam, cosine schedule, 10 epochs).")
    p.add_argument("--hidden", type=int_list, default=d.hidden, metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default: %(default)s)")
    p.add_argument("--activation", choices=sorted(set(ACTIVATIONS) - {"softmax"}),
                   default=d.activation)
    p.add_argument("--loss", choices=["cross_entropy", "mse", "binary_cross_entropy"],
                   default=d.loss)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS) + ["momentum", "nesterov"],
                   default=d.optimizer)
    p.add_argument("--lr", type=positive_float, default=d.lr, help="learning rate")
    p.add_argument("--momentum", type=float, default=None,
                   help="momentum for sgd (default 0.9 for momentum/nesterov)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=sorted(SCHEDULES) + ["none"], default=d.schedule,
                   help="learning-rate schedule (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="samples per step; 0 for full batch (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--normalization", choices=["unit", "symmetric", "zscore", "minmax"],
                   default=d.normalization, help="input scaling (default: %(default)s)")
    p.add_argument("--valid-size", type=int, default=d.valid_size,
                   help="training images held out for validation (default: %(default)s)")
    p.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation improvement")
    p.add_argument("--digits", type=int_list, default=None,
                   help="train on these digits only, e.g. 0,1")
    p.add_argument("--seed", type=int, default=d.seed)
    add_data_option(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="run directory to write (default: runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--report", action="store_true",
                   help="also write figures and report.html into the run directory (digitnet report)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import TrainConfig, run_training

    if args.batch_size < 0:
        raise CommandError(f"--batch-size must be >= 0, got {args.batch_size}")
    if not 0 <= args.dropout < 1:
        raise CommandError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.digits is not None and (len(args.digits) < 2 or any(dg > 9 for dg in args.digits)
                                    or len(set(args.digits)) != len(args.digits)):
        raise CommandError(f"--digits needs two or more distinct digits 0-9, got {args.digits}")
    if args.loss == "binary_cross_entropy" and (args.digits is None or len(args.digits) != 2):
        raise CommandError("--loss binary_cross_entropy needs exactly two --digits, e.g. 0,1")
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["schedule"] = None if args.schedule == "none" else args.schedule
    values["digits"] = tuple(args.digits) if args.digits else None
    config = TrainConfig(**values)
    result = run_training(config, data_dir=args.data, out_dir=args.out,
                          progress=not args.no_progress)
    m = result.metrics
    print(f"test accuracy: {m['test_accuracy']:.4f}  "
          f"({m['epochs']} epochs, {m['train_seconds']:.1f} s of training)")
    print(f"run directory: {result.run_dir}")
    if getattr(args, "report", False):
        from .report_cli import run_report

        run_report(result.run_dir, args.data)
    return 0


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, confusion matrix and per-class scores of a model")
    p.add_argument("model", help="model file (model.npz) or run directory")
    add_data_option(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_evaluate)


def model_path(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        path = path / "model.npz"
    return path


def load_test_data(classifier, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images, restricted to the classes the model knows."""
    from .data.datasets import load_mnist, select_digits

    ds = load_mnist(data_dir)
    x, y = ds.x_test, ds.y_test
    if sorted(classifier.classes) != list(range(10)):
        x, y = select_digits(x, y, classifier.classes, relabel=False)
    return x, y


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .classifier import Classifier
    from .metrics import classification_report, format_report

    clf = Classifier.load(model_path(args.model))
    x, y = load_test_data(clf, args.data)
    classes = np.asarray(clf.classes)
    report = classification_report(np.searchsorted(classes, y),
                                   np.searchsorted(classes, clf.predict(x)),
                                   num_classes=len(classes), class_names=[str(c) for c in classes])
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict digits: MNIST test images, your own image files, or a Kaggle CSV",
        description="Predict with a saved model. Give image files (PNG, JPEG, ...), or --index N "
                    "for MNIST test images, or --kaggle test.csv --out submission.csv.")
    p.add_argument("model", help="model file (model.npz) or run directory")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files of handwritten digits (any size; prepared like MNIST)")
    p.add_argument("--index", type=int, action="append", default=None, metavar="N",
                   help="index of an MNIST test image (repeatable)")
    p.add_argument("--kaggle", metavar="CSV", default=None,
                   help="Kaggle digit-recognizer test.csv to predict (needs --out)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="with --kaggle: the ImageId,Label submission file to write")
    add_data_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from .classifier import Classifier

    chosen = [name for name, given in (("IMAGE", bool(args.images)), ("--index", args.index is not None),
                                       ("--kaggle", args.kaggle is not None)) if given]
    if len(chosen) != 1:
        raise CommandError("give exactly one of: image files, --index N, or --kaggle CSV"
                           + (f" (got {', '.join(chosen)})" if chosen else ""))
    if args.out is not None and args.kaggle is None:
        raise CommandError("--out is only used with --kaggle")
    clf = Classifier.load(model_path(args.model))
    if args.index is not None:
        return predict_indices(clf, args)
    if args.kaggle is not None:
        return predict_kaggle(clf, args)
    return predict_images(clf, args)


def print_prediction(title: str, digit: int, classes: Sequence[int], probabilities: Sequence[float],
                     note: str = "") -> None:
    """One prediction for people: ``TITLE: predicted D (NOTE)``, then a bar per class."""
    print(f"{title}: predicted {digit}" + (f" ({note})" if note else ""))
    for c, p in zip(classes, probabilities, strict=True):
        print(f"  {c}: {p:.4f} {'#' * round(p * 40)}")


def predict_indices(clf, args: argparse.Namespace) -> int:
    """``predict MODEL --index N``: MNIST test images by index."""
    from .data.datasets import load_mnist

    ds = load_mnist(args.data)
    n = len(ds.x_test)
    for i in args.index:
        if not 0 <= i < n:
            raise CommandError(f"--index {i} is out of range: the test set has {n} images (0-{n - 1})")
    x = ds.x_test[args.index]
    digits, probs = clf.predict_with_proba(x)
    results = [{"index": i, "digit": int(dg), "label": int(ds.y_test[i]),
                "probabilities": [round(float(p), 6) for p in row]}
               for i, dg, row in zip(args.index, digits, probs, strict=True)]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]))
        return 0
    for r in results:
        mark = "correct" if r["digit"] == r["label"] else f"wrong, true label {r['label']}"
        print_prediction(f"test image {r['index']}", r["digit"], clf.classes, r["probabilities"], mark)
    return 0


def predict_images(clf, args: argparse.Namespace) -> int:
    """``predict MODEL IMAGE...``: people's own images, prepared like MNIST.

    Every file is predicted; one that cannot be used gets a one-line error on stderr
    naming it, and the exit status is 1 if any failed.
    """
    try:
        from .data.images import ImageError, mnist_like
    except ImportError as exc:
        raise CommandError(f"reading image files needs Pillow ({exc.name} is missing): "
                           "pip install 'digitnet[images]'") from None
    if clf.n_features != 784:
        raise CommandError(f"this model takes {clf.n_features} inputs, not 28x28 images")
    results, failed = [], 0
    for name in args.images:
        try:
            pixels = mnist_like(name).reshape(1, -1)
        except (ImageError, OSError) as exc:
            failed += 1
            text = " ".join(str(exc).split())
            text = text if name in text else f"{name}: {text}"
            print(f"digitnet predict: error: {text}", file=sys.stderr)
            results.append({"file": name, "error": text})
            continue
        labels, probs = clf.predict_with_proba(pixels)
        digit, probs = int(labels[0]), probs[0]
        result = {"file": name, "digit": digit, "probabilities": [round(float(p), 6) for p in probs]}
        results.append(result)
        if not args.json:
            print_prediction(name, digit, clf.classes, result["probabilities"])
    if args.json and not (len(results) == 1 and failed):
        print(json.dumps(results if len(results) > 1 else results[0]))
    return EXIT_ERROR if failed else 0


def predict_kaggle(clf, args: argparse.Namespace) -> int:
    """``predict MODEL --kaggle test.csv --out submission.csv`` (issue 4): one ``ImageId,Label``
    row per test.csv row (ImageId from 1), written atomically."""
    from .data.formats import read_kaggle_test, write_kaggle_submission

    if args.out is None:
        raise CommandError("--kaggle needs --out FILE: where to write the ImageId,Label submission")
    out = Path(args.out)
    if out.resolve() == Path(args.kaggle).resolve():
        raise CommandError(f"--out {out} would overwrite the input test.csv; choose another file")
    if not out.parent.is_dir():
        raise CommandError(f"--out {out}: directory {out.parent} does not exist")
    x = read_kaggle_test(args.kaggle)
    if len(x) == 0:
        raise CommandError(f"{args.kaggle} holds no images")
    labels = clf.predict(x)
    write_kaggle_submission(out, labels)
    counts = np.bincount(labels, minlength=10)
    print(f"wrote {len(labels)} predictions to {out} (ImageId,Label); predicted digit counts: "
          + " ".join(f"{d}:{c}" for d, c in enumerate(counts) if c))
    return 0


# --------------------------------------------------------------------------- entry point
# Each entry is "module:function"; the function adds one subcommand's parser (and sets
# ``func``). Modules are imported only to build the parser, so a command's heavy
# dependencies load when it is defined, not when digitnet.nn is imported.
SUBCOMMANDS: list[str] = [
    "digitnet.cli:add_train_parser",
    "digitnet.cli:add_evaluate_parser",
    "digitnet.cli:add_predict_parser",
    "digitnet.recipes.cli:add_reproduce_parser",
    "digitnet.web.cli:add_serve_parser",
    "digitnet.report_cli:add_report_parser",
    "digitnet.report_cli:add_compare_parser",
]


def _resolve(entry: str) -> Callable[[argparse._SubParsersAction], None]:
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitnet", description="Neural networks from scratch in NumPy, for handwritten digits.")
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in SUBCOMMANDS:
        _resolve(entry)(sub)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'the user asked for something impossible'."""
    from .data.idx import IDXError
    from .data.sources import ChecksumError, DataNotFoundError
    from .io import ModelFileError

    return (CommandError, ModelFileError, DataNotFoundError, ChecksumError, IDXError,
            FileNotFoundError, PermissionError, ValueError, FloatingPointError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130
    except user_errors() as exc:
        if type(exc).__name__ == "DataNotFoundError":  # a how-to: keep its lines
            print(f"digitnet {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        message = str(exc).strip().splitlines()
        print(f"digitnet {args.command}: error: {' '.join(message) if message else type(exc).__name__}",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
