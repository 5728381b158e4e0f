"""Kaggle CSV, Keras npz and OpenML CSV: readers and writers on small files made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitnet.data.formats import (
    FormatError,
    read_kaggle_submission,
    read_kaggle_test,
    read_kaggle_train,
    read_keras_npz,
    read_openml_csv,
    write_kaggle_submission,
    write_kaggle_test,
    write_kaggle_train,
    write_keras_npz,
    write_openml_csv,
)
from digitnet.data.pickled import UnsafePickleError, read_mnist_pkl


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 784)).astype(np.uint8), rng.integers(0, 10, size=n)


def test_kaggle_train_round_trip(tmp_path: Path) -> None:
    x, y = images(7)
    path = tmp_path / "train.csv"
    write_kaggle_train(path, x, y)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:2] == ["label", "pixel0"] and header[-1] == "pixel783" and len(header) == 785
    x2, y2 = read_kaggle_train(path)
    assert x2.dtype == np.uint8 and y2.dtype == np.int64
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_kaggle_test_round_trip_and_train_file_refused(tmp_path: Path) -> None:
    x, y = images(5, seed=1)
    write_kaggle_test(tmp_path / "test.csv", x.reshape(5, 28, 28))
    np.testing.assert_array_equal(read_kaggle_test(tmp_path / "test.csv"), x)
    write_kaggle_train(tmp_path / "train.csv", x, y)
    with pytest.raises(FormatError, match="label column"):
        read_kaggle_test(tmp_path / "train.csv")
    with pytest.raises(FormatError, match="not a Kaggle train.csv"):
        read_kaggle_train(tmp_path / "test.csv")


def test_kaggle_bad_rows(tmp_path: Path) -> None:
    header = ",".join(["label"] + [f"pixel{i}" for i in range(784)])
    bad = tmp_path / "train.csv"
    bad.write_text(header + "\n" + ",".join(["3"] + ["300"] * 784) + "\n")
    with pytest.raises(FormatError, match="0-255"):
        read_kaggle_train(bad)
    bad.write_text(header + "\n" + ",".join(["3"] + ["1"] * 700) + "\n")
    with pytest.raises(FormatError, match="785"):
        read_kaggle_train(bad)
    bad.write_text(header + "\n" + ",".join(["12"] + ["1"] * 784) + "\n")
    with pytest.raises(FormatError, match="labels"):
        read_kaggle_train(bad)
    with pytest.raises(FileNotFoundError):
        read_kaggle_train(tmp_path / "absent.csv")


def test_submission_round_trip(tmp_path: Path) -> None:
    labels = np.array([7, 2, 1, 0, 4])
    path = tmp_path / "submission.csv"
    write_kaggle_submission(path, labels)
    assert path.read_text().splitlines() == ["ImageId,Label", "1,7", "2,2", "3,1", "4,0", "5,4"]
    np.testing.assert_array_equal(read_kaggle_submission(path), labels)
    with pytest.raises(ValueError, match="0-9"):
        write_kaggle_submission(tmp_path / "bad.csv", np.array([1, 10]))
    assert not (tmp_path / "bad.csv").exists()
    path.write_text("ImageId,Label\n2,7\n")
    with pytest.raises(FormatError, match="ImageId"):
        read_kaggle_submission(path)


def test_keras_npz_round_trip(tmp_path: Path) -> None:
    (x, y), (xt, yt) = images(6), images(4, seed=2)
    path = tmp_path / "mnist.npz"
    write_keras_npz(path, x, y, xt, yt)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert f["x_train"].shape == (6, 28, 28) and f["x_train"].dtype == np.uint8
    a, b, c, d = read_keras_npz(path)
    np.testing.assert_array_equal(a.reshape(6, 784), x)
    np.testing.assert_array_equal(b, y)
    np.testing.assert_array_equal(c.reshape(4, 784), xt)
    np.testing.assert_array_equal(d, yt)


def test_keras_npz_refuses_missing_keys_and_pickled_objects(tmp_path: Path) -> None:
    x, y = images(3)
    np.savez(tmp_path / "partial.npz", x_train=x.reshape(3, 28, 28), y_train=y)
    with pytest.raises(FormatError, match="missing x_test, y_test"):
        read_keras_npz(tmp_path / "partial.npz")
    objects = np.array([{"a": 1}, None], dtype=object)  # would need pickle to load
    np.savez(tmp_path / "objects.npz", x_train=objects, y_train=y, x_test=objects, y_test=y)
    with pytest.raises(FormatError, match="refused"):
        read_keras_npz(tmp_path / "objects.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(FormatError, match="npz"):
        read_keras_npz(tmp_path / "junk.npz")


def test_openml_round_trip_and_quoted_names(tmp_path: Path) -> None:
    x, y = images(4, seed=3)
    path = tmp_path / "mnist_784.csv"
    write_openml_csv(path, x, y)
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "pixel1" and header[-2:] == ["pixel784", "class"]
    x2, y2 = read_openml_csv(path)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    # OpenML exports quote names and nominal class values
    quoted = tmp_path / "quoted.csv"
    lines = path.read_text().splitlines()
    head = ",".join(f'"{n}"' for n in lines[0].split(","))
    rows = [r.rsplit(",", 1)[0] + f",'{r.rsplit(',', 1)[1]}'" for r in lines[1:]]
    quoted.write_text("\n".join([head, *rows]) + "\n")
    x3, y3 = read_openml_csv(quoted)
    np.testing.assert_array_equal(x3, x)
    np.testing.assert_array_equal(y3, y)
    with pytest.raises(FormatError, match="OpenML"):
        read_openml_csv(_kaggle_file(tmp_path))


def _kaggle_file(tmp_path: Path) -> Path:
    x, y = images(2)
    write_kaggle_train(tmp_path / "k.csv", x, y)
    return tmp_path / "k.csv"


def test_writers_validate(tmp_path: Path) -> None:
    x, y = images(3)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        write_openml_csv(tmp_path / "a.csv", x, y[:2])
    with pytest.raises(ValueError, match="shape"):
        write_kaggle_test(tmp_path / "b.csv", x[:, :100])
    assert not list(tmp_path.iterdir())


class _Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_mnist_pkl_carrying_os_system_refused(tmp_path: Path) -> None:
    import gzip
    import pickle

    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(((_Hostile(), None), None, None), f, protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        read_mnist_pkl(path)
