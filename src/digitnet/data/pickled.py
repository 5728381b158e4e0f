"""The classic ``mnist.pkl.gz`` format, read by parsing its opcode stream: never unpickled.

``mnist.pkl.gz`` (from the deeplearning.net tutorials, and the data of the seed-000
experiment) is a gzip-compressed pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with x float32 of shape
(n, 784) holding pixel/256 and y integer labels of shape (n,): 50000/10000/10000 rows.

Unpickling runs code, and even NumPy's own reconstruction functions can be steered into
building object arrays over raw bytes (a crash, or worse). So this module never hands a
pickle to :mod:`pickle` or NumPy: :func:`parse_mnist_pickle` walks the opcode stream itself
(opcode names from :mod:`pickletools`) and accepts only the structure the classic file has:

- the globals ``numpy.core.multiarray._reconstruct`` (or ``numpy._core``), ``numpy.ndarray``,
  ``numpy.dtype`` and, for pickles written by Python 3 with protocol 2, a latin-1
  ``_codecs.encode``; each may only be called with the arguments NumPy writes;
- dtypes rebuilt from a validated type string (``f4`` for images, ``i1``..``u8`` for labels)
  and byte order, never from a pickled dtype state;
- arrays rebuilt with ``np.frombuffer`` from raw bytes whose length is checked against the
  declared shape *before* they are read;
- tuples, small ints and strings, the memo (for globals, dtypes and small values only).

Anything else (another opcode, global, dtype, shape, a memo reference to an array, a
length claim beyond what the stream may hold, more than :data:`MAX_PICKLE_BYTES` after
decompression) is an :class:`UnsafePickleError` naming what was found. Protocols 2 to 4
are read; the writer emits protocol 2 exactly as the classic file does.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import pickletools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DigitnetError

__all__ = [
    "UnsafePickleError",
    "MAX_PICKLE_BYTES",
    "parse_mnist_pickle",
    "read_mnist_pkl",
    "load_mnist_pkl_bytes",
    "write_mnist_pkl",
    "mnist_pkl_to_uint8",
]

Splits = tuple[tuple[np.ndarray, np.ndarray], ...]
N_PIXELS = 784

#: Largest decompressed pickle read (the classic file is 220,080,342 bytes).
MAX_PICKLE_BYTES = 256 << 20
MAX_OPCODES = 10_000  # the classic file has 151
MAX_MEMO = 1_000
MAX_STACK = 64
MAX_TUPLE = 16
SMALL_STRING = 256  # longer strings may only be an array's data
_CHUNK = 1 << 20

IMAGE_TYPES = ("f4",)
LABEL_TYPES = ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
}
_STRING_OPS = {"SHORT_BINSTRING": 1, "BINSTRING": 4, "SHORT_BINBYTES": 1, "BINBYTES": 4,
               "BINBYTES8": 8, "SHORT_BINUNICODE": 1, "BINUNICODE": 4, "BINUNICODE8": 8}
_INT_OPS = {"BININT1": "<B", "BININT2": "<H", "BININT": "<i"}
_TUPLE_OPS = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_PLAIN = {"PROTO", "FRAME", "MARK", "TUPLE", "REDUCE", "BUILD", "STOP", "GLOBAL", "STACK_GLOBAL",
          "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET"}
ALLOWED_OPCODES = frozenset(_PLAIN | set(_STRING_OPS) | set(_INT_OPS) | set(_TUPLE_OPS) | set(_CONSTANTS))


class UnsafePickleError(DigitnetError, ValueError, pickle.UnpicklingError):
    """A pickle is not the ``mnist.pkl`` structure: another opcode, global, dtype, shape,
    memo trick or size claim. The message names what was found and where."""


# --------------------------------------------------------------------------- stack values
@dataclass(frozen=True)
class _Global:
    name: str  # "_reconstruct", "ndarray", "dtype" or "encode"


@dataclass(eq=False)
class _DtypeShell:
    """``numpy.dtype(typestr, 0, 1)``, waiting for BUILD to give its byte order."""

    typestr: str


@dataclass(eq=False)
class _ArrayShell:
    """``_reconstruct(ndarray, (0,), b'b')``, waiting for BUILD to give shape, dtype, data."""


@dataclass(frozen=True)
class _LatinText:
    """A long text string already decoded to the bytes it stands for (Python 3 protocol 2
    writes an array's data as ``_codecs.encode(text, 'latin1')``)."""

    data: bytearray


_MARK = object()


def _kind(value: Any) -> str:
    """What a stack value is, for messages."""
    if isinstance(value, _Global):
        return f"global {value.name}"
    if isinstance(value, (bytes, bytearray, str, _LatinText)):
        return "a string"
    for cls, name in ((np.ndarray, "an array"), (np.dtype, "a dtype"), (_DtypeShell, "an unfinished dtype"),
                      (_ArrayShell, "an unfinished array"), (tuple, "a tuple")):
        if isinstance(value, cls):
            return name
    return "None" if value is None else type(value).__name__


# --------------------------------------------------------------------------- the parser
class _Parser:
    """One pass over a pickle's opcodes, building only the values the classic file holds."""

    def __init__(self, stream: IO[bytes], origin: str, limit: int) -> None:
        self.stream, self.origin, self.limit = stream, origin, limit
        self.consumed = 0  # decompressed bytes read so far
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.pos = 0  # offset of the opcode being parsed

    def fail(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.origin}: refused: {what} (at byte {self.pos} of the pickle); "
                                 "not the mnist.pkl format")

    # -- reading, within the size limit
    def _budget(self, n: int) -> None:
        if n < 0 or self.consumed + n > self.limit:
            raise self.fail(f"a claim of {n:,} more bytes goes past the limit of {self.limit:,} "
                            "decompressed bytes")

    def read(self, n: int) -> bytes:
        self._budget(n)
        data = self.stream.read(n)
        self.consumed += len(data)
        if len(data) != n:
            raise self.fail(f"the stream ends {n - len(data)} byte(s) short")
        return data

    def read_into(self, n: int) -> bytearray:
        """``n`` bytes into a fresh bytearray, read in chunks (checked against the limit first)."""
        self._budget(n)
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.stream.readinto(view[got:got + _CHUNK])
            if not k:
                raise self.fail(f"the stream ends {n - got:,} byte(s) into a {n:,}-byte string")
            got += k
        self.consumed += n
        return buf

    def read_latin1_text(self, n: int, expected: int) -> bytearray:
        """A UTF-8 string of ``n`` bytes whose characters are latin-1 bytes (how Python 3's
        protocol 2 stores bytes), decoded chunk by chunk into ``expected`` bytes."""
        self._budget(n)
        out, filled, left = bytearray(expected), 0, n
        decoder = codecs.getincrementaldecoder("utf-8")()
        while left:
            chunk = self.stream.read(min(_CHUNK, left))
            if not chunk:
                raise self.fail(f"the stream ends {left:,} byte(s) into a {n:,}-byte string")
            left -= len(chunk)
            self.consumed += len(chunk)
            try:
                part = decoder.decode(chunk, final=not left).encode("latin-1")
            except (UnicodeDecodeError, UnicodeEncodeError):
                raise self.fail("an array's data is not latin-1 text") from None
            if filled + len(part) > expected:
                raise self.fail(f"an array's data is longer than the {expected:,} bytes its shape needs")
            out[filled:filled + len(part)] = part
            filled += len(part)
        if filled != expected:
            raise self.fail(f"an array's data has {filled:,} bytes, its shape needs {expected:,}")
        return out

    def unsigned(self, size: int) -> int:
        return int.from_bytes(self.read(size), "little")

    # -- the stack
    def push(self, value: Any) -> None:
        if len(self.stack) >= MAX_STACK:
            raise self.fail(f"more than {MAX_STACK} values on the stack")
        self.stack.append(value)

    def pop(self, n: int) -> list[Any]:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) - n < floor:
            raise self.fail("an opcode takes more values than the stack holds")
        values = self.stack[len(self.stack) - n:]
        del self.stack[len(self.stack) - n:]
        return values

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("TUPLE without a MARK")
        start = self.marks.pop()
        values = self.stack[start:]
        del self.stack[start:]
        if len(values) > MAX_TUPLE:
            raise self.fail(f"a tuple of {len(values)} items")
        return values

    # -- the run
    def run(self) -> Any:
        for count in range(MAX_OPCODES + 1):
            if count == MAX_OPCODES:
                raise self.fail(f"more than {MAX_OPCODES} opcodes")
            self.pos = self.consumed
            code = self.read(1)
            op = pickletools.code2op.get(code.decode("latin-1"))
            if op is None:
                raise self.fail(f"unknown opcode byte {code!r}")
            if op.name not in ALLOWED_OPCODES:
                raise self.fail(f"opcode {op.name}")
            if op.name == "STOP":
                break
            self.step(op.name)
        if self.marks or len(self.stack) != 1:
            raise self.fail(f"the pickle ends with {len(self.stack)} values on the stack")
        if self.stream.read(1):
            raise self.fail("trailing bytes after the pickle's STOP")
        return self.stack[0]

    def step(self, name: str) -> None:  # noqa: C901 - one branch per opcode, each short
        if name == "PROTO":
            protocol = self.read(1)[0]
            if not 2 <= protocol <= 4:
                raise self.fail(f"pickle protocol {protocol} (mnist.pkl uses 2; 2 to 4 are read)")
        elif name == "FRAME":
            self.read(8)  # a frame's length: the opcodes inside are read as usual
        elif name in _INT_OPS:
            fmt = _INT_OPS[name]
            self.push(struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0])
        elif name in _CONSTANTS:
            self.push(_CONSTANTS[name])
        elif name in _STRING_OPS:
            self.string(name)
        elif name == "MARK":
            self.marks.append(len(self.stack))
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in _TUPLE_OPS:
            self.push(tuple(self.pop(_TUPLE_OPS[name])))
        elif name == "GLOBAL":
            module = self.read_line()
            self.push(self.global_(module, self.read_line()))
        elif name == "STACK_GLOBAL":
            module, attr = self.pop(2)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise self.fail("STACK_GLOBAL without two names")
            self.push(self.global_(module, attr))
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            key = len(self.memo) if name == "MEMOIZE" else self.unsigned(1 if name == "BINPUT" else 4)
            if not self.stack or len(self.memo) >= MAX_MEMO and key not in self.memo:
                raise self.fail("a memo entry with an empty stack, or too many memo entries")
            self.memo[key] = self.stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            key = self.unsigned(1 if name == "BINGET" else 4)
            if key not in self.memo:
                raise self.fail(f"memo reference {key} to nothing")
            value = self.memo[key]
            if not isinstance(value, (_Global, np.dtype, str, bytes, int, tuple)) or (
                    isinstance(value, tuple) and not all(type(v) is int for v in value)):
                raise self.fail(f"a memo reference to {_kind(value)} (only globals, dtypes and small "
                                "values may be shared)")
            self.push(value)
        elif name == "REDUCE":
            func, args = self.pop(2)
            self.push(self.reduce(func, args))
        elif name == "BUILD":
            obj, state = self.pop(2)
            built = self.build(obj, state)
            for key, value in self.memo.items():  # the memo held the shell BUILD completed
                if value is obj:
                    self.memo[key] = built
            self.push(built)
        else:  # pragma: no cover - ALLOWED_OPCODES and these branches are the same list
            raise self.fail(f"opcode {name}")

    def read_line(self) -> str:
        """A GLOBAL name: printable ASCII up to a newline, at most 64 characters."""
        out = bytearray()
        while (c := self.read(1)) != b"\n":
            out += c
            if len(out) > 64 or not 0x20 < c[0] < 0x7F:
                raise self.fail("a malformed GLOBAL name")
        return out.decode("ascii")

    def global_(self, module: str, name: str) -> _Global:
        known = _GLOBALS.get((module, name))
        if known is None:
            raise self.fail(f"global {module}.{name}: only numpy's array and dtype reconstruction is read")
        return _Global(known)

    def string(self, name: str) -> None:
        """A string opcode: small ones are pushed; a long one must be the data of the array
        being built, and is read only after its length matches the declared shape."""
        size = _STRING_OPS[name]
        n = int.from_bytes(self.read(size), "little", signed=name == "BINSTRING")
        if n < 0:
            raise self.fail(f"a negative string length {n}")
        text = "UNICODE" in name
        if n <= SMALL_STRING:
            data = self.read(n)
            if text:
                try:
                    self.push(data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise self.fail("a string that is not UTF-8") from None
            else:  # a Python 2 str (BINSTRING) is text to latin-1 readers; BINBYTES are bytes
                self.push(data.decode("latin-1") if "STRING" in name else data)
            return
        shape, dtype = self.pending_array(encoded=text)
        expected = math.prod(shape) * dtype.itemsize
        if text:
            if not expected <= n <= 2 * expected:
                raise self.fail(f"a {n:,}-byte text string for an array of {expected:,} bytes")
            self.push(_LatinText(self.read_latin1_text(n, expected)))
        else:
            if n != expected:
                raise self.fail(f"a {n:,}-byte string for an array of shape {shape} {dtype.str} "
                                f"({expected:,} bytes)")
            self.push(self.read_into(n))

    def pending_array(self, *, encoded: bool) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype of the array whose data comes next; fails unless the stack is
        ``shell, MARK, 1, shape, dtype, False`` (then ``encode`` when the data is text)."""
        start = self.marks[-1] if self.marks else -1
        top = self.stack[start:] if start >= 0 else []
        want = 5 if encoded else 4
        if (start < 1 or len(top) != want or not isinstance(self.stack[start - 1], _ArrayShell)
                or (encoded and top[-1] != _Global("encode"))):
            raise self.fail("a long string that is not an array's data")
        version, shape, dtype, fortran = top[:4]
        _array_header(self, version, shape, dtype, fortran)
        return shape, dtype

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise self.fail(f"a call of {_kind(func)}")
        if func.name == "_reconstruct":
            if args not in ((_Global("ndarray"), (0,), b"b"), (_Global("ndarray"), (0,), "b")):
                raise self.fail(f"_reconstruct called with {args!r:.80}")
            return _ArrayShell()
        if func.name == "dtype":
            if (len(args) != 3 or not isinstance(args[0], str) or args[1] not in (0, False)
                    or args[2] not in (1, True) or args[0] not in IMAGE_TYPES + LABEL_TYPES):
                raise self.fail(f"dtype {args!r:.80} (only {', '.join(IMAGE_TYPES + LABEL_TYPES)} are read)")
            return _DtypeShell(args[0])
        if func.name == "encode":
            if (len(args) != 2 or args[1] not in ("latin1", "latin-1")
                    or not isinstance(args[0], (str, _LatinText))):
                raise self.fail(f"_codecs.encode called with {args!r:.80}")
            if isinstance(args[0], _LatinText):  # an array's data, decoded by string()
                return args[0].data
            try:
                return args[0].encode("latin-1")
            except UnicodeEncodeError:
                raise self.fail("_codecs.encode of text that is not latin-1") from None
        raise self.fail(f"a call of global {func.name}")

    def build(self, obj: Any, state: Any) -> Any:
        if isinstance(obj, _DtypeShell):
            if (not isinstance(state, tuple) or len(state) != 8 or state[0] != 3
                    or state[2:] != (None, None, None, -1, -1, 0)):
                raise self.fail(f"dtype state {state!r:.80} (only a plain dtype's state is read)")
            order = state[1]
            itemsize = int(obj.typestr[1:])
            if order not in (("|",) if itemsize == 1 else ("<", ">")):
                raise self.fail(f"byte order {order!r} for dtype {obj.typestr}")
            return np.dtype(("|" if itemsize == 1 else order) + obj.typestr)
        if isinstance(obj, _ArrayShell):
            if not isinstance(state, tuple) or len(state) != 5:
                raise self.fail(f"array state of {_kind(state)}")
            version, shape, dtype, fortran, data = state
            _array_header(self, version, shape, dtype, fortran)
            expected = math.prod(shape) * dtype.itemsize
            if isinstance(data, str):  # a short Python 2 str
                data = data.encode("latin-1")
            if not isinstance(data, (bytes, bytearray)) or len(data) != expected:
                raise self.fail(f"array data of {_kind(data)} for shape {shape} {dtype.str} "
                                f"({expected:,} bytes)")
            buf = data if isinstance(data, bytearray) else bytearray(data)
            arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
            return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))
        raise self.fail(f"BUILD of {_kind(obj)}")


def _array_header(parser: _Parser, version: Any, shape: Any, dtype: Any, fortran: Any) -> None:
    """Check an array's declared header: version 1, a 1-d or (n, 784) shape, a read dtype, C order."""
    if version != 1 or (fortran is not False and fortran != 0):
        raise parser.fail(f"array state version {version!r}, fortran order {fortran!r}")
    if not isinstance(dtype, np.dtype):
        raise parser.fail(f"array dtype given as {_kind(dtype)}")
    ok_shape = isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape) and (
        len(shape) == 1 or (len(shape) == 2 and shape[1] == N_PIXELS))
    if not ok_shape:
        raise parser.fail(f"array shape {shape!r:.80} (expected (n, 784) images or (n,) labels)")


# --------------------------------------------------------------------------- entry points
def parse_mnist_pickle(stream: IO[bytes], origin: str = "<pickle>", *,
                       limit: int = MAX_PICKLE_BYTES) -> Splits:
    """Parse an uncompressed ``mnist.pkl`` stream into its three (x, y) splits, reading at
    most ``limit`` bytes; :class:`UnsafePickleError` for anything else."""
    try:
        obj = _Parser(stream, origin, limit).run()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UnsafePickleError(f"{origin}: corrupt gzip stream ({exc})") from None
    return _validate_splits(obj, origin)


def _validate_splits(obj: Any, origin: str) -> Splits:
    """Check the ((x, y), (x, y), (x, y)) structure: float32 x (n, 784), integer y (n,)."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise UnsafePickleError(
            f"{origin}: expected a 3-tuple ((train_x, train_y), (valid_x, valid_y), "
            f"(test_x, test_y)), got {_kind(obj)}"
            + (f" of length {len(obj)}" if isinstance(obj, (tuple, list)) else ""))
    out = []
    for name, pair in zip(("train", "valid", "test"), obj, strict=True):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise UnsafePickleError(f"{origin}: {name} split is not an (x, y) pair")
        x, y = pair
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise UnsafePickleError(f"{origin}: {name} split holds {_kind(x)} and {_kind(y)}, not arrays")
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise UnsafePickleError(f"{origin}: {name}_x has shape {x.shape}, expected (n, 784)")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise UnsafePickleError(f"{origin}: {name}_y has shape {y.shape}, expected ({x.shape[0]},) "
                                    f"to match {name}_x")
        if x.dtype != np.float32 or y.dtype.kind not in "iu":
            raise UnsafePickleError(f"{origin}: {name} split has dtypes x={x.dtype}, y={y.dtype}; "
                                    "expected float32 x and integer y")
        out.append((x, y))
    return tuple(out)


def _open_stream(raw: IO[bytes]) -> IO[bytes]:
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw


def load_mnist_pkl_bytes(data: bytes, origin: str = "<bytes>") -> Splits:
    """Parse ``mnist.pkl`` content (gzip-compressed or not) held in memory."""
    with _open_stream(io.BytesIO(data)) as f:
        return parse_mnist_pickle(f, origin)


def read_mnist_pkl(path: str | Path) -> Splits:
    """Read ``mnist.pkl.gz`` (or an uncompressed ``mnist.pkl``) into its three splits.

    Returns ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with each
    x float32 of shape (n, 784) and y integer of shape (n,), as stored (x in [0, 1) for the
    classic file). Anything else is an :class:`UnsafePickleError` naming the file.
    """
    path = Path(path)
    with open(path, "rb") as raw, _open_stream(raw) as f:
        return parse_mnist_pickle(f, str(path))


def _check_for_writing(splits: Sequence[Sequence[np.ndarray]], origin: str) -> Splits:
    """The splits as arrays, checked as the reader checks them (float32 x, integer y)."""
    arrays = tuple((np.asarray(x), np.asarray(y)) for x, y in splits) if len(splits) == 3 else splits
    return _validate_splits(arrays, origin)


def write_mnist_pkl(path: str | Path, splits: Sequence[Sequence[np.ndarray]]) -> None:
    """Write three (x, y) splits in the classic ``mnist.pkl.gz`` layout: gzip (regardless of
    the name) of protocol 2 opcodes, byte for byte the structure of the deeplearning.net
    file (data as BINSTRING). x must be float32 (n, 784), y integer (n,). Written atomically."""
    try:
        checked = _check_for_writing(splits, str(path))
    except UnsafePickleError as exc:
        raise ValueError(str(exc)) from None
    with (
        atomic_write(path) as f,
        gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(b"\x80\x02")  # PROTO 2
        memo: dict[str, int] = {}
        for x, y in checked:
            for a in (x, y):
                _write_array(gz, np.ascontiguousarray(a), memo)
            gz.write(pickle.TUPLE2)
        gz.write(pickle.TUPLE3 + pickle.STOP)


def _memoised(f: IO[bytes], memo: dict[str, int], key: str, first: bytes) -> None:
    """BINGET ``key`` if it is in the memo, else write ``first`` (which pushes it) and BINPUT it."""
    if key in memo:
        f.write(pickle.BINGET + bytes([memo[key]]))
    else:
        memo[key] = len(memo) + 1
        f.write(first + pickle.BINPUT + bytes([memo[key]]))


def _write_array(f: IO[bytes], a: np.ndarray, memo: dict[str, int]) -> None:
    """Emit ``a`` as the classic file does: ``_reconstruct(ndarray, (0,), 'b')``, then BUILD
    with ``(1, shape, dtype, False, data)``; globals and dtypes are memoised on first use."""
    _memoised(f, memo, "_reconstruct", b"cnumpy.core.multiarray\n_reconstruct\n")
    _memoised(f, memo, "ndarray", b"cnumpy\nndarray\n")
    f.write(b"K\x00\x85U\x01b\x87R(K\x01")  # (0,), 'b', TUPLE3, REDUCE, MARK, 1
    f.write(b"(" + b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + b"t")  # the shape
    dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
    if dt.str not in memo:
        _memoised(f, memo, "dtype", b"cnumpy\ndtype\n")
        typestr, order = dt.str[1:].encode(), dt.str[:1].encode()
        dtype_call = b"U" + bytes([len(typestr)]) + typestr + b"K\x00K\x01\x87R"
        state = b"(K\x03U\x01" + order + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        f.write(dtype_call + state)
        memo[dt.str] = len(memo) + 1
        f.write(pickle.BINPUT + bytes([memo[dt.str]]))
    else:
        f.write(pickle.BINGET + bytes([memo[dt.str]]))
    data = np.ascontiguousarray(a, dtype=dt).reshape(-1).view(np.uint8)
    f.write(pickle.NEWFALSE + pickle.BINSTRING + struct.pack("<i", data.size))
    f.write(data)
    f.write(pickle.TUPLE + pickle.BUILD)


def mnist_pkl_to_uint8(
    splits: Sequence[Sequence[np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert the pickle's splits to IDX-style arrays: ``(x_train, y_train, x_test, y_test)``.

    Pixels become ``uint8 = round(x * 256)`` (the pickle stores pixel/256) and the train
    set is the pickle's train part followed by its valid part, which reproduces the
    canonical MNIST files byte for byte: x_train uint8 (60000, 784), y_train uint8
    (60000,), x_test uint8 (10000, 784), y_test uint8 (10000,).
    """
    (tx, ty), (vx, vy), (sx, sy) = _check_for_writing(splits, "mnist.pkl splits")

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = x * x.dtype.type(256)  # exact: a power of two, in the stored precision
        np.rint(scaled, out=scaled)
        if scaled.size and not (scaled.min() >= 0 and scaled.max() <= 255):
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
