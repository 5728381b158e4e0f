"""``digitnet predict MODEL``: your own images, MNIST test images by index, or a Kaggle CSV."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .common import (
    CommandError,
    add_data_option,
    add_dataset_option,
    add_model_argument,
    load_model,
    load_test_data,
    probability,
)

NAME = "predict"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="predict digits: your own image files, MNIST test images, or a Kaggle CSV",
        description="Predict with a saved model. Give image files (PNG, JPEG, ...), or --index N "
                    "for MNIST test images (of the digits the model knows), or --kaggle test.csv "
                    "--out submission.csv. Options may come before or after the files.")
    add_model_argument(p)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files of handwritten digits (any size; prepared like MNIST)")
    p.add_argument("--index", type=int, action="append", default=None, metavar="N",
                   help="index of a test image among those of the model's classes (repeatable), from the "
                        "dataset the model was trained on (or --dataset)")
    p.add_argument("--kaggle", metavar="CSV", default=None,
                   help="Kaggle digit-recognizer test.csv to predict (needs --out)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="with --kaggle: the ImageId,Label submission file to write")
    add_dataset_option(p)
    add_data_option(p)
    p.add_argument("--min-confidence", type=probability, default=0.0, metavar="P",
                   help="say \"not sure\" instead of a digit when the top probability is below P "
                        "(see the report's risk-coverage curve; default: always answer)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def answer(digit: int, probabilities, min_confidence: float) -> dict:
    """``{"digit", "sure", "best_guess"}``: the digit, or None when the top probability is below
    ``min_confidence``."""
    sure = float(max(probabilities)) >= min_confidence
    return {"digit": int(digit) if sure else None, "sure": sure, "best_guess": int(digit)}


def run(args: argparse.Namespace) -> int:
    chosen = [name for name, given in (("IMAGE", bool(args.images)), ("--index", args.index is not None),
                                       ("--kaggle", args.kaggle is not None)) if given]
    if len(chosen) != 1:
        raise CommandError("give exactly one of: image files, --index N, or --kaggle CSV"
                           + (f" (got {', '.join(chosen)})" if chosen else ""))
    if args.out is not None and args.kaggle is None:
        raise CommandError("--out is only used with --kaggle")
    if args.dataset is not None and args.index is None:
        raise CommandError("--dataset chooses the test images of --index N")
    clf = load_model(args.model)
    if args.index is not None:
        return predict_indices(clf, args)
    if args.kaggle is not None:
        return predict_kaggle(clf, args)
    return predict_images(clf, args)


def print_prediction(title: str, result: dict, classes: Sequence[int], note: str = "",
                     names: Sequence[str] | None = None) -> None:
    """One prediction for people: ``TITLE: predicted D (NOTE)`` (or ``not sure``), then a bar
    per class; with ``names`` (one per class), each class is shown by its name ("predicted 1
    Trouser")."""
    names = [str(c) for c in classes] if names is None else list(names)
    shown = [n if n == str(c) else f"{c} {n}" for c, n in zip(classes, names, strict=True)]
    width = max(len(t) for t in shown)
    probabilities = result["probabilities"]
    guess = shown[list(classes).index(result["best_guess"])]
    if result["sure"]:
        print(f"{title}: predicted {guess}" + (f" ({note})" if note else ""))
    else:
        print(f"{title}: not sure (best guess {guess} at {max(probabilities):.2f})"
              + (f" ({note})" if note else ""))
    for t, p in zip(shown, probabilities, strict=True):
        print(f"  {t + ':':<{width + 1}} {p:.4f} {'#' * round(p * 40)}")


def predict_indices(clf, args: argparse.Namespace) -> int:
    """``predict MODEL --index N``: the N-th MNIST test image of the digits the model knows."""
    from ..data.datasets import dataset_info

    x_all, y_all = load_test_data(clf, args.data, args.dataset)
    n = len(x_all)
    info = dataset_info(args.dataset or clf.dataset)
    kinds = "digits" if info.noun == "digit" else "classes"
    which = "" if sorted(clf.classes) == list(range(info.n_classes)) else \
        f" of {kinds} {','.join(map(str, clf.classes))}"
    for i in args.index:
        if not 0 <= i < n:
            raise CommandError(f"--index {i} is out of range: the test set has {n} images{which} (0-{n - 1})")
    digits, probs = clf.predict_with_proba(x_all[args.index])
    names = dict(zip(clf.classes, clf.class_names, strict=True))
    results = [{"index": i, **answer(dg, row, args.min_confidence), "name": names[int(dg)],
                "label": int(y_all[i]),
                "probabilities": [round(float(p), 6) for p in row]}
               for i, dg, row in zip(args.index, digits, probs, strict=True)]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]))
        return 0
    for r in results:
        true = r["label"] if names[r["label"]] == str(r["label"]) else f"{r['label']} {names[r['label']]}"
        mark = "correct" if r["best_guess"] == r["label"] else f"wrong, true label {true}"
        print_prediction(f"test image {r['index']}{which}", r, clf.classes, mark, clf.class_names)
    return 0


def predict_images(clf, args: argparse.Namespace) -> int:
    """``predict MODEL IMAGE...``: people's own images, prepared like MNIST.

    Every file is predicted; one that cannot be used gets a one-line error on stderr
    naming it, and the exit status is 1 if any failed.
    """
    try:
        from ..data.images import ImageError, mnist_like
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
        class_name = clf.class_names[list(clf.classes).index(int(labels[0]))]
        result = {"file": name, **answer(labels[0], probs[0], args.min_confidence), "name": class_name,
                  "probabilities": [round(float(p), 6) for p in probs[0]]}
        results.append(result)
        if not args.json:
            print_prediction(name, result, clf.classes, names=clf.class_names)
    if args.json and not (len(results) == 1 and failed):
        print(json.dumps(results if len(results) > 1 else results[0]))
    return 1 if failed else 0


def predict_kaggle(clf, args: argparse.Namespace) -> int:
    """``predict MODEL --kaggle test.csv --out submission.csv``: one ``ImageId,Label`` row per
    test.csv row (ImageId from 1), written atomically."""
    from ..data.formats import read_kaggle_test, write_kaggle_submission

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
