"""Reading a dataset in a given file format: any catalogue dataset as IDX files, or MNIST in the
format a seed used.

Each format is read by its own loader from :mod:`digitnet.data.formats` (or
:mod:`digitnet.data.pickled`). Where the real file is not on the machine (Kaggle, Keras and
OpenML files cannot be downloaded here; ``mnist.pkl.gz`` comes from the package index when
it can be reached), the equivalent file is built once from the MNIST IDX files into
``cache_dir()/"equivalent"``, the note says so, and the loader still reads it: all these
formats hold the same 70,000 images. Every reader returns the images as uint8 0-255
``(n, 784)``, the one raw scale every normalisation starts from.

Nothing is used unverified without saying so: each file built into the cache is recorded
with its SHA-256 in ``SHA256SUMS.json`` beside it and checked before it is reused (one that
does not match, or has no record, is built again, with a note); a file the user provides in
a format with no known checksum is used with a one-line note and ``verified: false``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes
from . import formats
from .datasets import CATALOGUE, load_dataset, load_mnist
from .pickled import mnist_pkl_to_uint8, read_mnist_pkl, write_mnist_pkl
from .sources import DataNotFoundError, cache_dir, locate_mnist_pkl, search_dirs

__all__ = ["FORMATS", "RawData", "read_format", "equivalent_dir"]

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
class RawData:
    """A dataset as its file stores it: uint8 images ``(n, 784)`` and int64 labels ``(n,)`` per
    stored split (``"train"``, ``"valid"``, ``"test"``; OpenML's one table is ``"all"``),
    where they came from (``note``), and whether they are the canonical MNIST."""

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    note: str
    source: dict[str, Any]


# --------------------------------------------------------------------------- finding files
def _find_real(fmt: str, data_dir: str | Path | None) -> Path | None:
    for directory, _ in search_dirs(data_dir):
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


MANIFEST = "SHA256SUMS.json"
_MAX_MANIFEST_BYTES = 1 << 20


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _recorded(directory: Path) -> dict[str, str]:
    """The checksums recorded for files built into ``directory`` (relative path -> SHA-256);
    an unreadable or malformed record counts as none."""
    path = directory / MANIFEST
    try:
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            return {}
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, str)}


def _record(directory: Path, paths: list[Path]) -> None:
    """Add the SHA-256 of each of ``paths`` (inside ``directory``) to its record."""
    table = _recorded(directory)
    table.update({p.relative_to(directory).as_posix(): _sha256(p) for p in paths})
    write_bytes(directory / MANIFEST, json.dumps(table, indent=1, sort_keys=True).encode())


def _reusable(target: Path, directory: Path, log: Log) -> bool:
    """Whether the built file ``target`` is there and matches its recorded checksum; says why not."""
    if not target.is_file():
        return False
    want = _recorded(directory).get(target.relative_to(directory).as_posix())
    got = _sha256(target)
    if want == got:
        return True
    problem = "has no recorded checksum" if want is None else f"has SHA-256 {got}, recorded {want}"
    log(f"the cached file {target} {problem}, so it was not built by digitnet or was changed since: "
        "building it again")
    return False


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
    if _reusable(target, out, log):
        return target
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
    _record(out, [target, target.parent / "test.csv"] if fmt == "kaggle" else [target])
    return target


def _locate(fmt: str, data_dir: str | Path | None, fetch: bool, log: Log) -> tuple[Path, str, bool]:
    """(path of the file to read, a note on where it came from, whether it is genuine)."""
    if fmt == "mnist_pkl":
        try:
            path = locate_mnist_pkl(data_dir, fetch=fetch, progress=False)
            return path, f"mnist.pkl.gz (genuine, SHA-256 verified) at {path}", True
        except DataNotFoundError as exc:
            log(f"the real mnist.pkl.gz is not available ({str(exc).splitlines()[0]})")
    else:
        real = _find_real(fmt, data_dir)
        if real is not None:
            log(f"note: {real} is used as it is: no checksum is known for a {FORMATS[fmt][1]} "
                "(verified: false)")
            return real, f"{FORMATS[fmt][1]} at {real} (unverified)", False
    path = _build_equivalent(fmt, data_dir, log)
    return path, (f"{FORMATS[fmt][1]} not on this machine: built the equivalent file from the MNIST "
                  f"IDX files ({path}), read with its loader"), False


def read_format(fmt: str, data_dir: str | Path | None = None, *, dataset: str = "mnist", fetch: bool = True,
                log: Log = print) -> RawData:
    """``dataset`` as the ``fmt`` file stores it (see :data:`FORMATS`; every format but ``idx``
    holds MNIST only)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "idx":
        ds = load_dataset(dataset, data_dir, fetch=fetch, progress=False)
        title = CATALOGUE[ds.name].title
        return RawData({"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)},
                       f"{title} IDX files ({ds.source})", {**ds.describe(), "title": title, "format": fmt})
    if dataset != "mnist":
        raise ValueError(f"the {fmt} format holds MNIST only, not {dataset}")
    path, note, genuine = _locate(fmt, data_dir, fetch, log)
    if fmt == "mnist_pkl":
        splits = read_mnist_pkl(path)
        x_train, y_train, x_test, y_test = mnist_pkl_to_uint8(splits)
        k = len(splits[0][0])  # the pickle's own training/validation split (50k/10k)
        parts = {"train": (x_train[:k], y_train[:k]), "valid": (x_train[k:], y_train[k:]),
                 "test": (x_test, y_test)}
    elif fmt == "kaggle":
        parts = {"train": formats.read_kaggle_train(path)}
    elif fmt == "keras":
        x, y, xt, yt = formats.read_keras_npz(path)
        parts = {"train": (x.reshape(len(x), -1), y), "test": (xt.reshape(len(xt), -1), yt)}
    else:
        parts = {"all": formats.read_openml_csv(path)}
    parts = {k: (x, np.asarray(y, dtype=np.int64)) for k, (x, y) in parts.items()}
    n_train = sum(len(v[0]) for k, v in parts.items() if k != "test")
    source = {"name": "mnist", "title": "MNIST", "class_names": list(CATALOGUE["mnist"].class_names),
              "format": fmt, "source": str(path), "verified": genuine,
              "n_train": n_train, "n_test": len(parts["test"][0]) if "test" in parts else 0}
    return RawData(parts, note, source)
