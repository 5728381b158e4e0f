"""The other file formats MNIST travels in, each with a reader and a writer.

* Kaggle "Digit Recognizer": ``train.csv`` (header ``label,pixel0..pixel783``, one image a
  row, pixels 0-255), ``test.csv`` (the same without ``label``) and the submission file
  ``ImageId,Label`` (ImageId counts from 1).
* Keras ``mnist.npz``: ``x_train`` (60000, 28, 28) uint8, ``y_train`` (60000,),
  ``x_test``, ``y_test``; each member read only after its header (dtype, shape, size) is
  checked (:mod:`digitnet.data.npz`: no pickle, nothing else in the archive decompressed).
* OpenML ``mnist_784`` as CSV: header ``pixel1..pixel784,class`` (names may be quoted),
  70,000 rows, the 60k training images first.

The classic ``mnist.pkl.gz`` lives in :mod:`digitnet.data.pickled`. Readers return uint8
images ``(n, 784)`` and int64 labels ``(n,)``, and refuse malformed files with a
:class:`FormatError` that names the file and what is wrong. Memory is bounded before it is
allocated: a CSV over :data:`MAX_CSV_BYTES` is refused, and is parsed line by line into int16;
a Keras member over :data:`MAX_NPZ_BYTES` is refused from its header. Writers are atomic.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DigitnetError
from .npz import ArchiveError, NpzArchive
from .pickled import read_mnist_pkl, write_mnist_pkl  # the fourth format, re-exported here

__all__ = [
    "FormatError",
    "read_kaggle_train",
    "read_kaggle_test",
    "write_kaggle_train",
    "write_kaggle_test",
    "read_kaggle_submission",
    "write_kaggle_submission",
    "read_keras_npz",
    "write_keras_npz",
    "read_openml_csv",
    "write_openml_csv",
    "read_mnist_pkl",
    "write_mnist_pkl",
]

N_PIXELS = 784
KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CSV_BYTES = 256 << 20  # a CSV file (OpenML's 70,000 rows are about 120 MB)
MAX_NPZ_BYTES = 256 << 20  # one Keras array (x_train is 47 MB)


class FormatError(DigitnetError, ValueError):
    """A data file does not have the layout its format prescribes."""


# --------------------------------------------------------------------------- CSV helpers
def _header_names(line: str) -> list[str]:
    return [name.strip().strip("\"'") for name in line.strip().split(",")]


def _body_lines(path: Path) -> Iterator[str]:
    """The lines after the header, quotes removed, one at a time."""
    with open(path, encoding="utf-8", errors="replace") as f:
        f.readline(1 << 16)
        for line in f:
            if line.strip():
                yield line.replace("'", "").replace('"', "")


def _read_csv_body(path: Path, n_cols: int) -> np.ndarray:
    """The numeric rows after the header, as int16 ``(n, n_cols)`` (pixels and labels fit; a
    value that does not is an error); quotes are ignored. The file's size is capped first."""
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise FormatError(f"{path}: {size:,} bytes, over the limit of {MAX_CSV_BYTES:,} for a CSV file")
    try:
        with warnings.catch_warnings():  # an empty body is an empty table, not a warning
            warnings.simplefilter("ignore", UserWarning)
            rows = np.loadtxt(_body_lines(path), delimiter=",", dtype=np.int16, ndmin=2)
    except (ValueError, OverflowError) as exc:
        raise FormatError(f"{path}: not a table of integers 0-255 with {n_cols} columns "
                          f"({' '.join(str(exc).split())})") from None
    if rows.size == 0:
        return np.empty((0, n_cols), dtype=np.int16)
    if rows.shape[1] != n_cols:
        raise FormatError(f"{path}: rows have {rows.shape[1]} values, expected {n_cols}")
    return rows


def _read_header(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        first = f.readline(1 << 16).decode("utf-8", errors="replace")
    return _header_names(first)


def _pixels(values: np.ndarray, path: Path) -> np.ndarray:
    if values.size and (values.min() < 0 or values.max() > 255):
        raise FormatError(f"{path}: pixel values must be 0-255, found {values.min()}..{values.max()}")
    return values.astype(np.uint8)


def _labels(values: np.ndarray, path: Path) -> np.ndarray:
    if values.size and (values.min() < 0 or values.max() > 9):
        raise FormatError(f"{path}: labels must be digits 0-9, found {values.min()}..{values.max()}")
    return values.astype(np.int64)


def _check_images(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise ValueError(f"{what}: expected images of shape (n, 784) or (n, 28, 28), got {x.shape}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"{what}: pixels must be 0-255")
    return x.astype(np.uint8)


def _check_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{what}: {n} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{what}: labels must be digits 0-9")
    return y.astype(np.int64)


def _write_table(path: str | Path, header: Sequence[str], table: np.ndarray) -> None:
    """Write an integer table ``(n, k)`` as CSV with a header line, atomically."""
    with atomic_write(path) as f:
        f.write((",".join(header) + "\n").encode())
        if len(table):
            np.savetxt(f, table, fmt="%d", delimiter=",")


# --------------------------------------------------------------------------- Kaggle
KAGGLE_PIXELS = [f"pixel{i}" for i in range(N_PIXELS)]


def read_kaggle_train(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle ``train.csv`` -> (x uint8 (n, 784), y int64 (n,)), in file order."""
    path = Path(path)
    header = _read_header(path)
    if header != ["label", *KAGGLE_PIXELS]:
        raise FormatError(
            f"{path}: not a Kaggle train.csv (expected header label,pixel0..pixel783, got "
            f"{','.join(header[:3])}... with {len(header)} columns)"
        )
    rows = _read_csv_body(path, N_PIXELS + 1)
    return _pixels(rows[:, 1:], path), _labels(rows[:, 0], path)


def read_kaggle_test(path: str | Path) -> np.ndarray:
    """Kaggle ``test.csv`` -> x uint8 (n, 784), in file order (ImageId = row + 1)."""
    path = Path(path)
    header = _read_header(path)
    if header != KAGGLE_PIXELS:
        hint = " (this looks like train.csv: it has a label column)" if header[:1] == ["label"] else ""
        raise FormatError(
            f"{path}: not a Kaggle test.csv (expected header pixel0..pixel783, got "
            f"{','.join(header[:3])}... with {len(header)} columns){hint}"
        )
    return _pixels(_read_csv_body(path, N_PIXELS), path)


def write_kaggle_train(path: str | Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write images (n, 784) uint8 and labels (n,) as a Kaggle ``train.csv``."""
    x = _check_images(x, "write_kaggle_train")
    y = _check_labels(y, len(x), "write_kaggle_train")
    _write_table(path, ["label", *KAGGLE_PIXELS], np.column_stack([y, x]) if len(x) else x)


def write_kaggle_test(path: str | Path, x: np.ndarray) -> None:
    """Write images (n, 784) uint8 as a Kaggle ``test.csv`` (no labels)."""
    _write_table(path, KAGGLE_PIXELS, _check_images(x, "write_kaggle_test"))


def write_kaggle_submission(path: str | Path, labels: np.ndarray) -> None:
    """Write predicted digits (n,) as the ``ImageId,Label`` file Kaggle accepts (ImageId from 1)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError("a Kaggle submission needs integer digit labels 0-9")
    ids = np.arange(1, len(labels) + 1)
    _write_table(path, ["ImageId", "Label"], np.column_stack([ids, labels]).astype(np.int64))


def read_kaggle_submission(path: str | Path) -> np.ndarray:
    """Read an ``ImageId,Label`` file back as labels (n,), checking ImageId runs 1..n."""
    path = Path(path)
    header = _read_header(path)
    if header != ["ImageId", "Label"]:
        raise FormatError(f"{path}: not a Kaggle submission (expected header ImageId,Label)")
    rows = _read_csv_body(path, 2)
    if not np.array_equal(rows[:, 0], np.arange(1, len(rows) + 1)):
        raise FormatError(f"{path}: ImageId must count 1, 2, ... {len(rows)} in order")
    return _labels(rows[:, 1], path)


# --------------------------------------------------------------------------- Keras
def read_keras_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keras ``mnist.npz`` -> (x_train, y_train, x_test, y_test), images uint8 (n, 28, 28).

    All four headers are checked (x uint8 ``(n, 28, 28)``, y integer ``(n,)``, each at most
    :data:`MAX_NPZ_BYTES`) before any array is read; object arrays and other members are
    never touched.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with NpzArchive(path) as archive:
            missing = [k for k in KERAS_KEYS if k not in archive]
            if missing:
                raise FormatError(f"{path}: not a Keras mnist.npz: missing {', '.join(missing)}")
            headers = {k: archive.header(k) for k in KERAS_KEYS}
            for split in ("train", "test"):
                x, y = headers[f"x_{split}"], headers[f"y_{split}"]
                if x.dtype != np.uint8 or len(x.shape) != 3 or x.shape[1:] != (28, 28):
                    raise FormatError(f"{path}: x_{split} must be uint8 (n, 28, 28), got {x.dtype} {x.shape}")
                if y.shape != x.shape[:1] or y.dtype.kind not in "iu":
                    raise FormatError(f"{path}: y_{split} must be {x.shape[0]} integer labels, got "
                                      f"{y.dtype} {y.shape}")
            arrays = {k: archive.read(k, dtypes=(h.dtype,), shape=h.shape, max_bytes=MAX_NPZ_BYTES)
                      for k, h in headers.items()}
    except ArchiveError as exc:
        raise FormatError(f"{path}: refused: {exc}") from None
    return (arrays["x_train"], _labels(arrays["y_train"], path),
            arrays["x_test"], _labels(arrays["y_test"], path))


def write_keras_npz(path: str | Path, x_train: np.ndarray, y_train: np.ndarray,
                    x_test: np.ndarray, y_test: np.ndarray) -> None:
    """Write the four arrays as a Keras-style ``mnist.npz`` (images stored (n, 28, 28) uint8)."""
    arrays = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        xs = _check_images(x, f"write_keras_npz x_{split}")
        arrays[f"x_{split}"] = xs.reshape(-1, 28, 28)
        arrays[f"y_{split}"] = _check_labels(y, len(xs), f"write_keras_npz y_{split}").astype(np.uint8)
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)


# --------------------------------------------------------------------------- OpenML
OPENML_PIXELS = [f"pixel{i}" for i in range(1, N_PIXELS + 1)]


def read_openml_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """OpenML ``mnist_784`` CSV -> (x uint8 (n, 784), y int64 (n,)), in file order."""
    path = Path(path)
    header = _read_header(path)
    if header != [*OPENML_PIXELS, "class"]:
        raise FormatError(
            f"{path}: not an OpenML mnist_784 CSV (expected header pixel1..pixel784,class, got "
            f"{','.join(header[:3])}... with {len(header)} columns)"
        )
    rows = _read_csv_body(path, N_PIXELS + 1)
    return _pixels(rows[:, :-1], path), _labels(rows[:, -1], path)


def write_openml_csv(path: str | Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write images (n, 784) and labels (n,) in the OpenML ``mnist_784`` CSV layout."""
    x = _check_images(x, "write_openml_csv")
    y = _check_labels(y, len(x), "write_openml_csv")
    _write_table(path, [*OPENML_PIXELS, "class"], np.column_stack([x, y]) if len(x) else x)
