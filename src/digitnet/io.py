"""Model and checkpoint files: arrays in ``.npz`` plus JSON metadata, never pickle.

A file is a plain NumPy ``.npz`` archive. The entry ``__meta__`` holds the JSON
metadata as a 0-d unicode array; every other entry is a float array named
``param/<layer>.<name>`` (model weights), ``optim/<param>/<slot>`` (optimiser
state) or ``best/<layer>.<name>`` (early stopping's best weights). It is
written to a temporary file in the same directory then renamed, so a crash
mid-write never leaves a half-written model behind.

Reading never trusts the file (see :mod:`digitnet.data.npz`): :func:`open_bundle` reads
only ``__meta__`` at first, refusing metadata over :data:`MAX_META_CHARS` characters or
nested deeper than :data:`MAX_META_DEPTH`; each array is read only when asked for by name,
after its header (dtype, shape, size) has been checked, so members nobody names are never
decompressed. The caller validates the metadata (for models, :mod:`digitnet.model_schema`)
before building anything from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .data.npz import ArchiveError, NpzArchive
from .errors import DigitnetError

FORMAT = "digitnet"
FORMAT_VERSION = 1
META_KEY = "__meta__"
MAX_META_CHARS = 8 << 20  # JSON characters; a model's metadata is a few kB, a checkpoint's more
MAX_META_DEPTH = 32  # brackets deep; digitnet's own metadata nests 6 deep
MAX_FILE_BYTES = 1 << 30  # the whole file
MAX_ARRAY_BYTES = 512 << 20  # one stored array
FLOAT_DTYPES = ("float32", "float64")


class ModelFileError(DigitnetError, ValueError):
    """A model or checkpoint file is missing, corrupt, truncated or not digitnet's."""


def save_bundle(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` to ``path`` atomically."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    payload = {META_KEY: np.array(json.dumps(meta))}
    payload.update({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    with atomic_write(path) as f:
        np.savez(f, **payload)
    return path


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON ``text`` (strings ignored), without parsing it."""
    code = np.frombuffer(_STRINGS.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(code, (ord("["), ord("{"))).astype(np.int64) - np.isin(code, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def parse_meta(text: str, where: str) -> dict[str, Any]:
    """JSON metadata -> dict, refusing oversized, over-nested or malformed text in one line."""
    if len(text) > MAX_META_CHARS:
        raise ModelFileError(f"{where}: metadata of {len(text):,} characters is over the limit of "
                             f"{MAX_META_CHARS:,}")
    depth = json_depth(text)
    if depth > MAX_META_DEPTH:
        raise ModelFileError(f"{where}: metadata nested {depth} deep, over the limit of {MAX_META_DEPTH}")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, huge integers
        raise ModelFileError(f"{where}: metadata is not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a digitnet file (metadata format is missing)")
    return meta


class Bundle:
    """An open model or checkpoint file: its metadata, and its arrays read one by one."""

    def __init__(self, path: Path, archive: NpzArchive, meta: dict[str, Any]) -> None:
        self.path, self.archive, self.meta = path, archive, meta

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.archive.close()

    @property
    def names(self) -> list[str]:
        """The names of the stored arrays (not the metadata)."""
        return [n for n in self.archive.names if n != META_KEY]

    def read(self, name: str, *, shape: tuple[int, ...] | None = None,
             dtypes: Collection[str] = FLOAT_DTYPES, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
        """The array ``name`` (its header checked against ``shape`` and ``dtypes`` first)."""
        if name not in self.archive:
            raise ModelFileError(f"{self.path}: the file has no array {name!r}")
        try:
            return self.archive.read(name, dtypes=dtypes, shape=shape, max_bytes=max_bytes)
        except ArchiveError as exc:
            raise ModelFileError(f"{self.path}: {exc}") from None

    def read_all(self, prefix: str = "", **checks: Any) -> dict[str, np.ndarray]:
        """Every array whose name starts with ``prefix`` (each read as :meth:`read` does)."""
        return {n: self.read(n, **checks) for n in self.names if n.startswith(prefix)}


def open_bundle(path: str | Path, *, kind: str | None = None) -> Bundle:
    """Open a file written by :func:`save_bundle` and read its metadata (only that);
    ``kind`` ("model"/"checkpoint") is checked. Close it (``with``) when done."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for a model file")
    try:
        archive = NpzArchive(path)
    except ArchiveError as exc:
        raise ModelFileError(f"{path}: corrupt or truncated file, or not a model file: {exc}") from None
    try:
        if META_KEY not in archive:
            raise ModelFileError(f"{path}: not a digitnet file (an .npz without digitnet metadata)")
        header = archive.header(META_KEY)
        if header.dtype.kind != "U" or header.shape != ():
            raise ModelFileError(f"{path}: not a digitnet file (metadata stored as {header.dtype} "
                                 f"{header.shape}, not a JSON string)")
        if header.nbytes > MAX_META_CHARS * 4:
            raise ModelFileError(f"{path}: metadata of {header.nbytes // 4:,} characters is over the limit "
                                 f"of {MAX_META_CHARS:,}")
        text = str(archive.read(META_KEY, dtypes=(header.dtype,), max_bytes=header.nbytes)[()])
        meta = parse_meta(text, str(path))
        version = meta.get("format_version")
        if type(version) is not int or version > FORMAT_VERSION:
            raise ModelFileError(
                f"{path}: file format version {version!r} is newer than this digitnet reads "
                f"({FORMAT_VERSION}); upgrade digitnet"
            )
        if kind is not None and meta.get("kind") != kind:
            raise ModelFileError(f"{path}: expected a {kind} file, found {meta.get('kind')!r}")
    except ArchiveError as exc:
        archive.close()
        raise ModelFileError(f"{path}: corrupt or truncated file: {exc}") from None
    except BaseException:
        archive.close()
        raise
    return Bundle(path, archive, meta)


def load_bundle(path: str | Path, *, kind: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a whole file written by :func:`save_bundle`: ``(meta, arrays)``, every array a
    float array checked as :meth:`Bundle.read` does; ``kind`` is checked."""
    with open_bundle(path, kind=kind) as bundle:
        return bundle.meta, bundle.read_all()


def split_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with ``prefix + '/'``, with the prefix removed."""
    start = prefix + "/"
    return {k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}


def with_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}
