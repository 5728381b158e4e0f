"""The classic ``mnist.pkl.gz`` format, read through a restricted unpickler.

``mnist.pkl.gz`` (from the deeplearning.net tutorials, and the data of the seed-000
experiment) is a gzip-compressed pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with x float32 of shape
(n, 784) holding pixel/256 and y integer labels of shape (n,): 50000/10000/10000 rows.

Unpickling can run arbitrary code, so this module never uses the plain unpickler: a
:class:`pickle.Unpickler` subclass admits only the globals NumPy needs to rebuild
arrays, dtypes and scalars (plus a latin-1-only ``_codecs.encode``, which Python 3 uses
for bytes in protocol-2 pickles), and refuses everything else with
:class:`UnsafePickleError`.
Even so, callers that fetch a pickle should check its SHA-256 before opening it.
"""

from __future__ import annotations

import gzip
import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DigitnetError

__all__ = [
    "UnsafePickleError",
    "restricted_loads",
    "restricted_load",
    "read_mnist_pkl",
    "load_mnist_pkl_bytes",
    "write_mnist_pkl",
    "mnist_pkl_to_uint8",
]

Splits = tuple[tuple[np.ndarray, np.ndarray], ...]
N_PIXELS = 784


class UnsafePickleError(DigitnetError, ValueError, pickle.UnpicklingError):
    """A pickle asked for a global outside the NumPy-array allow-list."""


def _latin1_encode(obj: object, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes.

    Only the str -> latin-1 bytes form that pickle emits is accepted; other codecs are
    refused, so this global cannot be turned into a general-purpose transform.
    """
    if not isinstance(obj, str) or encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(
            f"refused _codecs.encode call with a {type(obj).__name__} and encoding {encoding!r}"
        )
    return obj.encode("latin1", errors)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object, for both the NumPy 1 and NumPy 2 module names.

    The objects are taken from NumPy directly (never imported by the name the pickle
    gives), which also avoids NumPy 2's deprecation warning for ``numpy.core``.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy < 1.26 has no numpy._core
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        # Protocol-5 pickles of contiguous arrays rebuild them from a byte buffer.
        if hasattr(numeric, "_frombuffer"):
            table[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can build NumPy arrays and builtin containers, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load global {module}.{name} from a pickle: only NumPy array "
                "reconstruction is allowed"
            ) from None


def restricted_load(file: IO[bytes], *, encoding: str = "latin1") -> Any:
    """Unpickle from a binary file object with the NumPy-only allow-list.

    ``encoding='latin1'`` makes Python 2 pickles (like ``mnist.pkl.gz``) load, with
    their array buffers intact.
    """
    return _RestrictedUnpickler(file, encoding=encoding).load()


def restricted_loads(data: bytes, *, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with the NumPy-only allow-list (see :func:`restricted_load`)."""
    return restricted_load(io.BytesIO(data), encoding=encoding)


def _validate_splits(obj: Any, origin: str) -> Splits:
    """Check the ((x, y), (x, y), (x, y)) structure, shapes (n, 784) and lengths."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise ValueError(
            f"{origin}: expected a 3-tuple ((train_x, train_y), (valid_x, valid_y), "
            f"(test_x, test_y)), got {type(obj).__name__}"
            + (f" of length {len(obj)}" if isinstance(obj, (tuple, list)) else "")
        )
    out = []
    for name, pair in zip(("train", "valid", "test"), obj, strict=True):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{origin}: {name} split is not an (x, y) pair")
        x, y = (np.asarray(a) for a in pair)
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise ValueError(f"{origin}: {name}_x has shape {x.shape}, expected (n, 784)")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"{origin}: {name}_y has shape {y.shape}, expected ({x.shape[0]},) "
                f"to match {name}_x"
            )
        if x.dtype.kind not in "fiu" or y.dtype.kind not in "iu":
            raise ValueError(
                f"{origin}: {name} split has dtypes x={x.dtype}, y={y.dtype}; expected "
                "numeric x and integer y"
            )
        out.append((x, y))
    return tuple(out)


def load_mnist_pkl_bytes(data: bytes, origin: str = "<bytes>") -> Splits:
    """Parse ``mnist.pkl`` content (gzip-compressed or not) held in memory.

    Decompression streams into the unpickler, so the ~220 MB pickle is never held
    as one bytes object.
    """
    f: IO[bytes] = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        f = gzip.GzipFile(fileobj=f, mode="rb")
    with f:
        return _validate_splits(restricted_load(f), origin)


def read_mnist_pkl(path: str | Path) -> Splits:
    """Read ``mnist.pkl.gz`` (or an uncompressed ``mnist.pkl``) into its three splits.

    Returns ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with each
    x of shape (n, 784) and y of shape (n,), as stored (float32 x in [0, 1) for the
    classic file). Refuses non-NumPy globals with :class:`UnsafePickleError`.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        obj = restricted_load(f)
    return _validate_splits(obj, str(path))


def write_mnist_pkl(path: str | Path, splits: Sequence[Sequence[np.ndarray]]) -> None:
    """Write three (x, y) splits in the ``mnist.pkl.gz`` layout (gzip, pickle protocol 2).

    Gzip-compressed regardless of the name; written atomically.
    """
    obj = tuple((np.asarray(x), np.asarray(y)) for x, y in _validate_splits(splits, str(path)))
    with (
        atomic_write(path) as f,
        gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz,
    ):
        pickle.Pickler(gz, protocol=2).dump(obj)


def mnist_pkl_to_uint8(
    splits: Sequence[Sequence[np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert the pickle's splits to IDX-style arrays: ``(x_train, y_train, x_test, y_test)``.

    Pixels become ``uint8 = round(x * 256)`` (the pickle stores pixel/256) and the train
    set is the pickle's train part followed by its valid part, which reproduces the
    canonical MNIST files byte for byte: x_train uint8 (60000, 784), y_train uint8
    (60000,), x_test uint8 (10000, 784), y_test uint8 (10000,).
    """
    (tx, ty), (vx, vy), (sx, sy) = _validate_splits(splits, "mnist.pkl splits")

    def pixels(x: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "f":
            raise ValueError(f"mnist.pkl pixels must be floats (pixel/256), got {x.dtype}")
        scaled = x * x.dtype.type(256)  # exact: a power of two, in the stored precision
        np.rint(scaled, out=scaled)
        if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
            raise ValueError(
                "pixel values outside [0, 1) in mnist.pkl data: x * 256 spans "
                f"[{scaled.min()}, {scaled.max()}]"
            )
        return scaled.astype(np.uint8)

    def labels(y: np.ndarray) -> np.ndarray:
        if y.size and (y.min() < 0 or y.max() > 255):
            raise ValueError(f"labels outside 0..255 in mnist.pkl data: [{y.min()}, {y.max()}]")
        return y.astype(np.uint8)

    x_train = np.concatenate([pixels(tx), pixels(vx)])
    y_train = np.concatenate([labels(ty), labels(vy)])
    return x_train, y_train, pixels(sx), labels(sy)
