"""Reading and writing IDX files, the format MNIST is distributed in.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the array payload in C order, big-endian.
Files may be gzip-compressed (detected from the gzip magic bytes, not the name).

The reader validates the header and the payload length *before* allocating the array,
so a corrupt or hostile header (say, one claiming 10**12 items) fails fast with
:class:`IDXError` instead of exhausting memory: the declared payload must be at most
:data:`MAX_IDX_BYTES` (or the ``max_bytes`` given), equal the bytes a raw file holds, and be
within what a gzip file of its size can decompress to (deflate expands at most 1032:1). A
gzip payload is then read in chunks into one buffer of exactly the declared size, and one
byte more is asked for only to refuse trailing data.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from ..atomic import atomic_write
from ..errors import DigitnetError

__all__ = ["IDXError", "read_idx", "write_idx", "idx_header", "DTYPE_CODES"]

#: IDX dtype code -> NumPy dtype as stored on disk (big-endian for multi-byte types).
DTYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_FOR_KIND: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): code for code, dt in DTYPE_CODES.items()
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # bytes per read from a gzip stream
#: Largest payload read (MNIST's training images are 47 MB); ``read_idx(max_bytes=...)`` changes it.
MAX_IDX_BYTES = 256 << 20
#: Deflate's largest expansion (zlib's documented limit is 1032:1), plus room for headers.
_MAX_RATIO, _SLACK = 1032, 1 << 16


class IDXError(DigitnetError, ValueError):
    """A file is not a valid IDX file (bad magic, dtype, dims or payload length)."""


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exact(f: IO[bytes], n: int) -> bytes:
    """Read up to ``n`` bytes (fewer only at end of stream)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _parse_header(f: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read and check the header; return (on-disk dtype, dims, header length in bytes)."""
    magic = _read_exact(f, 4)
    if len(magic) < 4:
        raise IDXError(f"{path}: file too short for an IDX header ({len(magic)} bytes)")
    if magic[0] != 0 or magic[1] != 0:
        raise IDXError(
            f"{path}: bad IDX magic number {magic.hex()} (expected 0000 followed by "
            "dtype code and number of dimensions); not an IDX file"
        )
    code, ndim = magic[2], magic[3]
    if code not in DTYPE_CODES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPE_CODES)
        raise IDXError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise IDXError(f"{path}: IDX header declares zero dimensions")
    raw_dims = _read_exact(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise IDXError(
            f"{path}: truncated IDX header: {ndim} dimensions declared but only "
            f"{len(raw_dims)} of {4 * ndim} dimension bytes present"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    return DTYPE_CODES[code], dims, 4 + 4 * ndim


def read_idx(path: str | Path, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of shape ``dims``, native byte order.

    Raises :class:`IDXError` naming the file for a bad magic number, an unknown dtype
    code, a truncated header or payload, trailing bytes after the payload, or a payload
    over ``max_bytes`` (checked before anything is allocated).
    """
    path = Path(path)
    try:
        if _is_gzip(path):
            return _read_gzip(path, max_bytes)
        return _read_raw(path, max_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IDXError(f"{path}: corrupt gzip stream: {exc}") from exc


def _expected_payload(dtype: np.dtype, dims: tuple[int, ...]) -> int:
    return math.prod(dims) * dtype.itemsize  # Python ints: no overflow


def _finish(buf: bytes | bytearray, dtype: np.dtype, dims: tuple[int, ...]) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=dtype, count=math.prod(dims)).reshape(dims)
    native = dtype.newbyteorder("=")
    if dtype.itemsize > 1 or not arr.flags.writeable:
        arr = arr.astype(native)  # byte-swap to native (copy) / make writable
    return arr


def _check_cap(path: Path, dtype: np.dtype, dims: tuple[int, ...], expected: int, max_bytes: int) -> None:
    if expected > max_bytes:
        shape = "x".join(map(str, dims))
        raise IDXError(f"{path}: header declares {shape} items of {dtype.itemsize} byte(s) = {expected:,} "
                       f"payload bytes, over the limit of {max_bytes:,}")


def _read_raw(path: Path, max_bytes: int) -> np.ndarray:
    with open(path, "rb") as f:
        dtype, dims, header_len = _parse_header(f, path)
        expected = _expected_payload(dtype, dims)
        actual = os.fstat(f.fileno()).st_size - header_len
        if actual != expected:
            _raise_length(path, dtype, dims, expected, actual)
        _check_cap(path, dtype, dims, expected, max_bytes)
        buf = bytearray(expected)
        if expected and f.readinto(buf) != expected:
            raise IDXError(f"{path}: file changed while reading")
    return _finish(buf, dtype, dims)


def _read_gzip(path: Path, max_bytes: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        dtype, dims, header_len = _parse_header(f, path)
        expected = _expected_payload(dtype, dims)
        compressed = os.fstat(f.fileobj.fileno()).st_size  # type: ignore[union-attr]
        if header_len + expected > compressed * _MAX_RATIO + _SLACK:
            shape = "x".join(map(str, dims))
            raise IDXError(f"{path}: header declares {shape} items = {expected:,} payload bytes, more "
                           f"than {compressed:,} gzip bytes can hold; the file is truncated or forged")
        _check_cap(path, dtype, dims, expected, max_bytes)
        # The claim is now bounded: one buffer of that size, filled in chunks.
        buf = bytearray(expected)
        view, got = memoryview(buf), 0
        while got < expected and (k := f.readinto(view[got:got + _CHUNK])):
            got += k
        if got != expected:
            _raise_length(path, dtype, dims, expected, got)
        if f.read(1):
            _raise_length(path, dtype, dims, expected, None)
    return _finish(buf, dtype, dims)


def _raise_length(
    path: Path, dtype: np.dtype, dims: tuple[int, ...], expected: int, actual: int | None
) -> None:
    shape = "x".join(map(str, dims))
    what = f"header declares {shape} items of {dtype.itemsize} byte(s) = {expected} payload bytes"
    if actual is None:
        raise IDXError(f"{path}: trailing data after the IDX payload ({what})")
    if actual > expected:
        raise IDXError(
            f"{path}: {actual - expected} trailing byte(s) after the IDX payload ({what})"
        )
    raise IDXError(f"{path}: truncated IDX payload: {actual} bytes present but {what}")


def idx_header(array: np.ndarray) -> bytes:
    """The IDX header (magic + dims) for ``array``; IDXError if it cannot be stored."""
    dt = np.dtype(array.dtype)
    code = _CODE_FOR_KIND.get((dt.kind, dt.itemsize))
    if code is None:
        raise IDXError(
            f"dtype {dt} cannot be stored in IDX (supported: uint8, int8, int16, int32, "
            "float32, float64)"
        )
    if not 1 <= array.ndim <= 255:
        raise IDXError(f"IDX needs 1 to 255 dimensions, got an array of ndim {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise IDXError(f"IDX dimension sizes must be < 2**32, got shape {array.shape}")
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)


def _idx_payload(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous big-endian array: the IDX payload bytes."""
    dt = np.dtype(array.dtype)
    disk = DTYPE_CODES[_CODE_FOR_KIND[(dt.kind, dt.itemsize)]]
    return np.ascontiguousarray(array, dtype=disk)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    The write is atomic (temp file in the same directory, then os.replace). Supported
    dtypes: uint8, int8, int16, int32, float32, float64 (stored big-endian).
    """
    path = Path(path)
    array = np.asarray(array)
    header = idx_header(array)
    payload = _idx_payload(array).reshape(-1).view(np.uint8)  # bytes-like, no copy
    with atomic_write(path) as f:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)
