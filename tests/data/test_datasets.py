"""load_mnist on tiny IDX files, digit subsets and train/valid splits; one real-data test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import (
    DataNotFoundError,
    Dataset,
    IDXError,
    load_mnist,
    select_digits,
    train_valid_split,
    write_idx,
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _write_tiny(directory: Path, n_train: int = 8, n_test: int = 3, gz: bool = True) -> Path:
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(
        directory / f"train-images-idx3-ubyte{ext}",
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
    )
    write_idx(directory / "train-labels-idx1-ubyte", np.arange(n_train, dtype=np.uint8) % 10)
    write_idx(
        directory / f"t10k-images-idx3-ubyte{ext}",
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
    )
    write_idx(directory / f"t10k-labels-idx1-ubyte{ext}", np.arange(n_test, dtype=np.uint8))
    return directory


@pytest.fixture(autouse=True)
def _no_real_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_load_tiny_dataset(tmp_path: Path) -> None:
    d = _write_tiny(tmp_path / "tiny")
    ds = load_mnist(d)
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (8, 784) and ds.x_train.dtype == np.uint8
    assert ds.y_train.shape == (8,) and ds.y_train.dtype == np.int64
    assert ds.x_test.shape == (3, 784) and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, np.arange(8))
    assert ds.verified is False  # not the canonical files
    assert ds.name == "mnist" and str(d) in ds.source
    info = ds.describe()
    assert json.loads(json.dumps(info)) == {
        "name": "mnist",
        "source": ds.source,
        "verified": False,
        "n_train": 8,
        "n_test": 3,
        "class_names": [str(d) for d in range(10)],
    }
    assert "unverified" in ds.source
    assert load_mnist(d, verify=False).verified is False


def test_load_raw_names(tmp_path: Path) -> None:
    ds = load_mnist(_write_tiny(tmp_path / "raw", gz=False), progress=False)
    assert ds.x_train.shape == (8, 784)


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / "empty", fetch=False)


def test_count_mismatch(tmp_path: Path) -> None:
    d = _write_tiny(tmp_path / "t")
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
    with pytest.raises(IDXError, match="8 images but 7 labels"):
        load_mnist(d)


def test_bad_labels(tmp_path: Path) -> None:
    d = _write_tiny(tmp_path / "t")
    write_idx(d / "train-labels-idx1-ubyte", np.full(8, 10, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"0\.\.9"):
        load_mnist(d)


def test_bad_image_shape(tmp_path: Path) -> None:
    d = _write_tiny(tmp_path / "t")
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((3, 27, 28), dtype=np.uint8))
    with pytest.raises(IDXError, match=r"t10k-images.*\(3, 27, 28\)"):
        load_mnist(d)
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), dtype=np.float32))
    with pytest.raises(IDXError, match="uint8"):
        load_mnist(d)


# --------------------------------------------------------------------------- select_digits


def test_select_digits_relabels_in_given_order() -> None:
    y = np.array([0, 1, 2, 7, 2, 9, 7, 1])
    x = np.arange(8)[:, None] * np.ones((1, 3), dtype=np.uint8)
    xs, ys = select_digits(x, y, (7, 2))
    np.testing.assert_array_equal(xs[:, 0], [2, 3, 4, 6])
    np.testing.assert_array_equal(ys, [1, 0, 1, 0])
    assert ys.dtype == np.int64
    xs, ys = select_digits(x, y, [0, 1])
    assert set(ys.tolist()) == {0, 1} and len(ys) == 3
    xs, ys = select_digits(x, y, (7, 2), relabel=False)
    np.testing.assert_array_equal(ys, [2, 7, 2, 7])


def test_select_digits_errors() -> None:
    x, y = np.zeros((3, 2)), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="at least one"):
        select_digits(x, y, [])
    with pytest.raises(ValueError, match="repeated"):
        select_digits(x, y, [1, 1])
    with pytest.raises(ValueError, match="same number of rows"):
        select_digits(x[:2], y, [1])


# --------------------------------------------------------------------------- splits


def _data(n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat([0, 1, 2], [600, 300, 100])[:n]
    x = np.arange(n)[:, None] * np.ones((1, 4), dtype=np.int64)  # row i holds i
    return x, y


def test_split_is_deterministic_partition() -> None:
    x, y = _data()
    a = train_valid_split(x, y, 200, seed=3)
    b = train_valid_split(x, y, 200, seed=3)
    c = train_valid_split(x, y, 200, seed=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    xt, yt, xv, yv = a
    assert xt.shape == (800, 4) and xv.shape == (200, 4) and yt.shape == (800,)
    rows = np.concatenate([xt[:, 0], xv[:, 0]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(1000))  # a partition
    np.testing.assert_array_equal(y[xt[:, 0]], yt)  # labels travel with their rows


def test_split_fraction_and_no_shuffle() -> None:
    x, y = _data()
    xt, yt, xv, yv = train_valid_split(x, y, 0.25, shuffle=False)
    assert len(xv) == 250
    np.testing.assert_array_equal(xt[:, 0], np.arange(750))  # order kept, last rows valid
    np.testing.assert_array_equal(xv[:, 0], np.arange(750, 1000))


def test_split_zero_valid() -> None:
    x, y = _data()
    xt, yt, xv, yv = train_valid_split(x, y, 0)
    assert xv.shape == (0, 4) and yv.shape == (0,) and xv.dtype == x.dtype
    assert xt.shape == x.shape
    assert train_valid_split(x, y, 0.0)[2].shape == (0, 4)


@pytest.mark.parametrize("bad", [1000, 5000, -1, 1.0, 1.5, -0.1])
def test_split_bad_sizes(bad: float) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="valid_size"):
        train_valid_split(x, y, bad)


def test_split_rejects_bool_and_mismatch() -> None:
    x, y = _data()
    with pytest.raises(TypeError):
        train_valid_split(x, y, True)
    with pytest.raises(ValueError, match="same number of rows"):
        train_valid_split(x[:10], y, 2)


@pytest.mark.parametrize("shuffle", [True, False])
def test_stratified_keeps_proportions(shuffle: bool) -> None:
    x, y = _data()
    xt, yt, xv, yv = train_valid_split(x, y, 0.1, stratify=True, shuffle=shuffle, seed=0)
    assert np.bincount(yv).tolist() == [60, 30, 10]
    assert np.bincount(yt).tolist() == [540, 270, 90]
    rows = np.concatenate([xt[:, 0], xv[:, 0]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(1000))
    # an awkward size: rounding still sums to k and stays proportional within one
    _, _, _, yv = train_valid_split(x, y, 7, stratify=True, seed=1)
    counts = np.bincount(yv, minlength=3)
    assert counts.sum() == 7 and np.all(np.abs(counts - np.array([4.2, 2.1, 0.7])) < 1)


def test_stratified_is_deterministic() -> None:
    x, y = _data()
    a = train_valid_split(x, y, 100, stratify=True, seed=9)
    b = train_valid_split(x, y, 100, stratify=True, seed=9)
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[0], b[0])


# --------------------------------------------------------------------------- real MNIST


@pytest.mark.mnist
@pytest.mark.skipif(
    not os.environ.get("DIGITNET_DATA"),
    reason="real MNIST not available: set DIGITNET_DATA to the directory of the four IDX files",
)
def test_real_mnist() -> None:
    ds = load_mnist(fetch=False, progress=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.verified is True
    assert np.bincount(ds.y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert "DIGITNET_DATA" in ds.source
    # the classic mnist.pkl.gz split: first 50000 train, last 10000 valid
    xt, _, xv, _ = train_valid_split(ds.x_train, ds.y_train, 10000, shuffle=False)
    assert xt.shape == (50000, 784) and xv.shape == (10000, 784)
