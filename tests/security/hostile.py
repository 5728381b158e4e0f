"""Hostile inputs, each built from scratch: crafted pickles, IDX bombs, forged model files and
Keras archives. Every builder writes one file and returns its path; nothing here runs them."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- pickle opcodes
G_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\n"
G_NDARRAY = b"cnumpy\nndarray\n"
G_DTYPE = b"cnumpy\ndtype\n"


def short(b: bytes) -> bytes:
    """SHORT_BINSTRING"""
    return b"U" + bytes([len(b)]) + b


def binstring(b: bytes) -> bytes:
    return b"T" + struct.pack("<i", len(b)) + b


def binint(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def dtype_op(typestr: bytes, order: bytes = b"|", *, names: bytes = b"N", fields: bytes = b"N",
             elsize: int = -1, alignment: int = -1, flags: int = 0) -> bytes:
    """``numpy.dtype(typestr, 0, 1)`` then BUILD with a state of our choosing."""
    return (G_DTYPE + short(typestr) + b"K\x00K\x01\x87R" + b"(K\x03" + short(order) + b"N" + names
            + fields + binint(elsize) + binint(alignment) + binint(flags) + b"tb")


def array_op(dtype: bytes, shape: tuple[int, ...], data: bytes) -> bytes:
    """``_reconstruct(ndarray, (0,), 'b')`` then BUILD with ``(1, shape, dtype, False, data)``."""
    return (G_RECONSTRUCT + G_NDARRAY + b"K\x00\x85" + short(b"b") + b"\x87R" + b"(K\x01("
            + b"".join(binint(d) for d in shape) + b"t" + dtype + b"\x89" + binstring(data) + b"tb")


def splits_of(x_op: bytes, y_op: bytes) -> bytes:
    """A protocol-2 pickle of ``((x, y), (x, y), (x, y))`` from the opcodes of one x and one y."""
    pair = x_op + y_op + b"\x86"
    return b"\x80\x02" + pair * 3 + b"\x87."


def labels_op(n: int) -> bytes:
    return array_op(dtype_op(b"i8", b"<"), (n,), bytes(8 * n))


def object_field_dtype(flags: int) -> bytes:
    """A ``V8`` dtype whose one field ``a`` is an object pointer, with ``flags`` rewritten so
    NumPy takes raw bytes for it (flags 1: it dereferences them when the array is freed)."""
    fields = b"}" + short(b"a") + dtype_op(b"O8", flags=63) + b"K\x00\x86" + b"s"
    return dtype_op(b"V8", names=short(b"a") + b"\x85", fields=fields, elsize=8, alignment=1, flags=flags)


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def pkl_segfault(d: Path) -> Path:
    """Only allow-listed globals; freeing the array dereferences 0x4141414141414141."""
    x = array_op(object_field_dtype(1), (2,), b"\x41" * 16)
    return write_gz(d / "mnist.pkl.gz", splits_of(x, labels_op(2)))


def pkl_object_elements(d: Path) -> Path:
    """An array whose field ``a`` is an object array of garbage pointers (crashes on access)."""
    x = array_op(object_field_dtype(0), (2,), b"\x41" * 16)
    return write_gz(d / "mnist.pkl.gz", b"\x80\x02" + x + b".")


def pkl_memo_expansion(d: Path) -> Path:
    """2 kB of memo references that become 400**3 list items once anything turns them into an
    array: lists of lists of the same list, built with EMPTY_LIST/APPENDS and BINGET."""
    out = b"\x80\x02]q\x01(" + b"K\x00" * 400 + b"e"  # L1 = [0] * 400, memo 1
    for level in (2, 3):
        out += b"]q" + bytes([level]) + b"(" + (b"h" + bytes([level - 1])) * 400 + b"e"
    pair = b"h\x03" + labels_op(2) + b"\x86"
    return write_gz(d / "mnist.pkl.gz", out + b"0" + pair * 3 + b"\x87.")


def pkl_terabyte(d: Path) -> Path:
    """32 bytes that claim a 10**12-item array (``_reconstruct`` with that shape)."""
    data = (b"\x80\x02" + G_RECONSTRUCT + G_NDARRAY + b"\x8a\x06" + (10**12).to_bytes(6, "little")
            + b"\x85" + short(b"b") + b"\x87R.")
    return write_gz(d / "mnist.pkl.gz", data)


def pkl_setattr_global(d: Path) -> Path:
    """BUILD on an allow-listed function (``_codecs.encode``, a Python function in the old
    allow-list): sets its ``__kwdefaults__``, changing how every later call behaves."""
    data = (b"\x80\x02c_codecs\nencode\n}" + short(b"__kwdefaults__") + b"}" + short(b"x") + b"K\x01s"
            + b"sb" + b"0" + b"N.")
    return write_gz(d / "mnist.pkl.gz", data)


def pkl_os_system(d: Path) -> Path:
    """The classic: ``os.system('echo owned')``."""
    return write_gz(d / "mnist.pkl.gz", b"\x80\x02cos\nsystem\n" + short(b"echo owned") + b"\x85R.")


PICKLES: dict[str, Callable[[Path], Path]] = {
    "segfault": pkl_segfault, "object elements": pkl_object_elements, "memo expansion": pkl_memo_expansion,
    "1 TB claim": pkl_terabyte, "setattr on a global": pkl_setattr_global, "os.system": pkl_os_system,
}


# --------------------------------------------------------------------------- bombs
_BLOCK = 1 << 20


def deflate_zeros(prefix: bytes, zeros: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``prefix`` then ``zeros`` zero bytes, made fast by repeating one
    fully flushed 1 MiB block; returns (stream, CRC-32, uncompressed size)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(_BLOCK)
    blocks, rest = divmod(zeros, _BLOCK)
    parts = [comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)]
    if blocks:
        parts.append(comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH))
        again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
        parts.append(again * (blocks - 1))
    parts.append(comp.compress(bytes(rest)) + comp.flush())
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    return b"".join(parts), zlib.crc32(bytes(rest), crc), len(prefix) + zeros


def gzip_zeros(prefix: bytes, zeros: int) -> bytes:
    stream, crc, size = deflate_zeros(prefix, zeros)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + struct.pack("<II", crc, size & 0xFFFFFFFF)


def idx_bomb(d: Path, claim: int = 10**12, stream: int = 1 << 30) -> Path:
    """A ~1 MB gzip IDX file whose header claims ``claim`` bytes and whose stream holds ``stream``
    zero bytes: reading to the end of the stream takes ``stream`` bytes of memory."""
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", claim // 784, 28, 28)
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_zeros(header, stream))
    return path


def zip_bytes(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive of ``(name, data, method, crc, uncompressed size)`` entries whose data is
    already compressed (method 8) or stored (method 0)."""
    local, central, offset = [], [], 0
    for name, data, method, crc, size in entries:
        raw = name.encode()
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size,
                           len(raw), 0) + raw
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc,
                                   len(data), size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        local.append(head + data)
        offset += len(head) + len(data)
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)
    return b"".join(local) + directory + end


def stored(name: str, value: np.ndarray | bytes) -> tuple[str, bytes, int, int, int]:
    """A stored zip entry of a .npy (``bytes``: used as the .npy's content)."""
    if not isinstance(value, bytes):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, value, allow_pickle=True)
        value = buf.getvalue()
    return name + ".npy", value, 0, zlib.crc32(value), len(value)


def zeros_member(name: str, shape: tuple[int, ...]) -> tuple[str, bytes, int, int, int]:
    """A deflated .npy member of uint8 zeros of ``shape``."""
    data, crc, size = deflate_zeros(_npy_header(shape, "|u1"), int(np.prod(shape)))
    return name + ".npy", data, 8, crc, size


# --------------------------------------------------------------------------- model files
def read_model(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A genuine model file's metadata and arrays (read with NumPy: the file is ours)."""
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(str(archive["__meta__"])), {k: archive[k] for k in archive.files if k != "__meta__"}


def write_model(path: Path, meta: dict | str, arrays: dict[str, np.ndarray],
                extra: list[tuple[str, bytes, int, int, int]] = ()) -> Path:
    """A model file of ``meta`` (a dict, or JSON text as it is) and ``arrays``, plus ``extra``
    zip entries."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    entries = [stored("__meta__", np.array(text))] + [stored(k, v) for k, v in arrays.items()]
    path.write_bytes(zip_bytes(entries + list(extra)))
    return path


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    """The magic and header of a ``.npy`` file (the payload is written after it)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def model_variants(good: Path) -> dict[str, Callable[[Path], Path]]:
    """Forged model files derived from the genuine ``good``: name -> builder(dir) -> path."""
    meta, arrays = read_model(good)

    def changed(**fields: object) -> Callable[[Path], Path]:
        def build(d: Path) -> Path:
            m = json.loads(json.dumps(meta))
            for key, value in fields.items():
                target = m
                *parents, last = key.split(".")
                for p in parents:
                    target = target[p]
                target[last] = value
            return write_model(d / "model.npz", m, arrays)
        return build

    def wide(d: Path) -> Path:
        m = json.loads(json.dumps(meta))
        m["architecture"]["layers"][0].update(in_features=12000, out_features=12000)
        return write_model(d / "model.npz", m, arrays)

    def nested(d: Path) -> Path:
        text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
        return write_model(d / "model.npz", text, arrays)

    def nan_stats(d: Path) -> Path:
        m = json.loads(json.dumps(meta))
        m["normalization"].update(method="zscore", per_pixel=False, mean=float("nan"), std=1.0)
        return write_model(d / "model.npz", m, arrays)

    def plain_npy(d: Path) -> Path:
        path = d / "model.npz"
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
        return path

    return {
        "extra 1 GiB member": lambda d: write_model(d / "model.npz", meta, arrays,
                                                    [zeros_member("extra", (1 << 30,))]),
        "12000x12000 layer": wide,
        "architecture as a list": changed(architecture=meta["architecture"]["layers"]),
        "JSON 100,000 deep": nested,
        "dtype U4": changed(dtype="U4"),
        "dtype object": changed(dtype="object"),
        "dtype int8": changed(dtype="int8"),
        "NaN normalisation": nan_stats,
        "class label 10**30": changed(classes=[10**30] + meta["classes"][1:]),
        "duplicate classes": changed(classes=[meta["classes"][0]] * len(meta["classes"])),
        "plain .npy named model.npz": plain_npy,
    }


def keras_bomb(d: Path) -> Path:
    """A Keras mnist.npz whose x_train is a deflated (1369568, 28, 28) uint8 array: 1 GiB of
    zeros in ~1 MB."""
    n = (1 << 30) // 784
    entries = [zeros_member("x_train", (n, 28, 28)), stored("y_train", np.zeros(n, np.uint8)),
               stored("x_test", np.zeros((1, 28, 28), np.uint8)), stored("y_test", np.zeros(1, np.uint8))]
    path = d / "mnist.npz"
    path.write_bytes(zip_bytes(entries))
    return path
