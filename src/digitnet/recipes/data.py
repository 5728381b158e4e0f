"""A recipe's data: the file format its seed used, its split, digits and scaling.

Each format is read by its own loader from :mod:`digitnet.data.formats` (or
:mod:`digitnet.data.pickled`). Where the real file is not on the machine (Kaggle, Keras and
OpenML files cannot be downloaded here; ``mnist.pkl.gz`` comes from the package index when
it can be reached), the equivalent file is built once from the MNIST IDX files into
``cache_dir()/"equivalent"``, the note says so, and the loader still reads it: all these
formats hold the same 70,000 images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import formats
from ..data.datasets import load_mnist, select_digits, train_valid_split
from ..data.pickled import read_mnist_pkl, write_mnist_pkl
from ..data.scaling import Normalizer
from ..data.sources import ENV_VAR, DataNotFoundError, cache_dir, locate_mnist_pkl

__all__ = ["RecipeData", "load_recipe_data", "FORMATS", "NORMALIZATIONS"]

Log = Callable[[str], None]

#: format -> (file names a user may provide, what the seed called it)
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "idx": ((), "the four MNIST IDX files"),
    "mnist_pkl": (("mnist.pkl.gz",), "deeplearning.net mnist.pkl.gz"),
    "kaggle": (("kaggle/train.csv", "train.csv"), "Kaggle digit-recognizer train.csv"),
    "keras": (("mnist.npz",), "Keras mnist.npz"),
    "openml": (("mnist_784.csv",), "OpenML mnist_784 CSV"),
}


@dataclass
class RecipeData:
    """Scaled float32 inputs ``(n, 784)`` and int64 labels ``(n,)``; empty splits have n=0."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[int]
    note: str

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``"train"``, ``"valid"`` or ``"test"`` as ``(x, y)``."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


# --------------------------------------------------------------------------- finding files
def _search_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = []
    base = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or None
    if base is not None:
        dirs.append(Path(base).expanduser())
    dirs.append(cache_dir())
    return dirs


def _find_real(fmt: str, data_dir: str | Path | None) -> Path | None:
    for directory in _search_dirs(data_dir):
        for name in FORMATS[fmt][0]:
            if (directory / name).is_file():
                return directory / name
    return None


def equivalent_dir() -> Path:
    """Where files built from the IDX data are kept (``cache_dir()/"equivalent"``)."""
    return cache_dir() / "equivalent"


def _fingerprint(ds: Any) -> str:
    """A short name for the IDX content, so files built from other data never mix."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a[:: max(1, len(a) // 512)]).tobytes())
    return h.hexdigest()[:16]


def _build_equivalent(fmt: str, data_dir: str | Path | None, log: Log) -> Path:
    """The ``fmt`` file holding the MNIST images (from IDX), built once under equivalent_dir().

    Proportions follow the real files: mnist.pkl.gz keeps the first 5/6 of the training
    images for training and the rest for validation (50k/10k); Kaggle's train.csv holds the
    first 7/10 (42,000) and its test.csv the other 28,000; OpenML holds all 70,000.
    """
    ds = load_mnist(data_dir, progress=False)
    out = equivalent_dir() / _fingerprint(ds)
    target = {"mnist_pkl": out / "mnist.pkl.gz", "kaggle": out / "kaggle" / "train.csv",
              "keras": out / "mnist.npz", "openml": out / "mnist_784.csv"}[fmt]
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {FORMATS[fmt][1]} from the MNIST IDX files into {target} (once)")
    x, y, xt, yt = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    if fmt == "mnist_pkl":  # the classic layout: pixel/256, train then valid
        k = len(x) * 5 // 6

        def f(a: np.ndarray) -> np.ndarray:
            return a.astype(np.float32) / np.float32(256)
        write_mnist_pkl(target, ((f(x[:k]), y[:k]), (f(x[k:]), y[k:]), (f(xt), yt)))
    elif fmt == "kaggle":
        k = len(x) * 7 // 10
        formats.write_kaggle_test(target.parent / "test.csv", np.concatenate([x[k:], xt]))
        formats.write_kaggle_train(target, x[:k], y[:k])
    elif fmt == "keras":
        formats.write_keras_npz(target, x, y, xt, yt)
    else:  # OpenML: all 70,000, the training images first
        formats.write_openml_csv(target, np.concatenate([x, xt]), np.concatenate([y, yt]))
    return target


def _locate(fmt: str, data_dir: str | Path | None, fetch: bool, log: Log) -> tuple[Path, str]:
    """(path of the file to read, a note on where it came from)."""
    if fmt == "mnist_pkl":
        try:
            path = locate_mnist_pkl(data_dir, fetch=fetch, progress=False)
            return path, f"mnist.pkl.gz (genuine, SHA-256 verified) at {path}"
        except DataNotFoundError as exc:
            log(f"the real mnist.pkl.gz is not available ({str(exc).splitlines()[0]})")
    else:
        real = _find_real(fmt, data_dir)
        if real is not None:
            return real, f"{FORMATS[fmt][1]} at {real}"
    path = _build_equivalent(fmt, data_dir, log)
    return path, (f"{FORMATS[fmt][1]} not on this machine: built the equivalent file from the MNIST "
                  f"IDX files ({path}), read with its loader")


def _read(fmt: str, data_dir: str | Path | None, fetch: bool, log: Log) -> tuple[dict[str, Any], str]:
    """Raw arrays by split name (``train``, maybe ``valid``, maybe ``test``) and the note."""
    if fmt == "idx":
        ds = load_mnist(data_dir, progress=False)
        return {"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)}, \
            f"MNIST IDX files ({ds.source})"
    path, note = _locate(fmt, data_dir, fetch, log)
    if fmt == "mnist_pkl":
        (tx, ty), (vx, vy), (sx, sy) = read_mnist_pkl(path)
        return {"train": (tx, ty), "valid": (vx, vy), "test": (sx, sy)}, note
    if fmt == "kaggle":
        return {"train": formats.read_kaggle_train(path)}, note
    if fmt == "keras":
        x, y, xt, yt = formats.read_keras_npz(path)
        return {"train": (x.reshape(len(x), -1), y), "test": (xt.reshape(len(xt), -1), yt)}, note
    return {"all": formats.read_openml_csv(path)}, note


# --------------------------------------------------------------------------- splits
def _split(raw: dict[str, Any], spec: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    how = spec.get("split", "file")
    seed = spec.get("split_seed", 0)
    if how == "file":
        if "all" in raw:  # OpenML's one table is MNIST in order: the training 6/7 first, then test
            x, y = raw["all"]
            k = len(x) * 6 // 7
            return {"train": (x[:k], y[:k]), "test": (x[k:], y[k:])}
        return raw
    if how == "shuffle_head":  # shuffle the rows, the first valid_size rows are validation
        x, y = raw["train"] if "train" in raw else raw["all"]
        order = np.random.default_rng(seed).permutation(len(x))
        k = int(spec["valid_size"])
        return {"train": (x[order[k:]], y[order[k:]]), "valid": (x[order[:k]], y[order[:k]])}
    if how == "stratified":  # test_size held out, then valid_size, both stratified
        x, y = raw["all"] if "all" in raw else raw["train"]
        x_rest, y_rest, x_test, y_test = train_valid_split(x, y, int(spec["test_size"]),
                                                           stratify=True, seed=seed)
        x_tr, y_tr, x_va, y_va = train_valid_split(x_rest, y_rest, int(spec["valid_size"]),
                                                   stratify=True, seed=seed)
        return {"train": (x_tr, y_tr), "valid": (x_va, y_va), "test": (x_test, y_test)}
    raise ValueError(f"unknown split {how!r}; choose file, shuffle_head or stratified")


# --------------------------------------------------------------------------- scaling
def _minmax_batched(x: np.ndarray, batch: int) -> np.ndarray:
    """Seed 001's quirk: min-max statistics per (position in batch, pixel), not per pixel."""
    n = len(x) - len(x) % batch
    xb = x[:n].astype(np.float32).reshape(-1, batch, x.shape[1])
    lo, hi = xb.min(axis=0), xb.max(axis=0)
    span = np.where(hi - lo == 0, 1, hi - lo)
    xb -= lo
    xb /= span
    out = xb.reshape(n, -1)
    if n < len(x):  # a ragged last batch is scaled with the first positions' statistics
        tail = (x[n:].astype(np.float32) - lo[: len(x) - n]) / span[: len(x) - n]
        out = np.concatenate([out, tail])
    return out


def _column_zscore(x: np.ndarray) -> np.ndarray:
    """Seed 003's quirk: mean and std over axis (0, 1) of the (n, 28, 28) array, i.e. one
    statistic per image column, computed on whatever set is being scaled."""
    img = x.reshape(-1, 28, 28).astype(np.float32)
    mean, std = img.mean(axis=(0, 1)), img.std(axis=(0, 1))
    img -= mean
    img /= np.where(std == 0, 1, std)
    return img.reshape(len(x), -1)


NORMALIZATIONS = ("none", "unit", "symmetric", "zscore", "minmax", "minmax_batched", "column_zscore")


def _scale(method: str, x: np.ndarray, fitted: Normalizer | None, spec: dict[str, Any]) -> np.ndarray:
    if method == "none":
        return np.asarray(x, dtype=np.float32)
    if method == "minmax_batched":
        return _minmax_batched(x, int(spec.get("stat_batch", 100)))
    if method == "column_zscore":
        return _column_zscore(x)
    if fitted is None:
        raise ValueError(f"normalisation {method!r} has no fitted statistics")
    return fitted.transform(x)


def load_recipe_data(spec: dict[str, Any], *, data_dir: str | Path | None = None, fetch: bool = True,
                     digits: list[int] | None = None, log: Log = print) -> RecipeData:
    """Read, split, select digits and scale what a recipe's ``[data]`` table describes.

    Keys: ``format`` (see :data:`FORMATS`), ``split`` (file / shuffle_head / stratified)
    with ``valid_size``, ``test_size``, ``split_seed``; ``digits`` (a list: keep
    those, relabelled 0..k-1); ``normalization`` for training data and
    ``eval_normalization`` for validation and test data (default: the same, with the
    training statistics). ``digits`` overrides the recipe's digits.
    """
    fmt = spec.get("format", "idx")
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; choose one of {sorted(FORMATS)}")
    raw, note = _read(fmt, data_dir, fetch, log)
    parts = _split(raw, spec)
    chosen = digits if digits is not None else spec.get("digits")
    classes = list(range(10))
    if chosen:
        classes = [int(d) for d in chosen]
        parts = {k: select_digits(x, y, classes) for k, (x, y) in parts.items()}
    method = spec.get("normalization", "unit")
    eval_method = spec.get("eval_normalization", method)
    for m in (method, eval_method):
        if m not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {m!r}; choose one of {NORMALIZATIONS}")
    x_train = parts["train"][0]
    fitted = None
    if {method, eval_method} & {"unit", "symmetric", "zscore", "minmax"}:
        base = method if method in ("unit", "symmetric", "zscore", "minmax") else eval_method
        fitted = Normalizer(base).fit(x_train.reshape(len(x_train), -1))
    empty_x, empty_y = np.empty((0, 784), np.float32), np.empty(0, np.int64)
    out: dict[str, Any] = {}
    for name in ("train", "valid", "test"):
        if name not in parts:
            out[f"x_{name}"], out[f"y_{name}"] = empty_x, empty_y
            continue
        x, y = parts[name]
        x = np.asarray(x).reshape(len(x), -1)
        out[f"x_{name}"] = np.ascontiguousarray(
            _scale(method if name == "train" else eval_method, x, fitted, spec), dtype=np.float32)
        out[f"y_{name}"] = np.asarray(y, dtype=np.int64)
    return RecipeData(**out, classes=classes, note=note)
