"""Loading MNIST into arrays, and the subsets and splits the experiments use.

Images stay uint8 (n, 784) in memory (47 MB for the training set instead of 188 MB as
float32); scaling to floats happens per batch (see :mod:`digitnet.data.scaling`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .idx import IDXError, read_idx
from .sources import Source, find_mnist_files, locate_mnist, verify_mnist_dir

__all__ = ["Dataset", "load_mnist", "select_digits", "train_valid_split"]

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
N_CLASSES = 10


@dataclass
class Dataset:
    """A train/test pair of image and label arrays, and where they came from.

    x_* are uint8 of shape (n, 784), row-major 28x28 images; y_* are int64 of shape (n,)
    with labels 0..9.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    verified: bool
    name: str = "mnist"

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: name, source, verified, n_train, n_test."""
        return {
            "name": self.name,
            "source": self.source,
            "verified": bool(self.verified),
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
        }


def _images(path: Path) -> np.ndarray:
    """Read an image IDX file as uint8 (n, 784); it must hold 28x28 uint8 images."""
    arr = read_idx(path)
    if arr.dtype != np.uint8:
        raise IDXError(f"{path}: images must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[1:] == IMAGE_SHAPE:
        return arr.reshape(arr.shape[0], N_PIXELS)
    if arr.ndim == 2 and arr.shape[1] == N_PIXELS:
        return arr
    raise IDXError(f"{path}: expected images of shape (n, 28, 28), got {arr.shape}")


def _labels(path: Path) -> np.ndarray:
    """Read a label IDX file as int64 (n,) with values 0..9."""
    arr = read_idx(path)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise IDXError(f"{path}: expected a 1-D integer label array, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= N_CLASSES):
        raise IDXError(f"{path}: labels must be in 0..9, found {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    fetch: bool = True,
    progress: bool = True,
    verify: bool = True,
    sources: Sequence[Source] | None = None,
) -> Dataset:
    """Load MNIST as a :class:`Dataset` (x uint8 (n, 784), y int64 (n,)).

    The files are found (or fetched) by :func:`locate_mnist`, from ``data_dir`` or by
    walking ``sources`` (default: :func:`~digitnet.data.sources.default_sources`); raw or
    ``.gz`` names are accepted. Any number of images works (tests use tiny files), but
    images must be 28x28 and each image file must match its label file in length.
    ``verified`` tells whether the files are the canonical MNIST (checked only when
    ``verify``).
    """
    directory, origin = locate_mnist(data_dir, fetch=fetch, progress=progress, sources=sources)
    files = find_mnist_files(directory)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = _images(files[f"{prefix}-images-idx3-ubyte"])
        y = _labels(files[f"{prefix}-labels-idx1-ubyte"])
        if x.shape[0] != y.shape[0]:
            raise IDXError(
                f"{directory}: {split} set has {x.shape[0]} images but {y.shape[0]} labels"
            )
        arrays[split] = (x, y)
    verified = verify_mnist_dir(directory) if verify else False
    if verify and not verified:  # a directory the user named, holding other files
        print(f"digitnet: note: the files in {origin} are not the canonical MNIST (their SHA-256 "
              "differs); using them as they are (verified: false)", file=sys.stderr)
    return Dataset(
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        source=origin,
        verified=verified,
    )


def select_digits(
    x: np.ndarray, y: np.ndarray, digits: Sequence[int], *, relabel: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows of ``x`` (n, ...) and ``y`` (n,) whose label is in ``digits``.

    With ``relabel``, labels become positions in ``digits`` (int64): digits (3, 8) maps
    3 -> 0 and 8 -> 1, which is what a 2-class output layer expects.
    """
    x, y = np.asarray(x), np.asarray(y)
    digits = [int(d) for d in digits]
    if not digits:
        raise ValueError("select_digits needs at least one digit")
    if len(set(digits)) != len(digits):
        raise ValueError(f"select_digits: repeated digits in {digits}")
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {x.shape} and y {y.shape} must have the same number of rows")
    mask = np.isin(y, digits)
    y_sel = y[mask]
    if relabel:
        new = np.empty(y_sel.shape, dtype=np.int64)
        for i, d in enumerate(digits):
            new[y_sel == d] = i
        y_sel = new
    return x[mask], y_sel


def _valid_count(valid_size: int | float, n: int) -> int:
    if isinstance(valid_size, (bool, np.bool_)):
        raise TypeError("valid_size must be an int count or a float fraction, not a bool")
    if isinstance(valid_size, (int, np.integer)):
        k = int(valid_size)
        if not 0 <= k < n:
            raise ValueError(
                f"valid_size={k} must be in [0, {n}) so that the training part is not empty"
            )
        return k
    frac = float(valid_size)
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"valid_size={valid_size} as a fraction must be in [0, 1)")
    k = int(round(frac * n))
    if k >= n:
        raise ValueError(f"valid_size={valid_size} of {n} samples leaves no training data")
    return k


def _stratified_counts(counts: np.ndarray, k: int) -> np.ndarray:
    """Per-class validation counts summing to ``k``, proportional to ``counts``.

    Largest-remainder rounding, ties broken toward the lower class index.
    """
    n = counts.sum()
    exact = counts * (k / n)
    take = np.floor(exact).astype(np.int64)
    short = k - int(take.sum())
    if short:
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    return np.minimum(take, counts)


def train_valid_split(
    x: np.ndarray,
    y: np.ndarray,
    valid_size: int | float,
    *,
    stratify: bool = False,
    seed: int | None = 0,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split (x (n, ...), y (n,)) into (x_train, y_train, x_valid, y_valid).

    ``valid_size`` is a count (int) or a fraction of n (float in [0, 1)); 0 gives empty
    validation arrays of shape (0, ...). With ``shuffle`` the split is random but
    deterministic for a given ``seed`` (``np.random.default_rng(seed)``; None: fresh
    entropy) and both parts come out shuffled. Without it the last ``valid_size`` rows
    become the validation set (per class when stratified) and order is kept: on MNIST,
    ``valid_size=10000, shuffle=False`` reproduces the classic 50000/10000 split of
    ``mnist.pkl.gz``. ``stratify`` keeps class proportions (largest-remainder rounding).
    """
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {x.shape} and y {y.shape} must have the same number of rows")
    n = y.shape[0]
    if n == 0:
        raise ValueError("cannot split an empty dataset")
    k = _valid_count(valid_size, n)
    rng = np.random.default_rng(seed) if shuffle else None

    if not stratify:
        order = rng.permutation(n) if rng is not None else np.arange(n)
        train_idx, valid_idx = order[: n - k], order[n - k :]
    else:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        take = _stratified_counts(counts, k)
        valid_mask = np.zeros(n, dtype=bool)
        for c in range(classes.size):
            members = np.flatnonzero(inverse == c)
            if take[c] == 0:
                continue
            if rng is not None:
                chosen = rng.choice(members, size=take[c], replace=False)
            else:
                chosen = members[members.size - take[c] :]
            valid_mask[chosen] = True
        train_idx, valid_idx = np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
        if rng is not None:
            train_idx, valid_idx = rng.permutation(train_idx), rng.permutation(valid_idx)
    return x[train_idx], y[train_idx], x[valid_idx], y[valid_idx]
