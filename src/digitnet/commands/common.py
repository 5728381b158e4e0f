"""What several commands share: argument types, the data and model options, and the run
spec's flags, generated from :mod:`digitnet.spec` so that a flag and the setting it sets
always have the same name, default and help."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DigitnetError


class CommandError(DigitnetError):
    """An error to report to the user as one line (a bad combination of options)."""


# --------------------------------------------------------------------------- argument types
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


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text}")
    return value


def count_or_fraction(text: str) -> int | float:
    """``"5000"`` -> 5000, ``"0.1"`` -> 0.1."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", default=None,
                   help="directory with the dataset's four IDX files, used as they are and labelled "
                        "unverified unless they are the catalogue's (default: $DIGITNET_DATA for MNIST, "
                        "then the cache, then download)")


def dataset_choice(text: str) -> str:
    from ..data.datasets import dataset_names

    if text not in dataset_names():
        known = ", ".join(dataset_names())
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose one of {known}")
    return text


def add_dataset_option(p: argparse.ArgumentParser) -> None:
    """``--dataset NAME`` for a command that reads a model's test data (default: the model's own)."""
    from ..data.datasets import dataset_names

    p.add_argument("--dataset", metavar="NAME", type=dataset_choice, default=None,
                   help=f"dataset whose test images to use: {', '.join(dataset_names())} "
                        "(default: the one the model was trained on)")


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model file (model.npz) or run directory")


def model_path(text: str) -> Path:
    path = Path(text)
    return path / "model.npz" if path.is_dir() else path


def load_model(text: str) -> Any:
    from ..classifier import Classifier

    return Classifier.load(model_path(text))


def load_test_data(classifier: Any, data_dir: str | None, dataset: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The test images (n, 784) and labels (n,) of the classes the model knows, from ``dataset``
    (default: the model's own)."""
    from ..data.datasets import load_dataset, select_digits

    ds = load_dataset(dataset or classifier.dataset, data_dir)
    x, y = ds.x_test, ds.y_test
    if sorted(classifier.classes) != list(range(len(ds.class_names))):
        x, y = select_digits(x, y, classifier.classes, relabel=False)
    return x, y


# --------------------------------------------------------------------------- the spec's flags
def _parser_for(annotation: str) -> Any:
    """The argparse type for a spec field, from its annotation."""
    if annotation.startswith("tuple[int"):
        return int_list
    if annotation.startswith("int | float"):
        return count_or_fraction
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def spec_flags() -> list[tuple[str, str, dataclasses.Field]]:
    """``(flag, table, field)`` for every spec setting that ``digitnet train`` takes as a flag."""
    from ..spec import spec_fields

    return [(f"--{name.replace('_', '-')}", table, f) for name, (table, f) in spec_fields().items()
            if f.metadata["flag"]]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def add_spec_flags(p: argparse.ArgumentParser) -> None:
    """One flag per spec setting, named like the setting (``--batch-size`` sets
    ``training.batch_size``). Defaults are not filled in here (only flags given override
    the spec they apply to); the help shows the spec's default."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag, table, f in spec_flags():
        group = groups.get(table) or groups.setdefault(table, p.add_argument_group(f"[{table}] settings"))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        choices = getattr(f.metadata["check"], "choices", None)
        text = f.metadata["help"]
        if choices:
            text += f"; one of {', '.join(choices())}"
        if default is not None:
            text += f" (default: {_show(default)})"
        parse = f.metadata["parse"] or _parser_for(str(f.type))
        group.add_argument(flag, dest=f.name, type=parse, default=argparse.SUPPRESS,
                           metavar=f.metadata["metavar"] or f.name.upper(), help=text.replace("%", "%%"))


def given_spec_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The spec settings given as flags, by name."""
    return {f.name: getattr(args, f.name) for _, _, f in spec_flags() if hasattr(args, f.name)}
