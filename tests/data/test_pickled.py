"""mnist.pkl.gz reader/writer: the opcode parser that reads only the classic structure."""

from __future__ import annotations

import builtins
import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import UnsafePickleError, load_mnist_pkl_bytes, read_mnist_pkl, write_mnist_pkl
from digitnet.data.pickled import mnist_pkl_to_uint8


def restricted_loads(data: bytes):
    return load_mnist_pkl_bytes(data, "test.pkl")


def _splits(n_train: int = 5, n_valid: int = 3, n_test: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_valid, n_test):
        pixels = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        out.append((pixels.astype(np.float32) / 256, rng.integers(0, 10, size=n, dtype=np.int64)))
    return tuple(out)


def test_round_trip(tmp_path: Path) -> None:
    splits = _splits()
    path = tmp_path / "mnist.pkl.gz"
    write_mnist_pkl(path, splits)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(path.read_bytes())[:2] == b"\x80\x02"  # pickle protocol 2
    back = read_mnist_pkl(path)
    assert len(back) == 3
    for (x, y), (bx, by) in zip(splits, back, strict=True):
        assert bx.dtype == np.float32 and bx.shape == x.shape
        np.testing.assert_array_equal(bx, x)
        np.testing.assert_array_equal(by, y)
    assert list(tmp_path.iterdir()) == [path]


def test_reads_uncompressed_pickle(tmp_path: Path) -> None:
    splits = _splits()
    path = tmp_path / "mnist.pkl"
    path.write_bytes(pickle.dumps(splits, protocol=2))
    np.testing.assert_array_equal(read_mnist_pkl(path)[2][0], splits[2][0])


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_python3_pickles_of_the_splits_are_read(protocol: int) -> None:
    splits = _splits()
    splits = (splits[0], (splits[1][0], splits[1][1].astype(">i4")),
              (splits[2][0], splits[2][1].astype(np.uint8)))
    back = restricted_loads(pickle.dumps(splits, protocol=protocol))
    for (x, y), (bx, by) in zip(splits, back, strict=True):
        np.testing.assert_array_equal(bx, x)
        np.testing.assert_array_equal(by, y)
        assert by.dtype == y.dtype.newbyteorder("=") and by.dtype.isnative


@pytest.mark.parametrize("obj", [
    [1, "a", {"k": b"bytes"}], np.int64(7), np.dtype("<u2"), (np.arange(3),) * 3,
    tuple((np.zeros((2, 784), np.float64), np.arange(2)) for _ in range(3)),  # float64 images
    tuple((np.zeros((2, 784), np.float32), np.zeros(2, np.float32)) for _ in range(3)),  # float labels
    tuple((np.asfortranarray(np.zeros((2, 784), np.float32)), np.arange(2)) for _ in range(3)),
])
def test_anything_but_the_splits_is_refused(obj: object) -> None:
    with pytest.raises(UnsafePickleError, match="test.pkl"):
        restricted_loads(pickle.dumps(obj, protocol=2))


def test_protocol_5_is_refused() -> None:
    with pytest.raises(UnsafePickleError, match="protocol 5"):
        restricted_loads(pickle.dumps(_splits(), protocol=5))


class _Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 ``str`` opcodes, as the classic mnist.pkl.gz does."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes_as_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_str


def test_python2_pickle_with_latin1() -> None:
    import io

    splits = _splits()
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(splits)
    # NumPy 1 module names, as in a pickle written by Python 2.
    data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"_codecs" not in data and b"cnumpy.core.multiarray\n_reconstruct" in data
    back = restricted_loads(data)
    np.testing.assert_array_equal(back[0][0], splits[0][0])
    np.testing.assert_array_equal(back[2][1], splits[2][1])


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_hostile_pickle_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Evil(f"echo pwned > {marker}"), protocol=2)
    with pytest.raises(UnsafePickleError, match=r"system") as exc:
        restricted_loads(data)
    assert "refused" in str(exc.value)
    assert not marker.exists()
    assert isinstance(exc.value, ValueError)


def test_hostile_mnist_pkl_file_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(_Evil(f"touch {marker}"))))
    with pytest.raises(UnsafePickleError):
        read_mnist_pkl(path)
    assert not marker.exists()


class _EvalEvil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (builtins.eval, ("1 + 1",))


def test_builtins_eval_refused() -> None:
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        restricted_loads(pickle.dumps(_EvalEvil()))


def test_codecs_encode_only_latin1() -> None:
    import codecs

    class Rot13:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_loads(pickle.dumps(Rot13(), protocol=2))


def test_validation(tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    bad = ((np.zeros((2, 100), np.float32), np.zeros(2, np.int64)),) * 3
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=r"array shape \(2, 100\)"):
        read_mnist_pkl(path)
    bad = tuple((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)) for _ in range(3))
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match="train_y"):
        read_mnist_pkl(path)
    path.write_bytes(pickle.dumps((1, 2)))
    with pytest.raises(ValueError, match="3-tuple"):
        read_mnist_pkl(path)
    shared = (np.zeros((2, 784), np.float32), np.zeros(2, np.int64))
    path.write_bytes(pickle.dumps((shared,) * 3))  # one split three times: a memo reference
    with pytest.raises(UnsafePickleError, match="memo reference to a tuple"):
        read_mnist_pkl(path)
    with pytest.raises(ValueError):
        write_mnist_pkl(tmp_path / "w.pkl.gz", bad[:2])
    assert not (tmp_path / "w.pkl.gz").exists()


def test_mnist_pkl_to_uint8() -> None:
    splits = _splits(n_train=4, n_valid=3, n_test=2)
    x_train, y_train, x_test, y_test = mnist_pkl_to_uint8(splits)
    assert x_train.dtype == np.uint8 and x_train.shape == (7, 784)
    assert y_train.shape == (7,) and x_test.shape == (2, 784) and y_test.shape == (2,)
    # train part first, then valid part; exact inverse of pixel/256
    np.testing.assert_array_equal(x_train[:4], np.rint(splits[0][0] * 256).astype(np.uint8))
    np.testing.assert_array_equal(x_train[4:], np.rint(splits[1][0] * 256).astype(np.uint8))
    np.testing.assert_array_equal(y_train, np.concatenate([splits[0][1], splits[1][1]]))
    np.testing.assert_array_equal(y_test, splits[2][1])
    every = np.arange(256, dtype=np.float32) / 256
    x = np.tile(every[:196], (1, 4))  # a (1, 784) row of exact pixel/256 values
    out = mnist_pkl_to_uint8(((x, np.zeros(1, int)),) * 3)[0]
    np.testing.assert_array_equal(out[0], np.tile(np.arange(196), 4))


def test_mnist_pkl_to_uint8_rejects_out_of_range() -> None:
    x = np.full((1, 784), 1.5, dtype=np.float32)
    with pytest.raises(ValueError, match="outside"):
        mnist_pkl_to_uint8(((x, np.zeros(1, int)),) * 3)
