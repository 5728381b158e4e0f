"""IDX reader/writer: round trips, and every way a file can be broken."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import IDXError, read_idx, write_idx
from digitnet.data.idx import atomic_write

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _sample(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5)])
def test_round_trip(tmp_path: Path, dtype: type, suffix: str, shape: tuple[int, ...]) -> None:
    arr = _sample(dtype, shape)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.shape == shape
    assert back.dtype == np.dtype(dtype)  # native byte order
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_on_disk_layout_is_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, np.array([[1, 2]], dtype=np.int32))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + bytes(
        [0, 0, 0, 1, 0, 0, 0, 2]
    )


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", arr)
    (tmp_path / "a.gz").rename(tmp_path / "plain-name")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), arr)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_zero_size_dimension_round_trips(tmp_path: Path, suffix: str) -> None:
    arr = np.zeros((0, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / f"e{suffix}", arr)
    back = read_idx(tmp_path / f"e{suffix}")
    assert back.shape == (0, 28, 28) and back.dtype == np.uint8


def test_zero_dimensions_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scalar.idx"
    path.write_bytes(bytes([0, 0, 0x08, 0]) + b"\x05")
    with pytest.raises(IDXError, match="zero dimensions"):
        read_idx(path)
    with pytest.raises(IDXError, match="ndim 0"):
        write_idx(tmp_path / "w.idx", np.array(5, dtype=np.uint8))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_truncated_payload(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, _header(0x08, (3, 4)) + bytes(11))
    with pytest.raises(IDXError, match="truncated") as exc:
        read_idx(path)
    assert name in str(exc.value)  # the message names the file


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_trailing_bytes(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, _header(0x08, (3, 4)) + bytes(13))
    with pytest.raises(IDXError, match="trailing") as exc:
        read_idx(path)
    assert name in str(exc.value)


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_truncated_header(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, bytes([0, 0, 0x08, 3, 0, 0, 0, 1]))
    with pytest.raises(IDXError, match="truncated IDX header"):
        read_idx(path)
    path = _write(tmp_path / name, b"\x00\x00")
    with pytest.raises(IDXError, match="too short"):
        read_idx(path)


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_wrong_magic(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"ab")
    with pytest.raises(IDXError, match="magic"):
        read_idx(path)


def test_unknown_dtype_code(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.idx", _header(0x0A, (2,)) + b"ab")
    with pytest.raises(IDXError, match="dtype code 0x0A"):
        read_idx(path)


@pytest.mark.parametrize("name", ["huge.idx", "huge.idx.gz"])
def test_huge_header_fails_fast(tmp_path: Path, name: str) -> None:
    # 10**12 float64 items = 8 TB claimed, a few bytes present: IDXError, not MemoryError.
    path = _write(tmp_path / name, _header(0x0E, (10**6, 10**6)) + bytes(64))
    start = time.perf_counter()
    with pytest.raises(IDXError, match="truncated"):
        read_idx(path)
    assert time.perf_counter() - start < 1.0


def test_huge_header_with_real_gz_payload_fails_fast(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.gz", _header(0x08, (10**6, 10**6)) + bytes(4 << 20))
    start = time.perf_counter()
    with pytest.raises(IDXError, match="truncated"):
        read_idx(path)
    assert time.perf_counter() - start < 2.0


def test_corrupt_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_header(0x08, (100,)) + bytes(range(100)))
    path = tmp_path / "c.gz"
    path.write_bytes(data[:-12])  # cut into the deflate stream / trailer
    with pytest.raises(IDXError, match=r"c\.gz"):
        read_idx(path)


def test_unsupported_dtype_on_write(tmp_path: Path) -> None:
    with pytest.raises(IDXError, match="int64"):
        write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, np.arange(5, dtype=np.uint8))
    write_idx(path, np.arange(3, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.arange(3, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == [path]


def test_atomic_write_interrupted_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as f:
        f.write(b"partial")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
